"""MLflow bookkeeping (components/tracking.py): run layout, closing, concurrent writers."""
import multiprocessing

import pytest

from components import tracking


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_artifacts_of_a_sqlite_store_go_beside_the_database(tmp_path):
    location = tracking.default_artifact_location(f"sqlite:///{tmp_path}/mlflow.db")
    assert location == (tmp_path / "mlartifacts").as_uri()
    assert tracking.default_artifact_location("http://mlflow:5000") is None


def test_tracking_uri_falls_back_to_the_environment_and_else_is_off(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri("") == ""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_uri("") == "http://127.0.0.1:5000"
    assert tracking.resolve_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_same_run_key_reopens_the_same_parent(uri):
    first = tracking.start_parent_run(uri, "key-1", {"train.epochs": 5})
    assert tracking.finish_runs(uri, "key-1", "KILLED") == first
    client = tracking.client(uri)
    assert client.get_run(first).info.status == "KILLED"
    again = tracking.start_parent_run(uri, "key-1", {"train.epochs": 5})
    assert again == first
    assert client.get_run(first).info.status == "RUNNING"
    other = tracking.start_parent_run(uri, "key-2", {"train.epochs": 5})
    assert other != first


def test_finish_closes_running_fold_runs_with_the_parent(uri):
    parent = tracking.start_parent_run(uri, "k", {"a": 1})
    done = tracking.start_fold_run(uri, parent, 1, {"a": 1})
    running = tracking.start_fold_run(uri, parent, 2, {"a": 1})
    client = tracking.client(uri)
    client.set_terminated(done, "FINISHED")
    tracking.finish_runs(uri, "k", "FAILED")
    assert client.get_run(parent).info.status == "FAILED"
    assert client.get_run(running).info.status == "FAILED"
    assert client.get_run(done).info.status == "FINISHED"  # finished work is not rewritten
    assert client.get_run(running).data.tags["mlflow.parentRunId"] == parent
    assert client.get_run(running).data.tags["fold"] == "2"


def _one_pipeline_run(args):
    """What one pipeline run writes: a parent, 3 fold runs with 15 epochs each."""
    uri, key = args
    from mlflow.entities import Metric

    parent = tracking.start_parent_run(uri, key, {f"p{i}": i for i in range(150)})
    client = tracking.client(uri)
    for fold in (1, 2, 3):
        run = tracking.start_fold_run(uri, parent, fold, {"fold": fold})
        for epoch in range(15):
            client.log_batch(run, metrics=[Metric("val_accuracy", epoch / 15, 0, epoch),
                                           Metric("loss", 1 / (epoch + 1), 0, epoch)])
        client.log_metric(run, "test_accuracy", 0.5)
        client.set_terminated(run, "FINISHED")
    tracking.finish_runs(uri, key, "FINISHED")
    return parent


def test_two_runs_at_once_against_one_sqlite_store_both_land_intact(uri):
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        parents = pool.map(_one_pipeline_run, [(uri, "run-a"), (uri, "run-b")])
    client = tracking.client(uri)
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 8
    assert {r.info.status for r in runs} == {"FINISHED"}
    for parent in parents:
        assert len(client.get_run(parent).data.params) == 150
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
        assert sorted(r.data.tags["fold"] for r in children) == ["1", "2", "3"]
        for child in children:
            assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 15
