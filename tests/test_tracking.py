"""MLflow bookkeeping (components/tracking_store.py, components/runs.py): the store, run layout,
closing, concurrent writers."""

import multiprocessing
import os

import pytest

from urbansound.components import runs, tracking_store


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_artifacts_of_a_sqlite_store_go_beside_the_database(tmp_path):
    location = tracking_store.default_artifact_location(f"sqlite:///{tmp_path}/mlflow.db")
    assert location == (tmp_path / "mlartifacts").as_uri()
    assert tracking_store.default_artifact_location("http://mlflow:5000") is None


def test_tracking_uri_falls_back_to_the_environment_and_else_is_off(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_store.resolve_uri("") == ""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_store.resolve_uri("") == "http://127.0.0.1:5000"
    assert tracking_store.resolve_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_same_run_key_reopens_an_interrupted_parent_but_never_a_finished_one(uri):
    first = runs.start_parent_run(uri, "key-1", {"train.epochs": 5})
    stale = runs.start_fold_run(uri, first, 1, {"a": 1})  # its process was SIGKILLed
    client = tracking_store.client(uri)
    again = runs.start_parent_run(uri, "key-1", {"train.epochs": 5})  # resumed
    assert again == first
    assert client.get_run(first).info.status == "RUNNING"
    assert client.get_run(stale).info.status == "KILLED"  # not left RUNNING forever
    assert runs.finish_runs(uri, "key-1", "FINISHED") == first
    assert runs.start_parent_run(uri, "key-1", {"train.epochs": 5}) == first
    assert client.get_run(first).info.status == "FINISHED"  # not reopened
    other = runs.start_parent_run(uri, "key-2", {"train.epochs": 5})
    assert other != first


def test_a_fold_trained_again_under_one_parent_is_logged_once(uri):
    parent = runs.start_parent_run(uri, "k", {"a": 1})
    old = runs.start_fold_run(uri, parent, 1, {"a": 1})
    tracking_store.client(uri).set_terminated(old, "FINISHED")
    new = runs.start_fold_run(uri, parent, 1, {"a": 1})
    client = tracking_store.client(uri)
    exp = client.get_run(parent).info.experiment_id
    active = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.run_id for r in active] == [new]
    assert client.get_run(old).data.tags[runs.SUPERSEDED_TAG] == new


def test_summary_and_ingest_metrics_logged_again_are_not_repeated(uri, tmp_path):
    parent = runs.start_parent_run(uri, "k", {"a": 1})
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text("{}")
    (tmp_path / "report.json").write_text("{}")
    for _ in range(2):  # e.g. the evaluate task ran again after an interruption
        runs.log_summary(
            uri, parent, {"mean": 0.5, "median": 0.5, "std": 0.1}, str(tmp_path / "eval")
        )
        runs.log_ingest(uri, parent, "abc", 30, 0, str(tmp_path / "report.json"))
    client = tracking_store.client(uri)
    for key in ("accuracy_mean", "accuracy_std", "clips_accepted"):
        assert len(client.get_metric_history(parent, key)) == 1, key


def test_check_store_accepts_a_new_sqlite_store_and_creates_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'deeper' / 'mlflow.db'}"
    tracking_store.check_store(uri)
    assert (tmp_path / "new" / "deeper" / "mlflow.db").is_file()
    tracking_store.check_store(uri)  # and an existing one


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: f"sqlite:///{_file(p)}/mlflow.db", "is not a folder"),
        (lambda p: f"sqlite:///{_file(p, b'x' * 4096)}", "not a usable sqlite database"),
        (lambda p: "sqlite:////proc/mlflow.db", "cannot write in /proc"),
        (lambda p: "garbage", "not a tracking store URI"),
        (lambda p: "foo://bar", "unsupported scheme"),
        (lambda p: "file:///tmp/mlruns", "not a tracking store URI"),
    ],
)
def test_check_store_refuses_unusable_stores_in_one_line(make, reason, tmp_path):
    uri = make(tmp_path)
    with pytest.raises(tracking_store.TrackingStoreError) as refused:
        tracking_store.check_store(uri)
    message = str(refused.value)
    assert message.startswith(f"{uri}: ") and reason in message and "\n" not in message


def _file(folder, content=b""):
    path = folder / "a-file"
    path.write_bytes(content)
    return path


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_goes_away_is_reported_once_and_the_run_goes_on(
    tmp_path, monkeypatch, capsys
):
    import time

    uri = f"http://127.0.0.1:{_closed_port()}"
    marker = tmp_path / "unreachable"
    monkeypatch.setenv(tracking_store.UNREACHABLE_FILE_ENV, str(marker))
    for key, value in tracking_store.TASK_HTTP_ENV.items():
        monkeypatch.setenv(key, value)
    started = time.time()
    assert runs.start_fold_run(uri, "parent", 1, {"a": 1}) == ""  # no exception
    assert time.time() - started < 30  # MLflow's defaults would retry for minutes
    assert marker.exists()
    tracking_store._broken.clear()  # as in the next task's process: the marker alone is enough
    started = time.time()
    runs.log_summary(uri, "parent", {"mean": 1, "median": 1, "std": 0}, str(tmp_path))
    assert runs.finish_runs(uri, "key", "FINISHED") is None
    assert time.time() - started < 1  # skipped, not retried
    err = capsys.readouterr().err
    assert err.count("stopped answering") == 1 and uri in err


def test_a_full_store_ends_the_task_with_one_line_and_exit_2(tmp_path, capsys):
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs was refused here (needs root)")
    try:
        uri = f"sqlite:///{mount / 'mlflow.db'}"
        parent = runs.start_parent_run(uri, "k", {"a": 1})
        big = tmp_path / "eval"
        big.mkdir()
        (big / "curves.png").write_bytes(os.urandom(3 << 20))  # more than the store holds
        with pytest.raises(SystemExit) as stopped:
            runs.log_summary(uri, parent, {"mean": 1, "median": 1, "std": 0}, str(big))
        assert stopped.value.code == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]  # after the store's INFO lines
        assert line.startswith("urbansound tracking: error: cannot write ") and str(mount) in line
        assert "no space left" in line.lower()
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_finish_closes_running_fold_runs_with_the_parent(uri):
    parent = runs.start_parent_run(uri, "k", {"a": 1})
    done = runs.start_fold_run(uri, parent, 1, {"a": 1})
    running = runs.start_fold_run(uri, parent, 2, {"a": 1})
    client = tracking_store.client(uri)
    client.set_terminated(done, "FINISHED")
    runs.finish_runs(uri, "k", "FAILED")
    assert client.get_run(parent).info.status == "FAILED"
    assert client.get_run(running).info.status == "FAILED"
    assert client.get_run(done).info.status == "FINISHED"  # finished work is not rewritten
    assert client.get_run(running).data.tags["mlflow.parentRunId"] == parent
    assert client.get_run(running).data.tags["fold"] == "2"


def _one_pipeline_run(args):
    """What one pipeline run writes: a parent, 3 fold runs with 15 epochs each."""
    uri, key = args
    from mlflow.entities import Metric

    parent = runs.start_parent_run(uri, key, {f"p{i}": i for i in range(150)})
    client = tracking_store.client(uri)
    for fold in (1, 2, 3):
        run = runs.start_fold_run(uri, parent, fold, {"fold": fold})
        for epoch in range(15):
            client.log_batch(
                run,
                metrics=[
                    Metric("val_accuracy", epoch / 15, 0, epoch),
                    Metric("loss", 1 / (epoch + 1), 0, epoch),
                ],
            )
        client.log_metric(run, "test_accuracy", 0.5)
        client.set_terminated(run, "FINISHED")
    runs.finish_runs(uri, key, "FINISHED")
    return parent


def test_two_runs_at_once_against_one_sqlite_store_both_land_intact(uri):
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        parents = pool.map(_one_pipeline_run, [(uri, "run-a"), (uri, "run-b")])
    client = tracking_store.client(uri)
    exp = client.get_experiment_by_name(runs.EXPERIMENT)
    found = client.search_runs([exp.experiment_id], max_results=100)
    assert len(found) == 8
    assert {r.info.status for r in found} == {"FINISHED"}
    for parent in parents:
        assert len(client.get_run(parent).data.params) == 150
        children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent]
        assert sorted(r.data.tags["fold"] for r in children) == ["1", "2", "3"]
        for child in children:
            assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 15


def test_class_names_become_valid_metric_keys(tmp_path):
    from urbansound.components.runs import log_summary, metric_safe, start_parent_run

    assert metric_safe("dog (bark)") == "dog _bark_"
    assert metric_safe("street_music") == "street_music"
    assert metric_safe("Straße/äu") == "Stra_e/_u"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = start_parent_run(uri, "key-1", {"train.model": "urbannet"})
    (tmp_path / "eval").mkdir()
    log_summary(
        uri,
        run_id,
        {"mean": 0.5, "median": 0.5, "std": 0.0, "per_class": {"dog (bark)": 0.75, "café": 0.25}},
        str(tmp_path / "eval"),
    )
    import mlflow

    metrics = mlflow.MlflowClient(uri).get_run(run_id).data.metrics
    assert metrics["accuracy_class_00_dog _bark_"] == 0.75
    assert metrics["accuracy_class_01_caf_"] == 0.25
