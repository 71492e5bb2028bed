"""``urbansound compare``: the study's Table 1 and box plot across runs, from MLflow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from urbansound.comparison import RunAccuracies, comparison_rows, format_comparison, plot_fold_boxes
from urbansound.config import ConfigError

SB = RunAccuracies("run-sb", "sb-cnn", "none", {1: 0.50, 2: 0.60, 3: 0.58})
URBAN = RunAccuracies("run-un", "urbannet", "none", {1: 0.80, 2: 0.70, 3: 0.78})
AUG = RunAccuracies("run-aug", "sb-cnn", "pitch_shift_2+drc_film_standard", {1: 0.62, 2: 0.64})


def test_rows_are_sorted_by_mean_with_median_and_population_std():
    rows = comparison_rows([SB, URBAN, AUG, RunAccuracies("empty", "improved", "none", {})])
    assert [r["run_id"] for r in rows] == ["run-un", "run-aug", "run-sb"]  # "empty" has no folds
    un = rows[0]
    assert un["mean"] == pytest.approx(0.76) and un["median"] == pytest.approx(0.78)
    assert un["std"] == pytest.approx(np.std([0.8, 0.7, 0.78]))
    assert un["folds"] == [1, 2, 3]
    assert rows[1]["label"] == "sb-cnn + pitch_shift_2+drc_film_standard"


def test_table_text_has_one_line_per_run_and_the_study_rows():
    text = format_comparison(comparison_rows([SB, URBAN]))
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["model", "folds", "mean", "median", "std"]
    assert lines[1].split() == ["urbannet", "1,2,3", "76.0%", "78.0%", "4.3%", "run-un"]
    assert lines[2].split() == ["sb-cnn", "1,2,3", "56.0%", "58.0%", "4.3%", "run-sb"]
    assert "study: baseline (SB-CNN)" in lines[3] and "56.2%" in lines[3]
    assert len(lines) == 1 + 2 + 3


def test_box_plot_is_a_png(tmp_path):
    path = tmp_path / "box.png"
    plot_fold_boxes([SB, URBAN, AUG], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no run with fold accuracies"):
        plot_fold_boxes([RunAccuracies("e", "m", "none", {})], tmp_path / "none.png")


# ---------------------------------------------------------------------------
# From MLflow: parent runs with nested fold runs, as the pipeline logs them
# ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("urbansound", artifact_location=str(tmp_path / "artifacts"))
    parents = {}
    for run in (SB, URBAN):
        parent = client.create_run(exp, run_name=f"{run.model} folds 1-3")
        client.log_param(parent.info.run_id, "train.model", run.model)
        client.log_param(parent.info.run_id, "augment.deformations", json.dumps([]))
        for fold, acc in run.fold_accuracies.items():
            child = client.create_run(
                exp,
                run_name=f"fold-{fold}",
                tags={"mlflow.parentRunId": parent.info.run_id, "fold": str(fold)},
            )
            client.log_metric(child.info.run_id, "test_accuracy", acc)
            client.set_terminated(child.info.run_id, "FINISHED")
        # a fold that was killed does not count
        killed = client.create_run(
            exp, tags={"mlflow.parentRunId": parent.info.run_id, "fold": "9"}
        )
        client.log_metric(killed.info.run_id, "test_accuracy", 0.01)
        client.set_terminated(killed.info.run_id, "KILLED")
        client.set_terminated(parent.info.run_id, "FINISHED")
        parents[run.model] = parent.info.run_id
    return uri, parents, client


def test_compare_reads_every_pipeline_run_and_logs_a_comparison_run(store, tmp_path):
    from urbansound.pipeline.compare import BOXPLOT_FILE, compare, load_runs

    uri, parents, client = store
    runs = {r.model: r for r in load_runs(uri)}
    assert runs["sb-cnn"].fold_accuracies == pytest.approx(SB.fold_accuracies)
    assert runs["urbannet"].run_id == parents["urbannet"]
    table, plot, logged = compare(uri, out_dir=tmp_path / "cmp")
    assert table.splitlines()[1].split()[0] == "urbannet"
    assert plot == tmp_path / "cmp" / BOXPLOT_FILE and plot.exists()
    run = client.get_run(logged)
    assert run.data.tags["urbansound.kind"] == "comparison"
    assert set(run.data.tags["urbansound.compared_runs"].split(",")) == set(parents.values())
    names = {a.path for a in client.list_artifacts(logged)}
    assert names == {"fold_accuracy_boxplot.png", "comparison.txt", "comparison.json"}
    # a second compare does not count the comparison run as a pipeline run
    assert {r.run_id for r in load_runs(uri)} == set(parents.values())


def test_compare_named_runs_and_errors(store):
    from urbansound.pipeline.compare import compare, load_runs

    uri, parents, client = store
    assert [r.model for r in load_runs(uri, [parents["sb-cnn"]])] == ["sb-cnn"]
    with pytest.raises(ConfigError, match="no run 'nope'"):
        load_runs(uri, ["nope"])
    child = client.search_runs(
        [client.get_experiment_by_name("urbansound").experiment_id], filter_string="tags.fold = '1'"
    )[0]
    with pytest.raises(
        ConfigError,
        match=rf"is a fold run; give its pipeline run "
        rf"{child.data.tags['mlflow.parentRunId']}",
    ):
        load_runs(uri, [child.info.run_id])
    with pytest.raises(ConfigError, match="no experiment 'other'"):
        compare(uri, experiment="other", log=False)


def test_compare_command_prints_the_table_and_writes_the_plot(store, tmp_path, capsys):
    from urbansound.pipeline.cli import main

    uri, parents, _ = store
    code = main(
        [
            "compare",
            parents["sb-cnn"],
            parents["urbannet"],
            "--tracking-uri",
            uri,
            "--out",
            str(tmp_path / "cmp"),
            "--no-log",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["urbannet", "1,2,3"]
    assert (tmp_path / "cmp" / "fold_accuracy_boxplot.png").exists()
    assert "logged to MLflow" not in out
    assert main(["compare", "--tracking-uri", uri, "--experiment", "nope"]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
