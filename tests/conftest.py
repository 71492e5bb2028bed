"""Shared test set-up: the per-user log folder, and the helpers and fixtures that more
than one test module uses (test modules import the helpers from here, never from each
other: ``tests/`` is on ``sys.path``)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

SR = 22050
"""The project's sample rate (``audio.sample_rate``), Hz."""


def pytest_configure(config):
    # Commands write their libraries' start-up output to a per-user log
    # ($XDG_STATE_HOME/urbansound/logs): the tests' go to a folder of their own, not to
    # the home of whoever runs them.  Subprocesses inherit it.
    if "URBANSOUND_TEST_STATE" not in os.environ:
        state = tempfile.mkdtemp(prefix="urbansound-test-state-")
        os.environ["URBANSOUND_TEST_STATE"] = state
        os.environ["XDG_STATE_HOME"] = state


# ---------------------------------------------------------------------------
# Signals, ports, processes
# ---------------------------------------------------------------------------


def tone(freq: float, seconds: float, sr: int = SR, amplitude: float = 0.5) -> np.ndarray:
    """A sine of ``freq`` Hz, float32 [shape=(round(seconds * sr),)], peak ``amplitude``."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    """``y`` encoded as an audio file (soundfile's ``subtype`` and ``fmt``), in memory."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KfpResponse:
    """An HTTP answer as kfp_server_api's REST layer reads it (status 200, JSON body)."""

    def __init__(self, payload):
        self.status, self.reason = 200, "OK"
        self.data = json.dumps(payload).encode()

    def getheaders(self):
        return {}

    def getheader(self, name, default=None):
        return default


def intercept_kfp(monkeypatch, run_id: str = "run-7") -> list:
    """kfp.Client's HTTP layer replaced by one that answers as a KFP API would (health,
    experiments, a new run ``run_id``); returns the list of (method, url, body) sent."""
    import kfp_server_api.rest

    calls = []

    def fake_request(self, method, url, query_params=None, headers=None, body=None, **kwargs):
        calls.append((method, url, body))
        if url.endswith("/healthz"):
            return KfpResponse({"multi_user": False})
        if "/experiments" in url and method == "GET":
            return KfpResponse({"experiments": []})
        if "/experiments" in url and method == "POST":
            return KfpResponse({"experiment_id": "exp-1", "display_name": "urbansound"})
        if "/runs" in url and method == "POST":
            return KfpResponse({"run_id": run_id, "display_name": body.get("display_name")})
        raise AssertionError(f"unexpected call {method} {url}")

    monkeypatch.setattr(kfp_server_api.rest.RESTClientObject, "request", fake_request)
    return calls


def refused_in_one_line(argv, capsys, *fragments, besides: str | None = None) -> str:
    """``urbansound ARGV`` exits 2 with one stderr line holding every fragment and no
    traceback (lines starting with ``besides``, a progress line, not counted); the line."""
    from urbansound.pipeline.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [
        line
        for line in err.splitlines()
        if line.strip() and not (besides and line.startswith(besides))
    ]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert str(fragment) in lines[0], lines[0]
    return lines[0]


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (task subprocesses carry the output path)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def processes_left(text: str, timeout_s: float = 30) -> list[int]:
    """:func:`processes_mentioning` ``text`` once they have had ``timeout_s`` to exit
    (tasks and Beam workers go down on their own after the signal, not at once)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and processes_mentioning(text):
        time.sleep(0.5)
    return processes_mentioning(text)


# ---------------------------------------------------------------------------
# Feature records and ingest outputs
# ---------------------------------------------------------------------------


def write_band_features(
    root: Path,
    *,
    per_fold: int,
    seed: int,
    deformed: int = 0,
    windows: bool = False,
    shards: int = 1,
    manifest: bool = False,
) -> None:
    """Log-mel records of folds 1-3, two classes told apart by their bands (class 0 loud
    in the low half, class 1 in the high half), 128×128 each: ``per_fold`` originals,
    the first ``deformed`` of them with a ``pitch_shift_2`` copy, with ``windows`` one
    test-time window per clip; ``shards`` files per fold (one: ``fold<k>.tfrecord``);
    with ``manifest`` a ``manifest.json`` of the counts, as the features stage writes."""
    from urbansound.records import encode_logmel, window_name, write_records

    rng = np.random.default_rng(seed)
    counts = {}
    for fold in (1, 2, 3):
        raws = []
        for i in range(per_fold):
            label = i % 2
            x = rng.normal(-60.0, 3.0, (128, 128))
            x[:64] += 40.0 if label == 0 else 0.0
            x[64:] += 40.0 if label == 1 else 0.0
            x = np.clip(x, -80, 0).astype(np.float32)
            name = f"{fold}{i:03d}-{label}-0-0.wav"
            raws.append(encode_logmel(x, label=label, fold=fold, file_name=name))
            if windows:
                raws.append(
                    encode_logmel(
                        x - 1, label=label, fold=fold, file_name=name, deformation=window_name(1.0)
                    )
                )
            if i < deformed:
                raws.append(
                    encode_logmel(
                        x + 1, label=label, fold=fold, file_name=name, deformation="pitch_shift_2"
                    )
                )
        if shards == 1:
            write_records(root / f"fold{fold}.tfrecord", raws)
        else:
            cuts = [k * len(raws) // shards for k in range(shards + 1)]
            for k in range(shards):
                write_records(
                    root / f"fold{fold}-{k:05d}-of-{shards:05d}.tfrecord",
                    raws[cuts[k] : cuts[k + 1]],
                )
        counts[str(fold)] = {
            "original": per_fold,
            "pitch_shift_2": deformed,
            "windows": per_fold if windows else 0,
        }
    if manifest:
        (root / "manifest.json").write_text(json.dumps({"folds": counts}))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """An untrained, seeded sb-cnn as a model folder (model.keras, config.json with the
    defaults' front end): enough for predict, listen and export to run on."""
    from urbansound.config import Config
    from urbansound.models import build_model

    folder = tmp_path_factory.mktemp("model")
    build_model(
        "sb-cnn",
        seed=0,
        band_mean=np.full(128, -40.0, np.float32),
        band_variance=np.full(128, 400.0, np.float32),
    ).save(folder / "model.keras")
    (folder / "config.json").write_text(Config().to_json())
    return folder


@pytest.fixture(scope="module")
def improved_dir(tmp_path_factory) -> Path:
    """A fold folder as train writes it: model.keras (the small, untrained ``improved``
    CNN) and its config.json."""
    from urbansound.config import config_for
    from urbansound.models import build_model

    folder = tmp_path_factory.mktemp("fold")
    build_model("improved", seed=0).save(folder / "model.keras")
    (folder / "config.json").write_text(config_for("improved").to_json())
    return folder


@pytest.fixture(scope="module")
def waveforms(tmp_path_factory):
    """An ingest output of the built-in data (``<root>/wave``): folds 1-3, one clip per
    class each; ``<root>/data`` is the dataset.  One per test module."""
    from urbansound.config import Config
    from urbansound.demo_data import write_demo_dataset
    from urbansound.ingest import ingest

    root = tmp_path_factory.mktemp("waveforms")
    write_demo_dataset(root / "data", folds=(1, 2, 3), clips_per_class=1, seed=11)
    ingest(root / "data", root / "wave", config=Config())
    return root


# ---------------------------------------------------------------------------
# Hand-built UrbanSound8K datasets and what ingest makes of them
# ---------------------------------------------------------------------------

GOOD_SECONDS = 0.25
"""Length of every good clip of a :class:`Dataset`."""
HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
BAD_FOLD = 2
"""Where an injected clip goes unless told otherwise."""


@dataclass
class Dataset:
    """An UrbanSound8K folder being written: ``rows`` of its CSV, ``good`` the clips that
    must come through ingest intact."""

    root: Path
    rows: list[dict]
    good: dict[str, tuple[int, int, float]]  # name -> (fold, classID, tone Hz)

    def path(self, fold, name: str) -> Path:
        return self.root / "audio" / f"fold{fold}" / name

    def add(
        self,
        name: str,
        fold=BAD_FOLD,
        class_id: int = 3,
        content: bytes | None = None,
        *,
        row: bool = True,
        **overrides,
    ) -> Path:
        """Write ``content`` (if given) to audio/fold<fold>/<name> and add its CSV row."""
        from urbansound.config import CLASS_NAMES

        path = self.path(fold, name)
        if content is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if row:
            values = {
                "slice_file_name": name,
                "fsID": name.split("-")[0],
                "start": "0",
                "end": "1",
                "salience": "1",
                "fold": str(fold),
                "classID": str(class_id),
                "class": CLASS_NAMES[class_id] if 0 <= class_id < 10 else "nothing",
            }
            values.update(overrides)
            self.rows.append(values)
        self.write_csv()
        return path

    def write_csv(self, header=HEADER, *, bom: bool = False) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for r in self.rows:
            writer.writerow([r.get(h, "") for h in HEADER])
        data = buf.getvalue().encode("utf-8")
        (self.root / "metadata" / "UrbanSound8K.csv").write_bytes(
            (b"\xef\xbb\xbf" if bom else b"") + data
        )

    @property
    def csv_path(self) -> Path:
        return self.root / "metadata" / "UrbanSound8K.csv"


@dataclass
class Outcome:
    """One ingest run: its result, output folder, report and records by file name."""

    result: object
    out: Path
    report: list[dict]
    records: dict  # file_name -> WaveformRecord

    @property
    def manifest(self) -> dict:
        from urbansound.manifest import MANIFEST

        return json.loads((self.out / MANIFEST).read_text(encoding="utf-8"))


def read_records(out: Path) -> dict:
    """The waveform records of an ingest output by file name (each written once, in its
    fold's file)."""
    from urbansound.records import decode_waveform, iter_records

    records = {}
    for path in sorted(out.glob("fold*.tfrecord")):
        for raw in iter_records([str(path)]):
            rec = decode_waveform(raw)
            assert rec.file_name not in records, f"{rec.file_name} written twice"
            assert path.name == f"fold{rec.fold}.tfrecord"
            records[rec.file_name] = rec
    return records


def run_ingest(ds: Dataset, **kwargs) -> Outcome:
    """Ingest ``ds`` into ``<its parent>/out`` with one worker."""
    from urbansound.ingest import REPORT, ingest

    out = ds.root.parent / "out"
    result = ingest(ds.root, out, workers=1, **kwargs)
    report = json.loads((out / REPORT).read_text(encoding="utf-8"))
    return Outcome(result=result, out=out, report=report, records=read_records(out))


def dominant_hz(y: np.ndarray, sr: int = SR) -> float:
    n = max(len(y), 8 * sr)  # zero-pad: 1/8 Hz bins, so short clips interpolate well
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=n))
    return float(np.argmax(spectrum) * sr / n)


def assert_tone(rec, *, seconds: float, freq: float, length_tol: int = 1, amp: float | None = None):
    y = rec.waveform
    assert rec.sample_rate == SR
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - seconds * SR) <= length_tol, (len(y), seconds * SR)
    assert np.all(np.isfinite(y))
    assert dominant_hz(y) == pytest.approx(freq, rel=0.01, abs=2.0)
    if amp is not None:
        middle = y[len(y) // 4 : 3 * len(y) // 4]
        assert np.max(np.abs(middle)) == pytest.approx(amp, rel=0.05)


def assert_good_accepted(ds: Dataset, outcome: Outcome, extra=()):
    """Exactly the good clips (plus ``extra`` names) are in the records, each intact."""
    from urbansound.config import CLASS_NAMES

    assert set(outcome.records) == set(ds.good) | set(extra)
    for name, (fold, class_id, freq) in ds.good.items():
        rec = outcome.records[name]
        assert (rec.fold, rec.label, rec.class_name) == (fold, class_id, CLASS_NAMES[class_id])
        assert_tone(rec, seconds=GOOD_SECONDS, freq=freq)
    assert outcome.result.accepted == len(ds.good) + len(extra)


# --------------------------------------------------------------------------------------
# headless Chromium (test_ui_browser, test_report_browser)

CHROMIUM_BASE_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # root needs it
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
]


def chromium_unavailable(reason: str):
    """Skip here; under CI, where `make test` installs chromium, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"chromium: {reason}")
    pytest.skip(f"chromium: {reason}")


@pytest.fixture
def chromium() -> str:
    """The browser's path (Debian's ``chromium``), looked up before any slow set-up."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    chromium_unavailable("not installed (Debian: apt-get install chromium; `make test` does)")
    raise AssertionError("unreachable")  # skip / fail above raise


def one_clip_result(n_classes: int = 10, **fields):
    """The smallest FoldResult a fold run can log (one test clip, right; accuracy 0.5):
    for tests that need a logged fold run and its model, not its numbers."""
    from urbansound.training import FoldResult

    return FoldResult(
        test_fold=1,
        validation_fold=None,
        train_folds=[2],
        test_accuracy=0.5,
        test_loss=1.0,
        y_true=[0],
        y_pred=[0],
        confusion_matrix=np.eye(n_classes, dtype=int).tolist(),
        history={"loss": [1.0], "accuracy": [0.5]},
        best_epoch=1,
        epochs_run=1,
        n_train=1,
        n_validation=0,
        n_test=1,
        parameters=1,
        **fields,
    )
