"""End to end: the whole pipeline with kfp's local runner on a small built-in dataset."""

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from urbansound.demo_data import write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, folds=(1, 2, 3), clips_per_class=3, seed=1)
    return root


def _mlflow(uri):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("urbansound")
    return client, exp


@pytest.fixture(scope="module")
def finished_run(demo_root, tmp_path_factory):
    import contextlib
    import io

    from urbansound.pipeline.cli import main

    work = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "run",
                "--data",
                str(demo_root),
                "--epochs",
                "2",
                "--out",
                str(work / "out"),
                "--tracking-uri",
                uri,
            ]
        )
    return code, work, uri, stdout.getvalue()


def test_run_exits_zero_and_ends_with_the_ingest_summary(finished_run):
    code, _work, _ = finished_run[:3]
    assert code == 0
    last_line = finished_run[3].strip().splitlines()[-1]
    assert last_line.startswith("90 clips accepted, 0 rejected (report: ")
    assert last_line.endswith("report.json)")


def test_run_writes_the_summary(finished_run):
    _code, work, _ = finished_run[:3]
    summaries = list((work / "out" / "pipeline_root").glob("*/evaluate*/evaluation/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert sorted(summary["folds"]) == ["1", "2", "3"]
    accs = np.array(list(summary["folds"].values()))
    assert summary["mean"] == pytest.approx(accs.mean())
    assert summary["median"] == pytest.approx(np.median(accs))
    assert summary["std"] == pytest.approx(accs.std())
    assert summary["ingest"]["accepted"] == 90 and summary["ingest"]["rejected"] == 0


def test_mlflow_has_a_finished_parent_with_metrics_and_artifacts(finished_run):
    uri = finished_run[2]
    client, exp = _mlflow(uri)
    parents = [
        r
        for r in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {"accuracy_mean", "accuracy_median", "accuracy_std"} <= set(parent.data.metrics)
    assert parent.data.params["train.epochs"] == "2"
    assert parent.data.params["train.model"] == "urbannet"
    assert len(parent.data.params["dataset_hash"]) == 16
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "confusion_matrix.json", "confusion_matrix.png"} <= names
    local = client.download_artifacts(parent.info.run_id, "summary.json")
    summary = json.loads(Path(local).read_text())
    assert summary["mean"] == pytest.approx(parent.data.metrics["accuracy_mean"])


def test_evaluate_writes_a_prediction_per_test_clip_and_a_report_that_plays_them(
    finished_run, demo_root, tmp_path
):
    """predictions.csv: one row per test clip of the dataset, agreeing with summary.json;
    report.html: a player and a log-mel for each of the most confident mistakes, the same page
    on the MLflow parent run (with the table), and what `urbansound report` writes."""
    import csv

    from urbansound.pipeline.cli import main
    from urbansound.report import read_predictions

    _code, work, uri = finished_run[:3]
    (evaluation,) = (work / "out" / "pipeline_root").glob("*/evaluate*/evaluation")
    rows = read_predictions(evaluation / "predictions.csv")
    with open(demo_root / "metadata" / "UrbanSound8K.csv", newline="") as f:
        listed = sorted((int(r["fold"]), r["slice_file_name"]) for r in csv.DictReader(f))
    assert sorted((r.fold, r.file) for r in rows) == listed  # every test clip, once
    summary = json.loads((evaluation / "summary.json").read_text())
    for fold, accuracy in summary["folds"].items():
        mine = [r for r in rows if r.fold == int(fold)]
        assert np.mean([r.correct for r in mine]) == pytest.approx(accuracy)
    assert all(r.probability is not None and len(r.top) == 3 for r in rows)
    assert all(r.top[0] == (r.predicted_class, r.probability) for r in rows)
    page = (evaluation / "report.html").read_text()
    mistakes = min(30, sum(not r.correct for r in rows))
    assert mistakes > 0
    assert page.count("<audio controls") == page.count('<img class="logmel"') == mistakes
    assert "audio not available" not in page  # every mistake's clip came from ingest's records
    client, _exp = _mlflow(uri)
    (parent,) = [
        r
        for r in client.search_runs([_exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"predictions.csv", "predictions_table.json", "report.html"} <= names
    assert parent.data.metrics["expected_calibration_error"] == pytest.approx(
        summary["calibration"]["ece"]
    )
    out = tmp_path / "report.html"
    assert main(["report", parent.info.run_id, "--tracking-uri", uri, "-o", str(out)]) == 0
    assert out.read_text() == page


def test_mlflow_has_one_nested_run_per_fold_with_histories_and_a_loadable_model(finished_run):
    import mlflow

    uri = finished_run[2]
    client, exp = _mlflow(uri)
    children = [
        r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags
    ]
    assert sorted(r.data.tags["fold"] for r in children) == ["1", "2", "3"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert 0.0 <= child.data.metrics["test_accuracy"] <= 1.0
        # the default recipe is an ensemble of 3: each member its own curves
        for key in ("loss", "accuracy"):
            assert client.get_metric_history(child.info.run_id, key) == [], key
            for member in (1, 2, 3):
                history = client.get_metric_history(child.info.run_id, f"member{member}/{key}")
                assert [m.step for m in history] == [0, 1], (member, key)
        # urbannet trains every other fold on a fixed schedule: no validation curves
        assert client.get_metric_history(child.info.run_id, "val_loss") == []
        assert child.data.tags.get("validation_fold", "None") == "None"
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"confusion_matrix.json", "curves.png"} <= names
    models = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
    assert len(models) == 3
    # the logged model is the pyfunc that serves raw audio (components/serving.py)
    info = mlflow.models.get_model_info(f"models:/{models[0].model_id}")
    assert [c["name"] for c in info.signature.inputs.to_dict()] == [
        "path",
        "waveform",
        "sample_rate",
    ]
    model = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    keras_model = model.unwrap_python_model().keras_model  # the plain Keras model it carries
    probabilities = keras_model.predict(np.zeros((2, 128, 128, 1), np.float32), verbose=0)
    assert probabilities.shape == (2, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    import pandas as pd

    from urbansound.config import CLASS_NAMES
    from urbansound.demo_data import synthesize_clip

    y = synthesize_clip(3, sr=16000, duration_s=4.0, rng=np.random.default_rng(1))
    served = model.predict(pd.DataFrame({"waveform": [y.tolist()], "sample_rate": [16000]}))
    assert served["windows"][0] == 2 and served["class"][0] in CLASS_NAMES
    assert served[list(CLASS_NAMES)].to_numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_a_failing_stage_marks_the_mlflow_run_failed(demo_root, tmp_path, capsys):
    from urbansound.pipeline.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(
        [
            "run",
            "--data",
            str(demo_root),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--tracking-uri",
            uri,
            # passes the check before the run (a known runner and options), then the
            # features stage fails: no job server answers there
            "--beam-arg=--runner=PortableRunner",
            "--beam-arg=--job_endpoint=127.0.0.1:1",
            "--beam-arg=--job_server_timeout=5",
        ]
    )
    assert code == 1
    assert "pipeline failed" in capsys.readouterr().err
    client, exp = _mlflow(uri)
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    # what finished before the failure is still there: the ingest report
    assert "report.json" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}


def test_strict_run_with_a_broken_clip_stops_before_training_with_exit_2(tmp_path, capsys):

    from urbansound.demo_data import write_demo_dataset
    from urbansound.pipeline.cli import main

    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=1, seed=3)
    broken = sorted((data / "audio" / "fold2").glob("*.wav"))[0]
    broken.write_bytes(b"RIFF")  # a truncated header
    code = main(
        [
            "run",
            "--data",
            str(data),
            "--strict",
            "--out",
            str(tmp_path / "out"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "strict mode" in err and broken.name in err
    assert "Traceback" not in err
    assert not list((tmp_path / "out" / "pipeline_root").glob("*/for-loop*"))  # no training


def test_two_pipeline_runs_at_once_on_one_fresh_store_both_land_intact(tmp_path):
    import subprocess
    import sys

    from urbansound.demo_data import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=1, seed=4)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # does not exist yet: both race to create it
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "urbansound.pipeline.cli",
                "run",
                "--data",
                str(data),
                "--epochs",
                "1",
                "--seed",
                str(seed),
                "--out",
                str(tmp_path / f"out{seed}"),
                "--tracking-uri",
                uri,
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    client, exp = _mlflow(uri)
    all_runs = client.search_runs([exp.experiment_id])
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.data.params["train.seed"] for r in parents) == ["1", "2"]
    for parent in parents:
        assert parent.info.status == "FINISHED"
        assert "accuracy_mean" in parent.data.metrics
        children = [
            r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        ]
        assert sorted(r.data.tags["fold"] for r in children) == ["1", "2", "3"]
        assert {r.info.status for r in children} == {"FINISHED"}
