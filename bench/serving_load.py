"""The served model under a burst: latency and peak memory of ``mlflow models serve``.

    .venv/bin/python bench/serving_load.py [--requests 200] [--concurrency 8] [--workers 1]

Logs a seeded, untrained sb-cnn the way the train task logs it (the pyfunc of
components/serving.py, in a temporary sqlite store), starts ``mlflow models serve
--env-manager local`` on 127.0.0.1, and sends ``--requests`` requests, ``--concurrency``
at a time (threads), cycling through :func:`request_mix`: good rows (paths to short WAVs
of several rates and channels, decoded samples as ``waveform`` rows, two rows in one
request) and bad rows (``sample_rate`` 44 with 3 s of 44.1 kHz samples, infinity, a 5 ms
waveform, a missing file, a plain list of paths).  While the burst runs, the resident
memory of the server's whole process tree (its process group, from /proc) is sampled every
50 ms.  Prints p50/p95/max latency of good and bad requests and the peak RSS, and writes
bench/results/serving_load.json.

tests/test_serving_load.py runs the same burst (these functions) and checks every answer;
this script only measures.  The cost does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL_OVERRIDES = {"audio.pad_mode": "zeros", "train.model": "sb-cnn"}
"""Not the defaults: a server that used the wrong configuration would answer differently."""


# ---------------------------------------------------------------------------
# the model, the clips, the server
# ---------------------------------------------------------------------------


def config():
    from urbansound.config import Config

    return Config().override(**MODEL_OVERRIDES)


def log_model(folder: Path) -> tuple[str, str, Path]:
    """(tracking URI, ``runs:/<run>/model``, the model.keras) of a seeded sb-cnn logged as
    the train task logs it (a parent run, a fold run, ``log_fold_result``)."""
    from urbansound.components import fold_logging, runs
    from urbansound.models import build_model
    from urbansound.training import CONFIG_FILE, MODEL_FILE, FoldResult

    cfg = config()
    fold = folder / "fold1"
    fold.mkdir(parents=True)
    build_model(
        "sb-cnn",
        seed=0,
        band_mean=np.full(128, -40.0, np.float32),
        band_variance=np.full(128, 400.0, np.float32),
    ).save(fold / MODEL_FILE)
    (fold / CONFIG_FILE).write_text(cfg.to_json())
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    parent = runs.start_parent_run(uri, "serving-load", cfg.flat())
    run = runs.start_fold_run(uri, parent, 1, cfg.flat())
    result = FoldResult(
        test_fold=1,
        validation_fold=None,
        train_folds=[2],
        test_accuracy=0.5,
        test_loss=1.0,
        y_true=[0],
        y_pred=[0],
        confusion_matrix=np.eye(10, dtype=int).tolist(),
        history={"loss": [1.0], "accuracy": [0.5]},
        best_epoch=1,
        epochs_run=1,
        n_train=1,
        n_validation=0,
        n_test=1,
        parameters=1,
    )
    fold_logging.log_fold_result(uri, run, result, str(fold / MODEL_FILE))
    return uri, f"runs:/{run}/model", fold / MODEL_FILE


CLIPS = (
    ("mono-22k-1s", 22050, 1, 1.0),
    ("stereo-44k-2.5s", 44100, 2, 2.5),
    ("mono-16k-4s", 16000, 1, 4.0),
    ("mono-8k-0.5s", 8000, 1, 0.5),
)
"""(name, rate, channels, seconds) of the good clips: one to two windows each."""


def write_clips(folder: Path) -> dict[str, Path]:
    """16-bit WAVs of a tone with noise, one per :data:`CLIPS`."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (name, rate, channels, seconds) in enumerate(CLIPS):
        t = np.arange(int(round(seconds * rate))) / rate
        noise = np.random.default_rng(i).standard_normal((t.size, channels))
        y = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)[:, None] + 0.05 * noise
        out[name] = folder / f"{name}.wav"
        sf.write(out[name], y.astype(np.float32), rate, subtype="PCM_16")
    return out


def expected_probabilities(keras_path: Path, clips: dict[str, Path]) -> dict[str, np.ndarray]:
    """What ``urbansound predict``'s library path gives for each clip (mean over windows)."""
    import keras

    from urbansound.predict import keras_classifier, predict_file

    classify = keras_classifier(keras.models.load_model(keras_path, compile=False))
    return {
        name: predict_file(path, classify, config=config()).probabilities
        for name, path in clips.items()
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerExited(RuntimeError):
    """``mlflow models serve`` ended before it answered; ``str()`` ends with its log."""


def start_server(
    uri: str, model_uri: str, folder: Path, *, workers: int = 1, timeout_s: float = 240.0
) -> tuple[subprocess.Popen, str, Path]:
    """(process, base URL, log file) of ``mlflow models serve`` once /ping answers.  The
    server is the leader of its own process group (its workers die with it)."""
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    port = free_port()
    log = folder / "serve.log"
    # MLflow starts uvicorn by name: the venv's bin must be on PATH, as when it is activated
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=uri,
        TF_CPP_MIN_LOG_LEVEL="2",
        PATH=f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [
                str(mlflow_cli),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as r:
                if r.status == 200:
                    return server, url, log
        except OSError:
            pass
        if server.poll() is not None:
            raise ServerExited(
                f"mlflow models serve exited with {server.returncode}:\n"
                f"{log.read_text(errors='replace')[-3000:]}"
            )
        if time.time() > deadline:
            stop_server(server)
            raise ServerExited(
                f"no answer on /ping within {timeout_s:.0f} s:\n"
                f"{log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    except ProcessLookupError:
        server.wait()


# ---------------------------------------------------------------------------
# memory of the process tree
# ---------------------------------------------------------------------------


def group_rss_bytes(pgid: int) -> int:
    """Resident memory (bytes) summed over the processes of process group ``pgid``."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:  # state, ppid, pgrp
                continue
            with open(f"/proc/{entry.name}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue  # a process that ended between the listing and the read
    return total


class RssSampler:
    """Samples :func:`group_rss_bytes` every ``interval_s`` in a thread; ``peak`` (bytes)."""

    def __init__(self, pgid: int, interval_s: float = 0.05):
        self.pgid, self.interval_s, self.peak, self.samples = pgid, interval_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, group_rss_bytes(self.pgid))
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, group_rss_bytes(self.pgid))


# ---------------------------------------------------------------------------
# the requests
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request: its JSON ``body``; ``expect`` the clip name of each good row (in order)
    when it must be answered, else None; ``bad_row`` and ``reason`` what a 400 must say
    (``"input row <bad_row>: "`` + reason, or reason alone when ``bad_row`` is None)."""

    name: str
    body: bytes
    expect: tuple[str, ...] | None = None
    bad_row: int | None = None
    reason: str = ""

    @property
    def good(self) -> bool:
        return self.expect is not None


def _waveform(path: Path) -> tuple[list[float], int]:
    """The clip's samples at its own rate, mixed down as the decoder mixes channels."""
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return samples.mean(axis=1, dtype=np.float64).tolist(), rate


def _body(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()  # inf is sent as Infinity


def _row(path=None, waveform=None, rate=None) -> dict:
    """A record with all three columns: MLflow fills a column a record lacks with NaN, which
    its signature cannot convert to an array (``waveform``) and refuses."""
    return {"path": path, "waveform": waveform, "sample_rate": rate}


def request_mix(clips: dict[str, Path]) -> list[Case]:
    """The cases a burst cycles through: 7 good, 6 bad."""
    names = list(clips)
    wave = {n: _waveform(clips[n]) for n in names[:2]}
    rng = np.random.default_rng(0)
    cases = [
        Case(
            f"path {n}",
            _body({"dataframe_split": {"columns": ["path"], "data": [[str(clips[n])]]}}),
            (n,),
        )
        for n in names
    ]
    cases += [
        Case(f"waveform {n}", _body({"dataframe_records": [_row(None, *wave[n])]}), (n,))
        for n in names[:2]
    ]
    cases.append(
        Case(
            "path + waveform",
            _body({"dataframe_records": [_row(str(clips[names[2]])), _row(None, *wave[names[0]])]}),
            (names[2], names[0]),
        )
    )
    samples_44k = (0.3 * np.sin(np.arange(3 * 44100) / 7.0)).round(4).tolist()
    cases += [
        Case(
            "rate 44 (3 s of 44.1 kHz)",
            _body({"dataframe_records": [_row(None, samples_44k, 44)]}),
            bad_row=0,
            reason="'sample_rate' must be a whole number of Hz in 1,000..768,000",
        ),
        Case(
            "rate inf after a good row",
            _body(
                {
                    "dataframe_records": [
                        _row(str(clips[names[0]])),
                        _row(None, wave[names[0]][0], math.inf),
                    ]
                }
            ),
            bad_row=1,
            reason="'sample_rate' must be a whole number of Hz in 1,000..768,000",
        ),
        Case(
            "5 ms waveform",
            _body(
                {
                    "dataframe_records": [
                        _row(None, (0.1 * rng.standard_normal(110)).tolist(), 22050)
                    ]
                }
            ),
            bad_row=0,
            reason="waveform: too short (5.0 ms < 20 ms)",
        ),
        Case(
            "missing file after a good row",
            _body(
                {
                    "dataframe_split": {
                        "columns": ["path"],
                        "data": [[str(clips[names[1]])], ["/nowhere/street.wav"]],
                    }
                }
            ),
            bad_row=1,
            reason="/nowhere/street.wav: cannot read file",
        ),
        Case(
            "60 s at 1 kHz, hop 20 ms",
            _body(
                {
                    "dataframe_records": [
                        _row(None, (0.3 * np.sin(np.arange(60_000) / 3.0)).round(4).tolist(), 1000)
                    ],
                    "params": {"hop_s": 0.02},
                }
            ),
            bad_row=0,
            reason="2,851 windows is more than the 2,400 one request may classify",
        ),
        Case(
            "a plain list of paths",
            _body({"inputs": [str(clips[names[0]])]}),
            reason="no 'path' or 'waveform' column in the input",
        ),
    ]
    return cases


@dataclass
class Answer:
    case: Case
    status: int
    body: str
    seconds: float


def send(url: str, case: Case, timeout_s: float = 120.0) -> Answer:
    request = urllib.request.Request(
        f"{url}/invocations", data=case.body, headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    return Answer(case, status, text, time.perf_counter() - start)


def burst(url: str, cases: list[Case], n_requests: int, concurrency: int) -> list[Answer]:
    """``n_requests`` requests cycling through ``cases``, ``concurrency`` at a time."""
    order = [cases[i % len(cases)] for i in range(n_requests)]
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda c: send(url, c), order))


def check(answer: Answer, expected: dict[str, np.ndarray], class_names) -> str | None:
    """Why ``answer`` is wrong for its case, or None."""
    case = answer.case
    if case.good:
        if answer.status != 200:
            return f"{case.name}: HTTP {answer.status}: {answer.body[:300]}"
        rows = json.loads(answer.body)["predictions"]
        if len(rows) != len(case.expect):
            return f"{case.name}: {len(rows)} rows for {len(case.expect)}"
        for row, name in zip(rows, case.expect):
            got = np.array([row[c] for c in class_names])
            if not np.allclose(got, expected[name], atol=1e-5):
                return f"{case.name}: {got} differs from predict's {expected[name]}"
        return None
    if answer.status != 400:
        return f"{case.name}: HTTP {answer.status}, not 400: {answer.body[:300]}"
    message = json.loads(answer.body).get("message", "")
    where = f"input row {case.bad_row}: " if case.bad_row is not None else ""
    if where + case.reason not in message:
        return f"{case.name}: {message[:300]!r} lacks {where + case.reason!r}"
    return None


def percentiles(values) -> dict:
    v = np.asarray(values, np.float64) * 1000
    return {
        "n": int(v.size),
        "p50_ms": float(np.percentile(v, 50)),
        "p95_ms": float(np.percentile(v, 95)),
        "max_ms": float(v.max()),
    }


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    import tempfile

    from bench_io import write_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="mlflow models serve --workers")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serving_load.json"))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uri, model_uri, keras_path = log_model(tmp / "store")
        clips = write_clips(tmp / "clips")
        expected = expected_probabilities(keras_path, clips)
        cases = request_mix(clips)
        started = time.perf_counter()
        server, url, _ = start_server(uri, model_uri, tmp, workers=args.workers)
        try:
            start_s = time.perf_counter() - started
            first = send(url, cases[0])  # loads TensorFlow's functions: not part of the burst
            idle_rss = group_rss_bytes(server.pid)
            with RssSampler(server.pid) as rss:
                wall = time.perf_counter()
                answers = burst(url, cases, args.requests, args.concurrency)
                wall = time.perf_counter() - wall
            after = send(url, cases[0])
        finally:
            stop_server(server)
    from urbansound.config import CLASS_NAMES

    wrong = [w for w in (check(a, expected, CLASS_NAMES) for a in [first, *answers, after]) if w]
    good = [a.seconds for a in answers if a.case.good]
    bad = [a.seconds for a in answers if not a.case.good]
    result = {
        "what": "mlflow models serve (--env-manager local) of the urbansound pyfunc (sb-cnn, "
        "untrained): a burst of mixed good and bad requests",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "cases": [c.name for c in cases],
        "server_start_s": start_s,
        "burst_wall_s": wall,
        "requests_per_s": args.requests / wall,
        "good": percentiles(good),
        "bad": percentiles(bad),
        "rss_after_first_request_mib": idle_rss / 2**20,
        "rss_peak_mib": rss.peak / 2**20,
        "rss_samples": rss.samples,
        "wrong_answers": wrong,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    print(
        f"{args.requests} requests, {args.concurrency} at a time, {args.workers} worker(s): "
        f"{wall:.1f} s ({result['requests_per_s']:.1f}/s); server start {start_s:.0f} s"
    )
    print(f"{'requests':<10} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for kind in ("good", "bad"):
        r = result[kind]
        print(f"{kind:<10} {r['n']:>4} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} {r['max_ms']:>8.0f}")
    print(
        f"server process tree RSS: {result['rss_after_first_request_mib']:.0f} MiB after the "
        f"first request, peak {result['rss_peak_mib']:.0f} MiB during the burst "
        f"({rss.samples} samples)"
    )
    print(f"wrong answers: {len(wrong)}" + "".join(f"\n  {w}" for w in wrong))
    write_result(args.out, result)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
