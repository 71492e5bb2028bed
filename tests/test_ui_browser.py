"""The MLflow UI as a person sees it (issue 8): `urbansound ui` on a small store, the page it
prints opened in a real headless Chromium (Debian's `chromium`, which `make test` installs),
the parent run, its fold runs and the accuracy column read from the rendered page, and a
screenshot saved in the test's temporary folder.

Where chromium is not installed or cannot start, the test is skipped with the reason, except
under CI (CI=true), where that is a failure: CI installs it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import CHROMIUM_BASE_FLAGS, chromium_unavailable, free_port

# Flags from ../shared/STACK.md: root needs --no-sandbox; a single-page app needs the virtual
# time budget to fetch its runs and render before the DOM is dumped or the shot is taken.
CHROMIUM_FLAGS = [
    *CHROMIUM_BASE_FLAGS,
    "--window-size=1600,1000",
    "--virtual-time-budget=15000",
]
CHROMIUM_TIMEOUT_S = 120  # a loaded 2-core machine: a render can take a minute
UI_START_TIMEOUT_S = 150  # `mlflow ui` takes 30-90 s to answer here under load


def _browse(chromium: str, url: str, *action: str, home: Path) -> subprocess.CompletedProcess:
    """Run headless chromium once on ``url`` (``--dump-dom`` or ``--screenshot=PATH``)."""
    try:
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, *action, url],
            capture_output=True,
            text=True,
            timeout=CHROMIUM_TIMEOUT_S,
            env={**os.environ, "HOME": str(home)},
        )  # profile in tmp
    except subprocess.TimeoutExpired:
        chromium_unavailable(f"no page within {CHROMIUM_TIMEOUT_S} s for {url}")


@pytest.fixture
def store(tmp_path):
    """A sqlite store as a 2-fold pipeline run leaves it: a parent run named as the pipeline
    names it with its accuracy summary, and one nested run per test fold with its test
    accuracy. Made with the project's own tracking functions; nothing is trained."""
    from urbansound.components import runs, tracking_store
    from urbansound.config import Config

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = Config()
    name = runs.parent_run_name(config, "/data/us8k-demo")
    parent = runs.start_parent_run(
        uri, "ui-browser-key", {"train.model": "urbannet"}, run_name=name
    )
    assert parent, "the store did not take the parent run"
    c = tracking_store.client(uri)
    folds = {}
    for fold, accuracy in ((1, 0.625), (2, 0.75)):
        run_id = runs.start_fold_run(uri, parent, fold, {"train.model": "urbannet"})
        c.log_metric(run_id, "test_accuracy", accuracy)
        runs.end_run(uri, run_id, "FINISHED")
        folds[fold] = run_id
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    runs.log_summary(
        uri, parent, {"mean": 0.6875, "median": 0.6875, "std": 0.0625}, str(evaluation)
    )
    runs.end_run(uri, parent, "FINISHED")
    return {
        "uri": uri,
        "name": name,
        "parent": parent,
        "folds": folds,
        "experiment": runs.experiment_id(c, uri),
    }


@pytest.fixture
def ui(chromium, store, tmp_path):
    """`urbansound ui` on the store; yields the address it printed. Started in its own session
    and stopped by process group (the CLI's `mlflow ui` child and its workers)."""
    log_path = tmp_path / "ui.log"
    log = open(log_path, "w")
    port = free_port()
    cli = Path(sys.executable).parent / "urbansound"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "urbansound.pipeline.cli"]
    # unbuffered: the address line is printed before `mlflow ui` takes over the process's life
    proc = subprocess.Popen(
        [*command, "ui", "--tracking-uri", store["uri"], "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + UI_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.read() == b"OK":
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"urbansound ui did not answer /health within {UI_START_TIMEOUT_S} s:"
                    f" {log_path.read_text()[-1500:]}"
                )
            time.sleep(1)
        log.flush()
        printed = re.search(r"http://\S+", log_path.read_text())
        assert printed, log_path.read_text()
        yield printed.group(0)
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace_s``: the CLI exits at once,
    `mlflow ui`'s server and job consumers take seconds more."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    proc.wait(timeout=grace_s)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _text(dom: str) -> str:
    """The page's visible text, roughly: tags dropped, entities for the separators decoded."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return text.replace("&nbsp;", " ").replace("&amp;", "&")


def _page(chromium: str, url: str, home: Path, save: Path) -> str:
    """The rendered page's text (the DOM is kept in ``save`` for a look after a failure)."""
    dumped = _browse(chromium, url, "--dump-dom", home=home)
    if dumped.returncode != 0 or "<html" not in dumped.stdout:
        chromium_unavailable(f"could not start (exit {dumped.returncode}): {dumped.stderr[-800:]}")
    save.write_text(dumped.stdout)
    return re.sub(r"\s+", " ", _text(dumped.stdout))


def test_the_printed_page_shows_the_runs_their_folds_and_accuracy(chromium, store, ui, tmp_path):
    """MLflow 3.17.2's runs table lists the parent run with its nested runs collapsed under it
    (counted in "3 matching runs"), with the accuracy columns the experiment's shared view
    state picks (MLflow shows no metric column otherwise); the parent's run page, one click
    away, lists its fold runs and its accuracy summary."""
    home = tmp_path / "chromium-home"  # chromium's profile, not the user's
    home.mkdir()
    root = re.match(r"http://127\.0\.0\.1:\d+", ui).group(0)
    assert ui == (
        f"{root}/#/experiments/{store['experiment']}/runs?workflowType=machine_learning"
        f"&viewStateShareKey=accuracy"
    )

    table = _page(chromium, ui, home, tmp_path / "runs.html")
    assert "Model training" in table and "Run Name" in table, table[:2000]  # not the GenAI view
    assert store["name"] in table, table[:2000]  # the parent run, by its pipeline name
    assert "3 matching runs" in table, table[:2000]  # ...and its two fold runs under it
    # the accuracy columns, picked by the experiment's shared view state, with the parent's values
    assert "accuracy_mean" in table and "accuracy_std" in table, table[:3000]
    assert "0.6875" in table and "0.0625" in table, table[:3000]

    run_page = _page(
        chromium,
        f"{root}/#/experiments/{store['experiment']}/runs/{store['parent']}",
        home,
        tmp_path / "parent.html",
    )
    assert store["name"] in run_page, run_page[:2000]
    assert re.search(r"Child runs fold-[12] , fold-[12]\b", run_page), run_page[:3000]
    for metric, value in (
        ("accuracy_mean", "0.6875"),
        ("accuracy_median", "0.6875"),
        ("accuracy_std", "0.0625"),
    ):
        assert f"{metric} {value}" in run_page, run_page[:3000]

    fold_page = _page(
        chromium,
        f"{root}/#/experiments/{store['experiment']}/runs/{store['folds'][2]}",
        home,
        tmp_path / "fold-2.html",
    )
    assert "fold-2" in fold_page and "test_accuracy 0.75" in fold_page, fold_page[:3000]
    assert f"Parent run {store['name']}" in fold_page, fold_page[:3000]

    shot = tmp_path / "runs.png"
    taken = _browse(chromium, ui, f"--screenshot={shot}", home=home)
    assert taken.returncode == 0, taken.stderr[-800:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, len(data)  # a rendered table, not a blank page
