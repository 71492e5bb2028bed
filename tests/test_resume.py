"""Faults: an interrupted run is marked KILLED in MLflow and the same command resumes it."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import processes_left

pytestmark = pytest.mark.e2e


def _fold_runs(db_path):
    """(fold, status) of every nested run, read straight from the sqlite store."""
    if not os.path.exists(db_path):
        return []
    try:
        with sqlite3.connect(db_path, timeout=1) as con:
            return con.execute(
                "SELECT t.value, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE t.key = 'fold'"
            ).fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
        return []


def test_sigterm_marks_runs_killed_and_a_rerun_resumes_from_the_cache(tmp_path):
    from urbansound.demo_data import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=3, seed=2)
    db = tmp_path / "mlflow.db"
    command = [
        sys.executable,
        "-m",
        "urbansound.pipeline.cli",
        "run",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--tracking-uri",
        f"sqlite:///{db}",
        "--epochs",
        "12",
        "--patience",
        "12",
    ]
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline = time.time() + 400
    # interrupt while the second fold trains (the first is finished and cached)
    while time.time() < deadline and first.poll() is None:
        runs = _fold_runs(db)
        if any(s == "FINISHED" for _, s in runs) and any(s == "RUNNING" for _, s in runs):
            break
        time.sleep(0.5)
    assert first.poll() is None, "the run ended before it could be interrupted"
    time.sleep(2)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 130
    log.close()
    statuses = sorted(_fold_runs(db))
    assert ("FINISHED" in [s for _, s in statuses]) and ("KILLED" in [s for _, s in statuses])
    assert "RUNNING" not in [s for _, s in statuses]
    with sqlite3.connect(db) as con:
        parent_status = con.execute(
            "SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'urbansound.run_key'"
        ).fetchall()
    assert parent_status == [("KILLED",)]
    assert processes_left(str(tmp_path / "out")) == []  # no task left running

    second = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    for task in ("ingest-component", "features-component", "train-component"):
        assert f"✓ {task} from cache" in output, task
    runs = _fold_runs(db)
    finished = sorted(f for f, s in runs if s == "FINISHED")
    assert finished == ["1", "2", "3"]  # each fold once, the interrupted one trained again
    assert [s for _, s in runs].count("KILLED") == 1
    with sqlite3.connect(db) as con:
        parents = con.execute(
            "SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'urbansound.run_key'"
        ).fetchall()
    assert parents == [("FINISHED",)]  # the same parent run, reopened and finished
