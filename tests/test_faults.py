"""Real faults, not mocks: a full disk, SIGKILL of everything, four runs at once.

Every run here uses a tiny dataset (3 folds × 10 classes × 1 clip) and trains one
test fold for a few epochs, so one pipeline takes about a minute.  Results are
compared with one uninterrupted run: on CPU with op determinism the same
configuration gives the same test accuracy and loss whatever happened before.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import processes_left, processes_mentioning

pytestmark = pytest.mark.e2e

ARGS = ["--folds", "1", "--epochs", "5", "--patience", "5", "--seed", "1"]
CLI = [sys.executable, "-m", "urbansound.pipeline.cli", "run"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from urbansound.demo_data import write_demo_dataset

    root = tmp_path_factory.mktemp("faults-data")
    write_demo_dataset(root, folds=(1, 2, 3), clips_per_class=1, seed=5)
    return root


def _command(data, out, db, *extra):
    return CLI + [
        "--data",
        str(data),
        "--out",
        str(out),
        "--tracking-uri",
        f"sqlite:///{db}",
        *ARGS,
        *extra,
    ]


def _run(command, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.time()
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    done.wall_s = time.time() - started
    return done


def _parents(db):
    """(run id, status) of every parent run in the store."""
    with sqlite3.connect(db, timeout=30) as con:
        return con.execute(
            "SELECT r.run_uuid, r.status FROM runs r JOIN tags t ON "
            "t.run_uuid = r.run_uuid WHERE t.key = 'urbansound.run_key' AND "
            "r.lifecycle_stage = 'active'"
        ).fetchall()


def _fold_runs(db, parent):
    """(fold, status) of the active fold runs of a parent."""
    with sqlite3.connect(db, timeout=30) as con:
        return sorted(
            con.execute(
                "SELECT f.value, r.status FROM runs r "
                "JOIN tags f ON f.run_uuid = r.run_uuid AND f.key = 'fold' "
                "JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'mlflow.parentRunId' "
                "WHERE p.value = ? AND r.lifecycle_stage = 'active'",
                (parent,),
            ).fetchall()
        )


def _fold_metrics(db, parent):
    """{fold: (test_accuracy, test_loss)} of the FINISHED fold runs of a parent."""
    with sqlite3.connect(db, timeout=30) as con:
        rows = con.execute(
            "SELECT f.value, m.key, m.value FROM runs r "
            "JOIN tags f ON f.run_uuid = r.run_uuid AND f.key = 'fold' "
            "JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'mlflow.parentRunId' "
            "JOIN latest_metrics m ON m.run_uuid = r.run_uuid "
            "WHERE p.value = ? AND r.lifecycle_stage = 'active' AND r.status = 'FINISHED' "
            "AND m.key IN ('test_accuracy', 'test_loss')",
            (parent,),
        ).fetchall()
    found = {}
    for fold, key, value in rows:
        found.setdefault(fold, {})[key] = value
    return {f: (v["test_accuracy"], round(v["test_loss"], 5)) for f, v in found.items()}


def _metric_count(db, run_id, key):
    with sqlite3.connect(db, timeout=30) as con:
        return con.execute(
            "SELECT count(*) FROM metrics WHERE run_uuid = ? AND key = ?", (run_id, key)
        ).fetchone()[0]


def _summary(stdout):
    """This run's own summary, from the path the CLI printed."""
    path = [
        line.split("summary: ", 1)[1]
        for line in stdout.splitlines()
        if line.startswith("summary: ")
    ]
    assert len(path) == 1, stdout[-2000:]
    return Path(path[0]), json.loads(Path(path[0]).read_text())


def _only_parent_results(db):
    parents = _parents(db)
    assert len(parents) == 1, parents
    parent, status = parents[0]
    assert status == "FINISHED"
    assert _fold_runs(db, parent).count(("1", "FINISHED")) == 1  # fold 1 logged once
    assert _metric_count(db, parent, "accuracy_mean") == 1
    return _fold_metrics(db, parent)


@pytest.fixture(scope="module")
def baseline(data, tmp_path_factory):
    """The uninterrupted run every fault is compared with."""
    work = tmp_path_factory.mktemp("faults-baseline")
    done = _run(_command(data, work / "out", work / "mlflow.db"), cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"baseline run: {done.wall_s:.0f} s")
    results = _only_parent_results(work / "mlflow.db")
    assert set(results) == {"1"}
    return results, _summary(done.stdout)[1]["folds"]


# ---------------------------------------------------------------- a full disk


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs was refused here: {done.stderr.strip()}")


def _remount(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _assert_one_line_no_space(done, path: Path):
    err_lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(err_lines) == 1, done.stderr
    assert str(path) in err_lines[0]
    assert "no space left" in err_lines[0].lower()
    assert "Traceback" not in done.stderr
    print(f"exit 2: {err_lines[0]}")


def test_disk_full_in_the_output_folder_stops_with_one_line_and_resumes(data, baseline, tmp_path):
    out = tmp_path / "small-out"
    _mount_tmpfs(out, "5m")  # ingest alone writes ≈ 8 MB of waveforms
    try:
        command = _command(data, out, tmp_path / "mlflow.db")
        first = _run(command, cwd=tmp_path)
        _assert_one_line_no_space(first, out)
        print(f"disk full in --out: stopped after {first.wall_s:.0f} s")
        assert [s for _, s in _parents(tmp_path / "mlflow.db")] == ["FAILED"]

        _remount(out, "300m")  # space freed: the same command resumes
        second = _run(command, cwd=tmp_path)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        print(f"disk full in --out: resumed run {second.wall_s:.0f} s")
        assert _only_parent_results(tmp_path / "mlflow.db") == baseline[0]
        assert _summary(second.stdout)[1]["folds"] == baseline[1]
    finally:
        _umount(out)


def test_disk_full_in_the_tracking_store_stops_with_one_line_and_resumes(data, baseline, tmp_path):
    store = tmp_path / "small-store"
    _mount_tmpfs(store, "5m")  # the database fits, the fold's model (≈ 8 MB) does not
    try:
        db = store / "mlflow.db"
        command = _command(data, tmp_path / "out", db)
        first = _run(command, cwd=tmp_path)
        _assert_one_line_no_space(first, store)
        print(f"disk full in the store: stopped after {first.wall_s:.0f} s")
        assert "from cache" not in first.stdout

        _remount(store, "300m")
        second = _run(command, cwd=tmp_path)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        print(f"disk full in the store: resumed run {second.wall_s:.0f} s")
        assert "✓ features-component from cache" in second.stdout  # resumed, not redone
        assert _only_parent_results(db) == baseline[0]
    finally:
        _umount(store)


# ---------------------------------------------------------------- SIGKILL


def _descends_from(pid, ancestor):
    """Whether process ``pid`` is a descendant of process ``ancestor`` (its parents read
    from /proc; a process that is gone ends the walk)."""
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                # the command name may hold spaces: the fields after ")" are state, ppid, …
                pid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
        if pid == ancestor:
            return True
    return False


def _beam_workers_under(ancestor):
    """PIDs of Beam SDK worker processes descended from process ``ancestor`` (the local
    runner starts its own session, so the CLI's process group does not hold them)."""
    return [pid for pid in processes_mentioning("sdk_worker_main") if _descends_from(pid, ancestor)]


def _kill_when(command, cwd, out, ready, timeout=600):
    """Start the CLI in its own process group, SIGKILL that group once ``ready(pid)``."""
    log = open(cwd / "killed.log", "w")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready(process.pid):
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    log.close()
    # the pipeline's own process group (tasks, Beam workers) goes down with the CLI
    assert processes_left(str(out)) == []


def _cached_artifacts_are_complete(pipeline_root: Path):
    """Every artifact kfp's cache would serve is whole: TFRecords read to the end
    with the count their manifest gives, models load."""
    code = r"""
import json, sys, pathlib
import tensorflow as tf, keras
checked = 0
for entry in pathlib.Path(sys.argv[1], ".kfp_cache").glob("*.json"):
    for value in json.loads(entry.read_text()).values():
        for art in value.get("artifacts", [value]) if isinstance(value, dict) else []:
            uri = pathlib.Path(art.get("uri", ""))
            manifest = uri / "manifest.json"
            if manifest.exists():
                folds = json.loads(manifest.read_text())["folds"]
                for fold, n in folds.items():
                    n = sum(n.values()) if isinstance(n, dict) else n
                    records = sum(1 for _ in tf.data.TFRecordDataset(str(uri / f"fold{fold}.tfrecord")))
                    assert records == n, (uri, fold, records, n)
                    checked += 1
            for model in uri.glob("*.keras") if uri.is_dir() else []:
                keras.models.load_model(model)
                checked += 1
print("checked", checked)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(pipeline_root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) >= 3  # waveforms, features, a model


def test_sigkill_in_the_middle_of_features_then_the_rerun_matches(data, baseline, tmp_path):
    out, db = tmp_path / "out", tmp_path / "mlflow.db"
    command = _command(data, out, db)

    def features_running(cli_pid):
        # Beam's worker processes are up: the stage is computing and writing. On 30 clips
        # they live ≈ 2 s of the stage's ≈ 5 s, so a fixed sleep after the task starts
        # could (and on CI did) let the stage finish before the kill.
        return bool(_beam_workers_under(cli_pid))

    started = time.time()
    _kill_when(command, tmp_path, out, features_running)
    print(f"SIGKILL during features after {time.time() - started:.0f} s")
    log = (out / "run.log").read_text()
    assert "Executing task 'features-component'" in log
    assert "Task 'features-component' finished" not in log  # killed mid-stage, not after
    rerun = _run(command, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    print(f"rerun after SIGKILL during features: {rerun.wall_s:.0f} s")
    assert "✓ ingest-component from cache" in rerun.stdout
    assert "features-component from cache" not in rerun.stdout  # never half a features stage
    assert _only_parent_results(db) == baseline[0]
    assert _summary(rerun.stdout)[1]["folds"] == baseline[1]
    _cached_artifacts_are_complete(out / "pipeline_root")


def test_sigkill_in_the_middle_of_training_then_the_rerun_matches(data, baseline, tmp_path):
    out, db = tmp_path / "out", tmp_path / "mlflow.db"
    command = _command(data, out, db)

    def training(_cli_pid):  # the fold run is open and has logged at least one epoch
        # (a single model logs ``loss``; an ensemble's members ``member<k>/loss``)
        if not db.exists():
            return False
        try:
            with sqlite3.connect(db, timeout=1) as con:
                return (
                    con.execute(
                        "SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                        "JOIN metrics m ON m.run_uuid = r.run_uuid WHERE t.key = 'fold' "
                        "AND r.status = 'RUNNING' "
                        "AND (m.key = 'loss' OR m.key LIKE 'member%/loss')"
                    ).fetchone()[0]
                    > 0
                )
        except sqlite3.OperationalError:
            return False

    started = time.time()
    _kill_when(command, tmp_path, out, training)
    print(f"SIGKILL during training after {time.time() - started:.0f} s")
    parent = _parents(db)[0][0]
    assert _fold_runs(db, parent) == [("1", "RUNNING")]  # nobody could mark it: SIGKILL
    rerun = _run(command, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    print(f"rerun after SIGKILL during training: {rerun.wall_s:.0f} s")
    assert "✓ features-component from cache" in rerun.stdout
    assert "train-component from cache" not in rerun.stdout  # never a partial model
    assert _fold_runs(db, parent) == [("1", "FINISHED"), ("1", "KILLED")]
    assert _only_parent_results(db) == baseline[0]
    _cached_artifacts_are_complete(out / "pipeline_root")


# ---------------------------------------------------------------- load


def test_four_pipelines_at_once_on_one_sqlite_store(data, baseline, tmp_path):
    db = tmp_path / "mlflow.db"  # a fresh store: all four race to create it
    # two with the same arguments (only --out differs), two with other seeds
    extras = [[], [], ["--seed", "2"], ["--seed", "3"]]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.time()
    runs = [
        subprocess.Popen(
            _command(data, tmp_path / f"out{i}", db) + extra,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, extra in enumerate(extras)
    ]
    # a fifth run on an --out in use is refused at once, with one line
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "out0" / "run.log").exists():
        time.sleep(0.5)  # the log is opened once the run holds its --out
    busy = _run(_command(data, tmp_path / "out0", db), cwd=tmp_path, timeout=120)
    err_lines = [line for line in busy.stderr.splitlines() if line.strip()]
    assert busy.returncode == 2, busy.stderr
    assert len(err_lines) == 1 and "in use" in err_lines[0], busy.stderr
    assert str(tmp_path / "out0") in err_lines[0]
    assert busy.wall_s < 60
    outputs = [run.communicate(timeout=1800) for run in runs]
    print(f"four pipelines at once: {time.time() - started:.0f} s")
    assert [run.returncode for run in runs] == [0, 0, 0, 0], [o[1][-2000:] for o in outputs]
    parents = _parents(db)
    assert len(parents) == 4 and {s for _, s in parents} == {"FINISHED"}
    for parent, _ in parents:
        assert _fold_runs(db, parent) == [("1", "FINISHED")]
        assert _metric_count(db, parent, "accuracy_mean") == 1
        assert _metric_count(db, parent, "clips_accepted") == 1
    for i, (stdout, _) in enumerate(outputs):  # each run read its own results
        path, _ = _summary(stdout)
        assert str(tmp_path / f"out{i}") in str(path)
    same = [_summary(outputs[i][0])[1]["folds"] for i in (0, 1)]
    assert same[0] == same[1] == baseline[1]


# ---------------------------------------------------------------- a server that goes away


def test_a_tracking_server_that_goes_away_mid_run_is_reported_once(data, baseline, tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--default-artifact-root",
            str(tmp_path / "server-artifacts"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow server did not start")
        out = tmp_path / "out"
        command = CLI + ["--data", str(data), "--out", str(out), "--tracking-uri", uri, *ARGS]
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        started = time.time()
        run = subprocess.Popen(
            command,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.time() + 600
        while time.time() < deadline and run.poll() is None:
            log = out / "run.log"
            if log.exists() and "Executing task 'train-component'" in log.read_text():
                break
            time.sleep(0.5)
        os.killpg(server.pid, signal.SIGKILL)  # the server goes away while the fold trains
        stdout, stderr = run.communicate(timeout=900)
        took = time.time() - started
        print(f"run with a tracking server gone mid-run: {took:.0f} s")
        assert run.returncode == 0, stdout[-3000:] + stderr[-3000:]
        assert (stdout + stderr).count("stopped answering") == 2  # once live, once at the end
        assert "Traceback" not in stderr
        assert _summary(stdout)[1]["folds"] == baseline[1]  # the run's own outputs are whole
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait(timeout=30)
