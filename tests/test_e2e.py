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
    from pipeline.cli import main

    work = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    code = main(["run", "--data", str(demo_root), "--epochs", "2", "--out", str(work / "out"),
                 "--tracking-uri", uri])
    return code, work, uri


def test_run_exits_zero_and_writes_the_summary(finished_run):
    code, work, _ = finished_run
    assert code == 0
    summaries = list((work / "out" / "pipeline_root").glob("*/evaluate*/evaluation/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert sorted(summary["folds"]) == ["1", "2", "3"]
    accs = np.array(list(summary["folds"].values()))
    assert summary["mean"] == pytest.approx(accs.mean())
    assert summary["median"] == pytest.approx(np.median(accs))
    assert summary["std"] == pytest.approx(accs.std())


def test_mlflow_has_a_finished_parent_with_metrics_and_artifacts(finished_run):
    _, _, uri = finished_run
    client, exp = _mlflow(uri)
    parents = [r for r in client.search_runs([exp.experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {"accuracy_mean", "accuracy_median", "accuracy_std"} <= set(parent.data.metrics)
    assert parent.data.params["train.epochs"] == "2"
    assert parent.data.params["train.model"] == "baseline"
    assert len(parent.data.params["dataset_hash"]) == 16
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "confusion_matrix.json", "confusion_matrix.png"} <= names
    local = client.download_artifacts(parent.info.run_id, "summary.json")
    summary = json.loads(Path(local).read_text())
    assert summary["mean"] == pytest.approx(parent.data.metrics["accuracy_mean"])


def test_mlflow_has_one_nested_run_per_fold_with_histories_and_a_loadable_model(finished_run):
    import mlflow

    _, _, uri = finished_run
    client, exp = _mlflow(uri)
    children = [r for r in client.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["fold"] for r in children) == ["1", "2", "3"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert 0.0 <= child.data.metrics["test_accuracy"] <= 1.0
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = client.get_metric_history(child.info.run_id, key)
            assert [m.step for m in history] == [0, 1], key
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"confusion_matrix.json", "curves.png"} <= names
    models = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
    assert len(models) == 3
    model = mlflow.keras.load_model(f"models:/{models[0].model_id}")
    probabilities = model.predict(np.zeros((2, 128, 128, 1), np.float32), verbose=0)
    assert probabilities.shape == (2, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_failing_stage_marks_the_mlflow_run_failed(demo_root, tmp_path, capsys):
    from pipeline.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["run", "--data", str(demo_root), "--epochs", "1", "--out", str(tmp_path / "out"),
                 "--tracking-uri", uri, "--beam-arg=--runner=NoSuchRunner"])
    assert code == 1
    assert "pipeline failed" in capsys.readouterr().err
    client, exp = _mlflow(uri)
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    # what finished before the failure is still there: the ingest report
    assert "report.json" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}


def test_strict_run_with_a_broken_clip_stops_before_training_with_exit_2(tmp_path, capsys):
    import shutil

    from pipeline.cli import main
    from urbansound.demo_data import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=1, seed=3)
    broken = sorted((data / "audio" / "fold2").glob("*.wav"))[0]
    broken.write_bytes(b"RIFF")  # a truncated header
    code = main(["run", "--data", str(data), "--strict", "--out", str(tmp_path / "out"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "strict mode" in err and broken.name in err
    assert "Traceback" not in err
    assert not list((tmp_path / "out" / "pipeline_root").glob("*/for-loop*"))  # no training
