"""The team set-up for real: a PostgreSQL server (Debian's `postgresql`, started here in a
temporary folder on 127.0.0.1), `mlflow server` backed by it with proxied artifacts, a small
`urbansound run` logging to that server, and the runs read back through the server's REST
API (and seen in PostgreSQL's own tables).

`make test` (and so `.ci/run`) installs the `postgresql` package. Where it is absent or
cannot start the test is skipped with the reason, except under CI (CI=true), where that is
a failure: CI installs it.
"""

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
DB_USER, DB_PASSWORD, DB_NAME = "mlflow", "team-secret", "mlflow"


def _unavailable(reason: str):
    """Skip here; under CI, where .ci/run installs PostgreSQL, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL: {reason}")
    pytest.skip(f"PostgreSQL: {reason}")


def _pg_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class Postgres:
    """A throw-away PostgreSQL cluster: initdb in a temp folder, password authentication,
    listening on 127.0.0.1:port only (its socket in the data folder)."""

    def __init__(self, bin_dir: Path):
        self.bin, self.port = bin_dir, free_port()
        # initdb refuses to run as root: run it (and the server) as the `postgres` user
        # Debian's package creates, in a folder that user owns.
        self.as_user = []
        self.base = Path(tempfile.mkdtemp(prefix="urbansound-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                _unavailable("running as root and there is no `postgres` user to run it as")
            if not shutil.which("runuser"):
                _unavailable("running as root and `runuser` is missing")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.log = self.base / "data", self.base / "server.log"

    def _run(self, *argv, check=True):
        return subprocess.run(
            [*self.as_user, *argv], capture_output=True, text=True, check=check, timeout=180
        )

    def start(self):
        pwfile = self.base / "pw"
        pwfile.write_text(DB_PASSWORD + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres")
        init = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            DB_USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
            check=False,
        )
        pwfile.unlink()
        if init.returncode:
            _unavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
        started = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "120",
            "start",
            check=False,
        )
        if started.returncode:
            log = self.log.read_text()[-400:] if self.log.exists() else ""
            _unavailable(f"the server did not start: {started.stderr.strip()} {log}")

    def uri(self, database=DB_NAME) -> str:
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def connect(self, database=DB_NAME):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=DB_USER, password=DB_PASSWORD, dbname=database
        )

    def stop(self):
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False
        )
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    bin_dir = _pg_bin()
    if bin_dir is None:
        _unavailable("not installed (Debian: apt-get install postgresql; `make test` does)")
    server = Postgres(bin_dir)
    try:
        server.start()
        conn = server.connect("postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME}")
        conn.close()
        yield server
    finally:
        server.stop()


def _get(base, route, **query):
    url = f"{base}{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body[:1] in (b"{", b"[") else body


def _post(base, route, payload):
    request = urllib.request.Request(
        f"{base}{route}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on PostgreSQL with proxied artifacts in a temp folder; stopped by
    its process group (a plain kill of the CLI leaves its workers behind)."""
    artifacts = tmp_path_factory.mktemp("mlartifacts")
    port = free_port()
    log = open(tmp_path_factory.mktemp("mlflow-log") / "server.log", "w")
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(mlflow_cli),
            "server",
            "--backend-store-uri",
            postgres.uri(),
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=artifacts,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # first start creates MLflow's schema
        while True:
            try:
                if _get(base, "/health") == b"OK":
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = Path(log.name).read_text()[-1500:]
                pytest.fail(f"mlflow server did not answer /health: {tail}")
            time.sleep(1)
        yield base, artifacts
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        log.close()


@pytest.fixture(scope="module")
def pipeline_run(mlflow_server, tmp_path_factory):
    """`urbansound run --profile quick --folds 1` on a small built-in dataset (3 folds ×
    10 classes × 3 clips), logging to the server."""
    from urbansound.demo_data import write_demo_dataset

    base, _ = mlflow_server
    work = tmp_path_factory.mktemp("team-run")
    data = work / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=3, seed=1)
    env = dict(os.environ, MLFLOW_TRACKING_URI="")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "urbansound.pipeline.cli",
            "run",
            "--data",
            str(data),
            "--profile",
            "quick",
            "--folds",
            "1",
            "--tracking-uri",
            base,
            "--out",
            str(work / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    return base, done.stdout


def _runs(base):
    experiment = _get(
        base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="urbansound"
    )["experiment"]
    found = _post(
        base,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment_id"]], "max_results": 100},
    )
    runs = found.get("runs", [])
    for run in runs:  # lists of {key, value} as dicts
        for part in ("metrics", "params", "tags"):
            run["data"][part] = {i["key"]: i["value"] for i in run["data"].get(part, [])}
    return experiment, runs


def test_the_server_keeps_its_runs_in_postgresql(postgres, mlflow_server):
    """A run created through the REST API is a row in PostgreSQL's `runs` table."""
    base, _ = mlflow_server
    exp = _post(base, "/api/2.0/mlflow/experiments/create", {"name": "probe"})["experiment_id"]
    run = _post(base, "/api/2.0/mlflow/runs/create", {"experiment_id": exp})["run"]["info"]
    _post(
        base,
        "/api/2.0/mlflow/runs/log-metric",
        {"run_id": run["run_id"], "key": "x", "value": 0.25, "timestamp": 0, "step": 3},
    )
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT value, step FROM metrics WHERE run_uuid = %s AND key = 'x'", (run["run_id"],)
        )
        assert cur.fetchall() == [(0.25, 3)]
        cur.execute("SELECT version()")
        assert cur.fetchone()[0].startswith("PostgreSQL")


def test_pipeline_runs_read_back_through_the_rest_api(postgres, mlflow_server, pipeline_run):
    base, _stdout = pipeline_run
    _, artifacts = mlflow_server
    experiment, runs = _runs(base)
    parents = [r for r in runs if "mlflow.parentRunId" not in r["data"]["tags"]]
    assert len(parents) == 1, [r["info"]["run_name"] for r in runs]
    parent = parents[0]
    assert parent["info"]["status"] == "FINISHED"
    assert parent["data"]["params"]["train.epochs"] == "2"  # --profile quick
    metrics = parent["data"]["metrics"]
    assert {"accuracy_mean", "accuracy_median", "accuracy_std", "clips_accepted"} <= set(metrics)
    assert metrics["clips_accepted"] == 90

    children = [
        r for r in runs if r["data"]["tags"].get("mlflow.parentRunId") == parent["info"]["run_id"]
    ]
    assert [c["data"]["tags"]["fold"] for c in children] == ["1"]
    fold = children[0]
    assert fold["info"]["status"] == "FINISHED"
    assert 0.0 <= fold["data"]["metrics"]["test_accuracy"] <= 1.0
    # One test fold: the parent's mean is that fold's accuracy.
    assert metrics["accuracy_mean"] == pytest.approx(fold["data"]["metrics"]["test_accuracy"])
    history = _get(
        base,
        "/api/2.0/mlflow/metrics/get-history",
        run_id=fold["info"]["run_id"],
        metric_key="loss",
    )["metrics"]
    assert [m["step"] for m in history] == [0, 1]

    # Artifacts went through the server (proxied) into its artifacts destination.
    assert parent["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    listed = _get(base, "/api/2.0/mlflow/artifacts/list", run_id=parent["info"]["run_id"])
    assert {"summary.json", "confusion_matrix.json"} <= {f["path"] for f in listed["files"]}
    summary = _get(base, "/get-artifact", run_id=parent["info"]["run_id"], path="summary.json")
    assert isinstance(summary, dict), summary
    assert summary["mean"] == pytest.approx(metrics["accuracy_mean"])
    on_disk = list(Path(artifacts).rglob("summary.json"))
    assert len(on_disk) == 1 and json.loads(on_disk[0].read_text()) == summary

    # ...and the runs are PostgreSQL's rows.
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT run_uuid, status FROM runs WHERE experiment_id = %s",
            (int(experiment["experiment_id"]),),
        )
        rows = dict(cur.fetchall())
    assert rows == {r["info"]["run_id"]: "FINISHED" for r in runs}
