"""urbansound export: TFLite float32 and int8 files, their metadata, the interpreter
wrapper, and the CLI.

The model is ``urbannet`` (the default) trained briefly on one fold of the built-in
demo data, so that its predictions differ from window to window; agreement with
Keras is measured on windows of another fold (and on real clips when ../shared is
here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from urbansound.config import CLASS_NAMES, Config, config_for
from urbansound.export import TFLiteModel, agreement, batched, calibration_inputs, export_tflite
from urbansound.pipeline.cli import main
from urbansound.predict import keras_classifier

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "us8k-real-dev"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from urbansound.demo_data import write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, folds=(1, 2), clips_per_class=8)
    return root


@pytest.fixture(scope="module")
def trained(demo, tmp_path_factory):
    """(keras model, its folder with model.keras + config.json): urbannet after 8 epochs
    on fold 1's windows (Adam; the band statistics from those windows)."""
    import keras

    from urbansound.models import build_model
    from urbansound.training_input import band_statistics

    config = Config()
    x, y = _labelled_windows(demo / "audio" / "fold1", config)
    mean, var = band_statistics(x)
    model = build_model("urbannet", seed=0, band_mean=mean, band_variance=var)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    folder = tmp_path_factory.mktemp("model")
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(config.to_json())
    return model, folder


def _labelled_windows(folder: Path, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Every window of every demo clip in ``folder`` (model inputs) and its class id
    (UrbanSound8K names: <fsID>-<classID>-...)."""
    xs, ys = [], []
    for path in sorted(folder.glob("*.wav")):
        cal = calibration_inputs([path], config, windows_per_file=10)
        xs.append(cal.inputs)
        ys += [int(path.stem.split("-")[1])] * len(cal.inputs)
    return np.concatenate(xs), np.asarray(ys)


@pytest.fixture(scope="module")
def held_out(demo):
    """Model inputs of every window of fold 2 (not trained on, not calibrated on)."""
    return _labelled_windows(demo / "audio" / "fold2", Config())


@pytest.fixture(scope="module")
def float_export(trained, tmp_path_factory):
    model, _ = trained
    return export_tflite(
        model, Config(), tmp_path_factory.mktemp("f") / "model.tflite", source="test"
    )


@pytest.fixture(scope="module")
def int8_export(trained, demo, tmp_path_factory):
    model, _ = trained
    cal = calibration_inputs([demo / "audio" / "fold1"], Config())
    return export_tflite(
        model, Config(), tmp_path_factory.mktemp("q"), int8=True, calibration=cal, source="test"
    )


def test_the_trained_model_is_not_constant(trained, held_out):
    # agreement means something only if the argmax varies across windows
    model, _ = trained
    x, y = held_out
    top = batched(keras_classifier(model), x).argmax(1)
    assert len(np.unique(top)) >= 5
    assert np.mean(top == y) > 0.3  # well above chance (0.1): a model, not noise


def test_float_tflite_agrees_with_keras(trained, held_out, float_export):
    model, _ = trained
    x, _ = held_out
    agree = agreement(
        batched(keras_classifier(model), x), batched(TFLiteModel(float_export.tflite_path), x)
    )
    assert agree["n"] == len(x) >= 100
    assert agree["top1"] >= 0.99
    assert agree["max_abs_diff"] < 1e-3


def test_int8_runs_and_mostly_agrees(trained, held_out, int8_export):
    model, _ = trained
    x, _ = held_out
    tfl = TFLiteModel(int8_export.tflite_path)
    assert tfl.input_dtype == np.int8
    p = batched(tfl, x)
    assert p.shape == (len(x), len(CLASS_NAMES)) and p.dtype == np.float32
    assert p.min() >= 0 and p.max() <= 1
    np.testing.assert_allclose(p.sum(1), 1, atol=0.05)  # int8 steps of 1/256 per class
    agree = agreement(batched(keras_classifier(model), x), p)
    print(f"int8 agreement on {agree['n']} held-out demo windows: {agree}")
    assert agree["top1"] >= 0.8


def test_int8_is_about_a_quarter_of_float32(float_export, int8_export):
    # urbannet's 669,106 weights: 4 bytes each in float32, 1 in int8, plus the graph
    assert 2_500_000 < float_export.size_bytes < 2_900_000
    assert int8_export.size_bytes < 0.3 * float_export.size_bytes


def test_metadata_describes_the_front_end_and_the_tensors(float_export, int8_export):
    for result, dtype in ((float_export, "float32"), (int8_export, "int8")):
        meta = json.loads(result.json_path.read_text())
        assert result.json_path == result.tflite_path.with_suffix(".json")
        assert meta["quantization"] == dtype
        assert meta["size_bytes"] == result.tflite_path.stat().st_size == result.size_bytes
        assert meta["class_names"] == list(CLASS_NAMES)
        assert Config.from_dict(meta["config"]) == Config()
        assert meta["window"] == {
            "sample_rate": 22050,
            "samples": 66150,
            "seconds": 3.0,
            "default_hop_s": 1.5,
        }
        assert meta["input"]["shape"] == [-1, 128, 128, 1]
        assert meta["input"]["dtype"] == dtype and meta["output"]["dtype"] == dtype
        assert meta["output"]["shape"] == [-1, 10]
        assert meta["input_kind"] == "logmel"
    meta = int8_export.metadata
    # dB inputs span [-80, 0]: the quantiser's range must cover them
    scale, zp = meta["input"]["scale"], meta["input"]["zero_point"]
    assert (-128 - zp) * scale <= -79 and (127 - zp) * scale >= -0.5
    assert meta["calibration"]["windows"] > 50
    assert "scale" not in float_export.metadata["input"]
    assert int8_export.tflite_path.name == "model_int8.tflite"  # OUT was a folder


def test_a_waveform_model_exports_too(demo, tmp_path):
    """conv1d (input (batch, 48000, 1): 3 s at 16 kHz), untrained: the float file computes
    what Keras computes on real windows' model inputs."""
    from urbansound.models import build_model

    config = config_for("conv1d")
    model = build_model("conv1d", seed=0)
    x = calibration_inputs(sorted((demo / "audio" / "fold2").glob("*.wav"))[:8], config).inputs
    assert x.shape[1:] == (48000, 1)
    result = export_tflite(model, config, tmp_path / "c.tflite")
    assert result.metadata["input_kind"] == "waveform"
    assert result.metadata["input"]["shape"] == [-1, 48000, 1]
    assert result.metadata["config"]["features"]["waveform_rate"] == 16000
    agree = agreement(
        batched(keras_classifier(model), x), batched(TFLiteModel(result.tflite_path), x)
    )
    assert agree["max_abs_diff"] < 1e-4


def test_calibration_takes_a_few_windows_spread_over_each_file(tmp_path):
    import soundfile as sf

    sr = 22050
    t = np.arange(60 * sr) / sr
    sweep = (0.3 * np.sin(2 * np.pi * (200 + 20 * t) * t)).astype(np.float32)  # 60 s, 39 windows
    for k in range(3):
        sf.write(tmp_path / f"long{k}.wav", sweep, sr, subtype="PCM_16")
    cal = calibration_inputs([tmp_path / "long0.wav"], Config())
    assert cal.inputs.shape == (4, 128, 128, 1) and cal.files == 1
    assert len({x.tobytes() for x in cal.inputs}) == 4  # four different places of the sweep
    cal = calibration_inputs([tmp_path], Config(), max_windows=5)
    assert cal.inputs.shape[0] == 5 and cal.files == 3
    assert cal.source == f"3 file(s) from {tmp_path}"


def test_the_interpreter_refuses_a_wrong_input_shape(float_export):
    with pytest.raises(ValueError, match=r"this model takes \(n, 128, 128, 1\)"):
        TFLiteModel(float_export.tflite_path)(np.zeros((2, 64, 128, 1), np.float32))


@pytest.mark.real_data
@pytest.mark.skipif(not (REAL / "audio").is_dir(), reason=f"{REAL} is not here")
def test_float_and_int8_on_real_clips(trained, float_export, int8_export):
    model, _ = trained
    clips = sorted((REAL / "audio" / "fold5").glob("*.flac"))[:30]
    x = calibration_inputs(clips, Config(), max_windows=1000).inputs
    keras_p = batched(keras_classifier(model), x)
    f = agreement(keras_p, batched(TFLiteModel(float_export.tflite_path), x))
    q = agreement(keras_p, batched(TFLiteModel(int8_export.tflite_path), x))
    print(f"real clips: float {f}; int8 (calibrated on demo data) {q}")
    assert f["n"] >= 30 and f["top1"] >= 0.99 and f["max_abs_diff"] < 1e-3
    assert np.isfinite(q["max_abs_diff"])


# ---------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------


def test_cli_exports_a_model_folder(trained, tmp_path, capsys):
    _, folder = trained
    out = tmp_path / "edge.tflite"
    assert main(["export", str(folder), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"configuration: {folder / 'config.json'}" in text
    assert f"wrote {out} (" in text and "KB, float32)" in text
    meta = json.loads((tmp_path / "edge.json").read_text())
    assert meta["source"] == str(folder) and meta["quantization"] == "float32"
    kb = int(text.split(f"wrote {out} (")[1].split(" KB")[0].replace(",", ""))
    assert kb == round(out.stat().st_size / 1024)


def test_cli_int8_with_calibration_clips(trained, demo, tmp_path, capsys):
    _, folder = trained
    clips = sorted((demo / "audio" / "fold2").glob("*.wav"))[:12]
    assert (
        main(
            [
                "export",
                str(folder),
                "--int8",
                "--calibration",
                *map(str, clips),
                "-o",
                str(tmp_path),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "int8 calibration: " in text and "12 file(s)" in text
    assert "demo data" not in text
    assert "KB, int8)" in text and "int8 vs Keras on the " in text
    meta = json.loads((tmp_path / "model_int8.json").read_text())
    assert meta["calibration"]["files"] == 12


def test_cli_int8_without_calibration_says_it_uses_the_demo_data(
    trained, tmp_path, capsys, monkeypatch
):
    import urbansound.export as export

    _, folder = trained
    monkeypatch.setattr(export, "DEMO_CALIBRATION_CLIPS_PER_CLASS", 1)  # 10 clips: quick
    assert main(["export", str(folder), "--int8", "-o", str(tmp_path / "q.tflite")]) == 0
    text = capsys.readouterr().out
    assert "windows from the built-in demo data (10 synthetic clips)" in text
    assert "give --calibration" in text
    assert (tmp_path / "q.tflite").is_file()


@pytest.mark.parametrize(
    "make_path, reason",
    [
        (lambda tmp: tmp / "missing.wav", "cannot read file"),
        (
            lambda tmp: (tmp / "notes.wav").write_text("not audio") and tmp / "notes.wav",
            "not a readable audio file",
        ),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no audio files for calibration"),
    ],
)
def test_cli_int8_with_a_bad_calibration_path_is_one_line(
    trained, tmp_path, capsys, make_path, reason
):
    _, folder = trained
    bad = make_path(tmp_path)
    assert (
        main(
            [
                "export",
                str(folder),
                "--int8",
                "--calibration",
                str(bad),
                "-o",
                str(tmp_path / "x.tflite"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("urbansound export: error: ") and str(bad) in err and reason in err
    assert not (tmp_path / "x.tflite").exists()


def test_cli_calibration_without_int8_is_refused(trained, tmp_path, capsys):
    _, folder = trained
    assert main(["export", str(folder), "--calibration", str(tmp_path)]) == 2
    assert "--calibration is used only with --int8" in capsys.readouterr().err


def test_cli_out_in_a_missing_folder_is_one_line(trained, tmp_path, capsys):
    _, folder = trained
    assert main(["export", str(folder), "-o", str(tmp_path / "no" / "m.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err


def test_cli_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "no such model file or folder" in capsys.readouterr().err


def test_export_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    assert "--int8" in text and "--calibration" in text and "TensorFlow Lite" in text
