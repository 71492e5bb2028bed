"""predict, export, listen, register and train-final keep TensorFlow's, absl's and MLflow's
start-up output off the terminal (it goes to $XDG_STATE_HOME/urbansound/logs/COMMAND.log) unless -v, while
their results and errors still show; listen's lines still arrive one by one."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import one_clip_result

SR = 22050
CHATTER = (
    "oneDNN",
    "cuInit",
    "absl",
    "cudart_stub",
    "Add type hints",
    "Downloading artifacts",
    "INFO mlflow",
    "WARNING mlflow",
    "Could not find cuda",
)


def _urbansound(args, cwd, state=None, **kwargs):
    """``urbansound ARGS`` in ``cwd``; its libraries' log in ``state``/urbansound/logs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "TF_CPP_MIN_LOG_LEVEL")
    }
    if state is not None:
        env["XDG_STATE_HOME"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "urbansound.pipeline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def _quiet(stderr: str) -> list[str]:
    """The chatter lines of ``stderr`` (none expected)."""
    return [line for line in stderr.splitlines() if any(c in line for c in CHATTER)]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with model.keras, a 4 s clip, and an MLflow store holding a fold run with
    that model logged."""
    from urbansound.components import fold_logging, runs
    from urbansound.config import Config
    from urbansound.models import build_model

    root = tmp_path_factory.mktemp("quiet")
    model = build_model(
        "sb-cnn",
        seed=0,
        band_mean=np.full(128, -40.0, np.float32),
        band_variance=np.full(128, 400.0, np.float32),
    )
    (root / "m").mkdir()
    model.save(root / "m" / "model.keras")
    t = np.arange(4 * SR) / SR
    sf.write(root / "clip.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = Config()
    parent = runs.start_parent_run(uri, "quiet", config.flat(), config=config)
    fold = runs.start_fold_run(uri, parent, 1, config.flat(), config=config)
    fold_logging.log_fold_result(
        uri,
        fold,
        one_clip_result(),
        str(root / "m" / "model.keras"),
    )
    return {"root": root, "uri": uri, "fold": fold}


def test_predict_prints_results_and_errors_only(work):
    root = work["root"]
    before = sorted(p.name for p in root.iterdir())
    done = _urbansound(
        [
            "predict",
            f"runs:/{work['fold']}/model",
            "clip.wav",
            "missing.wav",
            "--tracking-uri",
            work["uri"],
        ],
        root,
        state=root.parent / "state",
    )
    assert done.returncode == 0, done.stderr
    assert "clip.wav: " in done.stdout and "window(s)" in done.stdout
    assert done.stderr.splitlines() == [
        "urbansound predict: error: missing.wav: cannot read file (No such file or directory)"
    ]
    assert sorted(p.name for p in root.iterdir()) == before  # nothing in the user's folder
    log = (root.parent / "state" / "urbansound" / "logs" / "predict.log").read_text()
    assert "==== urbansound predict, pid" in log
    assert any(c in log for c in CHATTER)  # TensorFlow did talk: to the log


def test_predict_verbose_writes_no_log(work, tmp_path):
    (tmp_path / "clip.wav").write_bytes((work["root"] / "clip.wav").read_bytes())
    done = _urbansound(
        ["-v", "predict", str(work["root"] / "m" / "model.keras"), "clip.wav"],
        tmp_path,
        state=tmp_path / "state",
    )
    assert done.returncode == 0 and "clip.wav: " in done.stdout
    assert not (tmp_path / "state").exists()


def test_export_and_register_are_quiet(work):
    root = work["root"]
    done = _urbansound(["export", "m/model.keras", "-o", "m.tflite"], root)
    assert done.returncode == 0, done.stderr
    assert "wrote m.tflite" in done.stdout and done.stderr == ""
    done = _urbansound(
        ["register", work["fold"], "--name", "quiet", "--tracking-uri", work["uri"]], root
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "models:/quiet/1" and done.stderr == ""


def test_an_error_still_reaches_the_terminal_as_one_line(work):
    done = _urbansound(["export", "nothing-here"], work["root"])
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("urbansound export: error: nothing-here: ")


def test_listen_streams_each_window_as_it_comes(work):
    """Raw PCM on a pipe that stays open: the first window's line arrives before the
    stream ends (nothing is buffered), with no chatter on stderr."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    listen = subprocess.Popen(
        [sys.executable, "-m", "urbansound.pipeline.cli", "listen", "m/model.keras"],
        cwd=work["root"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        y, _ = sf.read(work["root"] / "clip.wav", dtype="int16")
        listen.stdin.write(y[: int(3.2 * SR)].tobytes())
        listen.stdin.flush()
        got, deadline = b"", time.monotonic() + 240
        while not any(line.strip().startswith(b"0.00") for line in got.splitlines()):
            assert time.monotonic() < deadline, f"no window line while the stream is open: {got}"
            ready, _, _ = select.select([listen.stdout], [], [], 5)
            if ready:
                chunk = os.read(listen.stdout.fileno(), 65536)
                assert chunk, f"listen ended early: {got}"
                got += chunk
        assert listen.poll() is None  # still listening: the line came from a live stream
        rest, err = listen.communicate(timeout=120)  # closes stdin: the end of the stream
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()
    assert "summary (end of stream): " in rest.decode()
    assert _quiet(err.decode()) == [] and err.decode() == ""


def test_train_final_is_quiet(work, tmp_path):
    from urbansound.demo_data import write_demo_dataset

    write_demo_dataset(tmp_path / "demo", folds=(1, 2), clips_per_class=1, seed=5)
    done = _urbansound(
        [
            "train-final",
            "--data",
            "demo",
            "--model",
            "improved",
            "--profile",
            "quick",
            "--out",
            "final",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        tmp_path,
        state=tmp_path / "state",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("runs:/")
    assert done.stderr == ""
    assert any(
        c in (tmp_path / "state/urbansound/logs/train-final.log").read_text() for c in CHATTER
    )
