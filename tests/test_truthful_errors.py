"""Errors give the true reason, and meaningless runs are refused (issue 15, defect classes
5 and 11): a device, FIFO or socket is "not a regular file (...)", never "empty" or "no
such file", and is never opened (no hang); a text model.keras is "not a Keras model file";
a bad config.json is named; --init-from of another architecture fails before any task;
a one-class dataset is refused; a test fold lacking a class is a warning."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import SR, refused_in_one_line, tone, wav_bytes

from urbansound.audio import AudioError, load_audio
from urbansound.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _refused(argv, capsys, *fragments) -> str:
    # ingest's progress bar goes to stderr too
    return refused_in_one_line(argv, capsys, *fragments, besides="ingest: ")


def _cli(*argv, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a child process with a time limit: a FIFO opened for reading would block
    forever (TimeoutExpired fails the test instead of hanging the suite)."""
    return subprocess.run(
        [sys.executable, "-m", "urbansound.pipeline.cli", *map(str, argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _one_error_line(done: subprocess.CompletedProcess, *fragments) -> str:
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 1, done.stderr
    for fragment in fragments:
        assert str(fragment) in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "clip.wav"
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------------------
# devices, FIFOs: what they are, never "empty", never opened
# ---------------------------------------------------------------------------


def test_a_character_device_is_not_called_an_empty_file():
    with pytest.raises(AudioError) as err:
        load_audio("/dev/zero")
    assert err.value.reason == "not a regular file (a character device)"


def test_a_fifo_clip_is_named_as_such_without_being_opened(fifo):
    with pytest.raises(AudioError) as err:
        load_audio(fifo)  # would block forever if it were opened
    assert err.value.reason == "not a regular file (a FIFO)"


def test_a_fifo_in_the_dataset_is_rejected_with_its_kind(tmp_path):
    from urbansound.ingest import ingest

    data = tmp_path / "data"
    data.mkdir()
    rows = ["path,label,fold"]
    for fold in (1, 2):
        for label, hz in (("a", 300), ("b", 600)):
            (data / f"{label}{fold}.wav").write_bytes(wav_bytes(tone(hz + fold, 0.25), SR))
            rows.append(f"{label}{fold}.wav,{label},{fold}")
    os.mkfifo(data / "pipe.wav")
    rows.append("pipe.wav,a,1")
    (data / "data.csv").write_text("\n".join(rows) + "\n")
    result = ingest(data / "data.csv", tmp_path / "out", workers=1)
    assert [(r.file, r.reason) for r in result.rejections] == [
        ("pipe.wav", "not a regular file (a FIFO)")
    ]
    assert result.accepted == 4


def test_a_fifo_as_metadata_csv_is_named_not_missing(tmp_path, capsys):
    data = tmp_path / "us8k"
    (data / "metadata").mkdir(parents=True)
    (data / "audio" / "fold1").mkdir(parents=True)
    os.mkfifo(data / "metadata" / "UrbanSound8K.csv")
    _refused(
        ["ingest", "--data", data, "--out", tmp_path / "out", "--layout", "urbansound8k"],
        capsys,
        "UrbanSound8K.csv: metadata CSV: not a regular file (a FIFO)",
    )


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_model_that_is_a_device_or_fifo_is_named_as_such(kind, tmp_path, capsys):
    if kind == "device":
        _refused(
            ["predict", "/dev/zero", tmp_path],
            capsys,
            "/dev/zero: not a regular file (a character device)",
        )
        return
    model = tmp_path / "model.keras"
    os.mkfifo(model)
    _one_error_line(_cli("predict", model, tmp_path), f"{model}: not a regular file (a FIFO)")


def test_listen_input_fifo_is_named_as_such_and_does_not_hang(improved_dir, fifo):
    line = _one_error_line(
        _cli("listen", improved_dir / "model.keras", "--input", fifo),
        f"{fifo}: not a regular file (a FIFO)",
        "--input -",
    )
    assert "no such file" not in line


def test_listen_input_device_is_named_as_such(improved_dir, capsys):
    _refused(
        ["listen", improved_dir / "model.keras", "--input", "/dev/zero"],
        capsys,
        "/dev/zero: not a regular file (a character device)",
    )


# ---------------------------------------------------------------------------
# model files and their config.json
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_text_file_named_model_keras_is_not_a_keras_model(command, tmp_path, capsys):
    model = tmp_path / "model.keras"
    model.write_text("hello, I am not a model\n")
    argv = (
        [command, model, tmp_path]
        if command == "predict"
        else [command, model, "-o", tmp_path / "m.tflite"]
    )
    line = _refused(argv, capsys, f"{model}: not a Keras model file (not a zip archive)")
    assert "not found" not in line


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "configuration is not valid JSON"),
        ('{"audio": {"sample_rte": 1}}', "unknown key(s) in 'audio'"),
    ],
)
def test_a_bad_config_json_beside_the_model_is_named(content, reason, tmp_path, capsys):
    folder = tmp_path / "fold"
    folder.mkdir()
    with zipfile.ZipFile(folder / "model.keras", "w") as z:  # never loaded: config comes first
        z.writestr("config.json", "{}")
    (folder / "config.json").write_text(content)
    _refused(
        ["predict", folder / "model.keras", tmp_path], capsys, f"{folder / 'config.json'}: ", reason
    )


def test_config_from_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"train": {"epochs": "many"}}')
    with pytest.raises(ConfigError, match=rf"^{path}: train.epochs must be of type"):
        Config.from_file(path)
    with pytest.raises(ConfigError, match=r"^/dev/zero: not a regular file \(a character device\)"):
        Config.from_file("/dev/zero")


# ---------------------------------------------------------------------------
# --init-from another architecture: refused before any task
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory) -> Path:
    from urbansound.demo_data import write_demo_dataset

    root = tmp_path_factory.mktemp("three-folds")
    write_demo_dataset(root, folds=(1, 2, 3), clips_per_class=1, seed=3)
    return root


def test_init_from_another_architecture_is_refused_before_any_task(
    three_folds, improved_dir, tmp_path, capsys
):
    bare = tmp_path / "bare"  # no config.json beside it: the model itself is checked
    bare.mkdir()
    (bare / "model.keras").write_bytes((improved_dir / "model.keras").read_bytes())
    out = tmp_path / "out"
    _refused(
        [
            "run",
            "--data",
            three_folds,
            "--out",
            out,
            "--model",
            "sb-cnn",
            "--init-from",
            bare / "model.keras",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        capsys,
        bare / "model.keras",
        "another architecture",
        "'improved'",
        "'sb-cnn'",
    )
    assert not (out / "pipeline_root").exists() and not (out / "run.log").exists()


# ---------------------------------------------------------------------------
# meaningless runs: one class; a test fold without a class
# ---------------------------------------------------------------------------


@pytest.fixture
def one_class(tmp_path) -> Path:
    data = tmp_path / "dogs"
    data.mkdir()
    rows = ["path,label,fold"]
    for fold in (1, 2, 3):
        (data / f"bark{fold}.wav").write_bytes(wav_bytes(tone(400 + fold, 0.25), SR))
        rows.append(f"bark{fold}.wav,dog,{fold}")
    (data / "data.csv").write_text("\n".join(rows) + "\n")
    return data


def test_run_refuses_a_one_class_dataset_before_anything(one_class, tmp_path, capsys):
    out = tmp_path / "out"
    _refused(
        [
            "run",
            "--data",
            one_class,
            "--out",
            out,
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        capsys,
        one_class,
        "only one class ('dog')",
        "at least 2 classes",
    )
    assert not out.exists()


def test_ingest_refuses_a_one_class_dataset(one_class, tmp_path, capsys):
    out = tmp_path / "out"
    _refused(
        ["ingest", "--data", one_class, "--out", out],
        capsys,
        one_class,
        "only one class ('dog')",
        "at least 2 classes",
    )
    assert not out.exists()


def test_ingest_refuses_when_only_one_class_survives_decoding(one_class, tmp_path, capsys):
    (one_class / "cat1.wav").write_bytes(b"")  # the only cat: rejected (empty)
    (one_class / "data.csv").write_text((one_class / "data.csv").read_text() + "cat1.wav,cat,1\n")
    out = tmp_path / "out"
    _refused(
        ["ingest", "--data", one_class, "--out", out],
        capsys,
        "only one class ('dog') among the 3 clips accepted",
        "1 rejected",
    )
    assert not any(out.glob("fold*.tfrecord")) and not (out / "manifest.json").exists()


def test_a_test_fold_lacking_a_class_is_a_warning_in_the_summary(tmp_path):
    from urbansound.evaluation import missing_class_warnings

    names = ["dog", "cat", "bird"]
    results = [
        SimpleNamespace(test_fold=1, confusion_matrix=[[2, 0, 0], [0, 1, 1], [0, 0, 3]]),
        SimpleNamespace(test_fold=2, confusion_matrix=[[1, 0, 0], [0, 0, 0], [0, 0, 0]]),
        SimpleNamespace(test_fold=3, confusion_matrix=[[1, 0, 0], [0, 2, 0], [1, 0, 1]]),
    ]
    assert missing_class_warnings(results, names) == [
        "test fold 2 has no clips of class(es) cat, bird: its accuracy is over the other "
        "classes only"
    ]
