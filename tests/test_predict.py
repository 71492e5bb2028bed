"""urbansound predict: windows, block-wise decoding, features equal to training's bit for
bit, aggregation, events, the CLI's output, MLflow URIs, and bad input.

The model is an untrained SB-CNN (random weights, seeded) saved by the test: what is
checked is the plumbing around it, not its accuracy."""

from __future__ import annotations

import csv
import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from urbansound.audio import load_audio
from urbansound.config import CLASS_NAMES, Config
from urbansound.features import waveform_to_logmel
from urbansound.pipeline.cli import main
from urbansound.predict import (
    DEFAULT_HOP_SECONDS,
    aggregate,
    find_audio_files,
    hop_samples,
    keras_classifier,
    logmel_batch,
    merge_events,
    predict_file,
    stream_audio,
    top_k,
)
from urbansound.windows import iter_windows, window_starts

SR = 22050
W = 3 * SR  # 66,150 samples per window


def noise(seconds: float, sr: int = SR, channels: int = 1, seed: int = 0) -> np.ndarray:
    y = np.random.default_rng(seed).standard_normal((int(round(seconds * sr)), channels)) * 0.1
    return (y[:, 0] if channels == 1 else y).astype(np.float32)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from urbansound.models import build_model

    model = build_model(
        "sb-cnn",
        seed=0,
        band_mean=np.full(128, -40.0, np.float32),
        band_variance=np.full(128, 400.0, np.float32),
    )
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def classify(model_file):
    import keras

    return keras_classifier(keras.models.load_model(model_file))


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


# ---------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------


def window_times(n_samples: int, hop_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) in seconds of the windows predict cuts from ``n_samples`` samples."""
    windows = iter_windows(
        [np.zeros(n_samples, np.float32)], window=W, hop=hop_samples(hop_seconds, Config())
    )
    bounds = np.array([(start, end) for start, end, _ in windows], np.float64) / SR
    return bounds[:, 0], bounds[:, 1]


def test_windows_of_a_10_s_file_with_hop_1_5():
    starts, ends = window_times(10 * SR, 1.5)
    np.testing.assert_array_equal(starts, [0.0, 1.5, 3.0, 4.5, 6.0, 7.0])  # the last: end-aligned
    np.testing.assert_array_equal(ends, [3.0, 4.5, 6.0, 7.5, 9.0, 10.0])
    assert DEFAULT_HOP_SECONDS == 1.5


@pytest.mark.parametrize(
    "n, hop, expected",
    [
        (10 * SR, SR, [0, 1, 2, 3, 4, 5, 6, 7]),  # hop 1 s: the grid reaches the end itself
        (10 * SR, W, [0, 3, 6, 7]),  # hop 3 s: no overlap, then end-aligned
        (W, 33075, [0]),  # exactly 3 s: one window
        (W + 1, 33075, [0, 1 / SR]),  # one sample more: a second, end-aligned window
        (SR, 33075, [0]),  # shorter than a window: one (padded) window
    ],
)
def test_window_starts(n, hop, expected):
    np.testing.assert_allclose(
        window_starts(n, window=W, hop=hop) / SR, expected, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("hop", [0, -1.0, 3.5, float("nan")])
def test_a_hop_outside_0_to_3_s_is_refused(hop):
    with pytest.raises(ValueError, match="hop must be > 0 and <= the window"):
        hop_samples(hop, Config())


def test_streamed_windows_are_the_slices_of_the_whole_waveform():
    y = noise(10.3)
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.integers(0, y.size, 40))
    blocks = np.split(y, cuts)  # uneven blocks, some empty
    windows = list(iter_windows(blocks, window=W, hop=33075))
    starts = window_starts(y.size, window=W, hop=33075)
    assert [s for s, _, _ in windows] == starts.tolist()
    assert [e for _, e, _ in windows] == (starts + W).tolist()
    for s, _, samples in windows:
        np.testing.assert_array_equal(samples, y[s : s + W])


@pytest.mark.parametrize("pad_mode", ["loop", "zeros"])
def test_a_1_s_clip_is_one_window_padded_as_in_training(pad_mode):
    y = tone(440, 1.0)
    [(start, end, samples)] = list(
        iter_windows([y[:5000], y[5000:]], window=W, hop=33075, pad_mode=pad_mode)
    )
    assert (start, end) == (0, SR)
    assert samples.shape == (W,)
    np.testing.assert_array_equal(samples[:SR], y)
    if pad_mode == "loop":
        np.testing.assert_array_equal(samples[SR : 2 * SR], y)
        np.testing.assert_array_equal(samples[2 * SR :], y)
    else:
        assert not np.any(samples[SR:])
    config = Config().override(**{"audio.pad_mode": pad_mode})
    x = logmel_batch([samples], config)
    assert x.shape == (1, 128, 128, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, :, 0], waveform_to_logmel(y, config))


# ---------------------------------------------------------------------------
# aggregation and events
# ---------------------------------------------------------------------------


def _onehot_like(labels, p_top):
    """Rows with ``p_top`` on the label and the rest spread evenly."""
    p = np.full((len(labels), 10), 0.0)
    for i, (c, top) in enumerate(zip(labels, p_top)):
        p[i] = (1 - top) / 9
        p[i, c] = top
    return p


def test_events_merge_consecutive_windows_of_one_class():
    labels = [8, 8, 8, 1, 1, 8, 3]  # siren ×3, car_horn ×2, siren, dog_bark
    p = _onehot_like(labels, [0.9, 0.7, 0.8, 0.6, 0.4, 0.5, 0.95])
    starts, ends = window_times(10 * SR, 1.5)  # 6 windows
    starts, ends = np.append(starts, 8.5), np.append(ends, 11.5)  # a 7th, hand-made
    events = merge_events(starts, ends, p)
    assert [(e.start_s, e.end_s, e.label, e.windows) for e in events] == [
        (0.0, 6.0, "siren", 3),
        (4.5, 9.0, "car_horn", 2),
        (7.0, 10.0, "siren", 1),
        (8.5, 11.5, "dog_bark", 1),
    ]
    assert [round(e.probability, 12) for e in events] == [0.8, 0.5, 0.5, 0.95]


def test_aggregate_is_the_mean_and_top3_sorted_and_at_most_1():
    p = np.array([[0.5, 0.2, 0.1] + [0.2 / 7] * 7, [0.1, 0.6, 0.2] + [0.1 / 7] * 7])
    mean = aggregate(p)
    np.testing.assert_allclose(mean[:3], [0.3, 0.4, 0.15])
    top = top_k(mean)
    assert [c for c, _ in top] == ["car_horn", "air_conditioner", "children_playing"]
    np.testing.assert_allclose([v for _, v in top], [0.4, 0.3, 0.15])
    with pytest.raises(ValueError):
        aggregate(np.zeros((0, 10)))


# ---------------------------------------------------------------------------
# decoding in blocks = ingest's decoding, bit for bit
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sr, subtype, channels, fmt",
    [
        (44100, "PCM_16", 2, "WAV"),
        (16000, "PCM_24", 1, "WAV"),
        (48000, "IMA_ADPCM", 2, "WAV"),
        (22050, "FLOAT", 1, "WAV"),
        (8000, "PCM_U8", 1, "WAV"),
        (44100, "PCM_16", 1, "FLAC"),
        (32000, "VORBIS", 1, "OGG"),
    ],
)
def test_block_decoding_equals_load_audio_bit_for_bit(tmp_path, sr, subtype, channels, fmt):
    path = tmp_path / "clip.wav"  # the name lies for FLAC/OGG: content decides, as in ingest
    sf.write(path, noise(7.3, sr, channels), sr, subtype=subtype, format=fmt)
    info = {}
    blocks = list(stream_audio(path, block_seconds=1.3, info=info))
    assert len(blocks) > 3
    whole = load_audio(path)
    streamed = np.concatenate(blocks)
    assert streamed.dtype == np.float32
    np.testing.assert_array_equal(streamed, whole)
    assert info["samples"] == whole.size and info["native_rate"] == sr


def test_a_long_file_is_not_held_in_memory(tmp_path):
    """11 minutes (ingest refuses more than 10) at 44.1 kHz: whole, it would be 58 MB of
    float32 at 22,050 Hz (and 116 MB at the native rate); streamed, the peak of traced
    allocations stays under 25 MB."""
    path = tmp_path / "long.wav"
    minutes = 11
    with sf.SoundFile(path, "w", samplerate=44100, channels=1, subtype="PCM_16") as fh:
        for i in range(minutes):
            fh.write(noise(60, 44100, seed=i))
    calls = []

    def constant(x):
        calls.append(x.shape[0])
        return np.tile(np.linspace(0.01, 0.19, 10, dtype=np.float32), (x.shape[0], 1))

    tracemalloc.start()
    try:
        result = predict_file(path, constant, hop_seconds=3.0, batch_size=32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.duration_s == minutes * 60
    assert len(result.starts_s) == minutes * 20 == sum(calls)
    assert result.ends_s[-1] == minutes * 60
    assert peak < 25e6, f"peak {peak / 1e6:.1f} MB"


# ---------------------------------------------------------------------------
# features = the ingest + Beam features path, bit for bit
# ---------------------------------------------------------------------------


def test_features_equal_the_ingest_and_beam_path_bit_for_bit(tmp_path, classify):
    """The demo dataset (mixed rates, channels and WAV subtypes) plus a 1 s FLAC clip and
    a 7 s stereo clip: what predict feeds the model for a clip's first window is, bit for
    bit, the log-mel the features stage writes for that clip."""
    from urbansound.beam_features import run_features
    from urbansound.demo_data import write_demo_dataset
    from urbansound.ingest import ingest
    from urbansound.records import decode_logmel, fold_files, iter_records

    root = tmp_path / "data"
    write_demo_dataset(root, folds=(1,), clips_per_class=1)
    extra = {
        "999001-3-0-0.wav": (noise(1.0, 16000, seed=5), 16000, "FLAC", "PCM_16", 3, "dog_bark"),
        "999002-1-0-0.wav": (noise(7.0, 44100, 2, seed=6), 44100, "WAV", "PCM_24", 1, "car_horn"),
    }
    with open(root / "metadata" / "UrbanSound8K.csv", "a", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for name, (y, sr, fmt, subtype, class_id, class_name) in extra.items():
            sf.write(root / "audio" / "fold1" / name, y, sr, format=fmt, subtype=subtype)
            writer.writerow([name, name.split("-")[0], 0, len(y) / sr, 1, 1, class_id, class_name])
    config = Config()
    ingest(root, tmp_path / "waves", config=config, workers=1)
    run_features(
        tmp_path / "waves", tmp_path / "features", config=config, beam_args=["--runner=FnApiRunner"]
    )
    trained = {
        r.file_name: r.logmel
        for r in map(decode_logmel, iter_records(fold_files(tmp_path / "features", 1)))
    }
    assert len(trained) == 12

    for name, logmel in sorted(trained.items()):
        seen = []

        def spy(x, seen=seen):
            seen.append(x.copy())
            return classify(x)

        result = predict_file(root / "audio" / "fold1" / name, spy, config=config)
        first = seen[0][0, :, :, 0]
        assert first.dtype == logmel.dtype == np.float32
        assert np.array_equal(first, logmel), name
        assert result.starts_s[0] == 0.0
    assert trained["999001-3-0-0.wav"].shape == (128, 128)  # the 1 s clip, looped as in training


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------


@pytest.fixture
def clips(tmp_path):
    """A 10 s, a 1 s and a 4 s stereo clip in three formats."""
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    sf.write(
        folder / "ten.wav", np.concatenate([tone(440, 5.0), tone(2000, 5.0)]), SR, subtype="PCM_16"
    )
    sf.write(folder / "one.flac", tone(880, 1.0, 16000), 16000)
    sf.write(folder / "sub" / "four.wav", noise(4.0, 48000, 2), 48000, subtype="FLOAT")
    (folder / "notes.txt").write_text("not audio")
    (folder / ".hidden.wav").write_bytes(b"")
    return folder


def test_folders_are_searched_recursively_for_audio(clips):
    found = find_audio_files([clips, clips / "ten.wav", clips / "missing.wav"])
    assert [p.relative_to(clips).as_posix() for p in found] == [
        "one.flac",
        "sub/four.wav",
        "ten.wav",
        "missing.wav",
    ]


def test_json_output_one_object_per_file(model_file, clips, capsys):
    code = main(["predict", str(model_file), str(clips), "--json", "--hop", "1.5"])
    out = capsys.readouterr().out
    assert code == 0
    rows = {
        json.loads(line)["file"].rsplit("/", 1)[-1]: json.loads(line) for line in out.splitlines()
    }
    assert sorted(rows) == ["four.wav", "one.flac", "ten.wav"]
    ten = rows["ten.wav"]
    assert set(ten) == {"file", "duration_s", "windows", "hop_s", "class", "probability", "top3"}
    assert (ten["duration_s"], ten["windows"], ten["hop_s"]) == (10.0, 6, 1.5)
    assert (rows["one.flac"]["duration_s"], rows["one.flac"]["windows"]) == (1.0, 1)
    assert (rows["four.wav"]["duration_s"], rows["four.wav"]["windows"]) == (4.0, 2)
    for row in rows.values():
        probs = [t["probability"] for t in row["top3"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert {t["class"] for t in row["top3"]} <= set(CLASS_NAMES)
        assert (row["class"], row["probability"]) == (row["top3"][0]["class"], probs[0])


def test_json_timeline_rows_and_events(model_file, clips, capsys):
    code = main(["predict", str(model_file), str(clips / "ten.wav"), "--json", "--timeline"])
    assert code == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(w["start_s"], w["end_s"]) for w in row["timeline"]] == [
        (0.0, 3.0),
        (1.5, 4.5),
        (3.0, 6.0),
        (4.5, 7.5),
        (6.0, 9.0),
        (7.0, 10.0),
    ]
    assert all(set(w) == {"start_s", "end_s", "class", "probability"} for w in row["timeline"])
    assert sum(e["windows"] for e in row["events"]) == 6
    assert row["events"][0]["start_s"] == 0.0 and row["events"][-1]["end_s"] == 10.0
    for a, b in zip(row["events"], row["events"][1:]):
        assert a["class"] != b["class"]


def test_human_output_with_timeline(model_file, clips, capsys):
    code = main(["predict", str(model_file), str(clips / "one.flac"), "--timeline"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(f"model {model_file}; configuration: defaults")
    assert out[1].startswith(f"{clips / 'one.flac'}: ") and out[1].endswith("1.0 s, 1 window(s)")
    assert out[2].split() == ["start", "s", "end", "s", "class", "probability"]
    assert out[3].split()[:2] == ["0.00", "1.00"] and out[4] == "  events:"
    assert out[5].split()[:2] == ["0.00", "1.00"] and out[5].endswith("(1 window(s))")


def test_a_pipeline_output_folder_holding_one_model(model_file, clips, capsys):
    assert main(["predict", str(model_file.parent), str(clips / "one.flac"), "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


# ---------------------------------------------------------------------------
# MLflow URIs
# ---------------------------------------------------------------------------


def test_an_mlflow_runs_uri_loads_and_predicts_as_the_local_file(
    tmp_path, model_file, clips, capsys
):
    """A fold run logged the way the pipeline logs it (params = the whole configuration,
    here with audio.pad_mode=zeros; the model through log_fold_result): runs:/, models:/<id>
    and models:/name@alias give the local file's probabilities under that configuration."""
    import mlflow

    from urbansound.components import fold_logging, runs
    from urbansound.pipeline.model_source import load_model
    from urbansound.training import FoldResult

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    config = Config().override(**{"audio.pad_mode": "zeros"})
    parent = runs.start_parent_run(uri, "predict-test", config.flat())
    run_id = runs.start_fold_run(uri, parent, 1, config.flat())
    result = FoldResult(
        test_fold=1,
        validation_fold=None,
        train_folds=[2, 3],
        test_accuracy=0.1,
        test_loss=2.3,
        y_true=[0],
        y_pred=[0],
        confusion_matrix=np.eye(10, dtype=int).tolist(),
        history={"loss": [2.3], "accuracy": [0.1]},
        best_epoch=1,
        epochs_run=1,
        n_train=1,
        n_validation=0,
        n_test=1,
        parameters=1,
    )
    fold_logging.log_fold_result(uri, run_id, result, str(model_file))

    loaded = load_model(f"runs:/{run_id}/model", tracking_uri=uri)
    assert loaded.config == config and run_id in loaded.config_source

    import keras

    local = keras.models.load_model(model_file)
    clip = clips / "one.flac"  # 1 s: padded with zeros under this configuration
    expected = predict_file(clip, keras_classifier(local), config=config).probabilities
    looped = predict_file(clip, keras_classifier(local), config=Config()).probabilities
    assert not np.allclose(expected, looped)

    mlflow.set_tracking_uri(uri)
    model_id = mlflow.models.get_model_info(f"runs:/{run_id}/model").model_id
    version = mlflow.register_model(f"runs:/{run_id}/model", "urban-test").version
    mlflow.MlflowClient(uri).set_registered_model_alias("urban-test", "champion", version)
    for source in (f"runs:/{run_id}/model", f"models:/{model_id}", "models:/urban-test@champion"):
        capsys.readouterr()
        code = main(["predict", source, str(clip), "--json", "--tracking-uri", uri])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert f"configuration: the params of run {run_id}" in captured.err
        row = json.loads(captured.out)
        got = {t["class"]: t["probability"] for t in row["top3"]}
        for name, p in got.items():
            assert p == pytest.approx(expected[CLASS_NAMES.index(name)], rel=1e-6, abs=1e-7)


def test_config_from_params_reads_what_tracking_logged():
    from urbansound.pipeline.model_source import config_from_params

    config = Config().override(
        **{
            "audio.pad_mode": "zeros",
            "features.fmax": 8000.0,
            "augment.deformations": ("pitch_shift_2",),
            "train.model": "sb-cnn",
        }
    )
    params = {
        k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in config.flat().items()
    } | {"data_root": "/x"}
    assert config_from_params(params) == config
    assert config_from_params({}) == Config()


# ---------------------------------------------------------------------------
# bad input: one line naming the file and the reason, exit 2 only when nothing worked
# ---------------------------------------------------------------------------


def test_one_bad_file_among_good_ones_is_reported_and_skipped(model_file, clips, tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    code = main(
        [
            "predict",
            str(model_file),
            str(bad),
            str(clips / "one.flac"),
            str(silent),
            str(tmp_path / "missing.wav"),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    errors = [line for line in captured.err.splitlines() if line.startswith("urbansound predict")]
    assert errors == [
        f"urbansound predict: error: {bad}: truncated WAV header (file is 16 bytes, ends inside "
        f"a chunk header)",
        f"urbansound predict: error: {silent}: silent (every sample is zero)",
        f"urbansound predict: error: {tmp_path / 'missing.wav'}: cannot read file (No such "
        f"file or directory)",
    ]
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [("error" in r, r["file"].rsplit("/", 1)[-1]) for r in rows] == [
        (True, "broken.wav"),
        (False, "one.flac"),
        (True, "silent.wav"),
        (True, "missing.wav"),
    ]


def test_every_file_failing_is_exit_2(model_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    nan = tmp_path / "nan.wav"
    y = tone(440, 1.0)
    y[100] = np.nan
    sf.write(nan, y, SR, subtype="FLOAT")
    code = main(["predict", str(model_file), str(nan), str(tmp_path / "empty")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err == [
        f"urbansound predict: error: {tmp_path / 'empty'}: no audio files in this folder",
        f"urbansound predict: error: {nan}: contains NaN or infinite samples "
        f"(1 in the block at 0.0 s)",
    ]


@pytest.mark.parametrize(
    "make, reason",
    [
        (
            lambda d, m: str(d / "nowhere.keras"),
            "no such model file or folder, and not an MLflow URI",
        ),
        (lambda d, m: str(d), "no model.keras in this folder"),
        (
            lambda d, m: (d / "model.keras").write_text("not a model") and str(d / "model.keras"),
            "model.keras: not a Keras model file (not a zip archive)",
        ),
        (
            lambda d, m: (
                __import__("zipfile").ZipFile(d / "model.keras", "w").close(),
                str(d / "model.keras"),
            )[1],
            "not a loadable Keras model",
        ),  # a zip, but not a Keras one: Keras' own reason
        (
            lambda d, m: (
                [
                    (d / f"fold{k}").mkdir()
                    or (d / f"fold{k}" / "model.keras").write_bytes(m.read_bytes())
                    for k in (1, 2)
                ]
                and str(d)
            ),
            "2 model.keras files in this folder",
        ),
        (lambda d, m: "runs:/0123456789abcdef/model", "no MLflow store at"),
    ],
)
def test_an_unusable_model_is_one_line_and_exit_2(
    tmp_path, model_file, clips, capsys, monkeypatch, make, reason
):
    folder = tmp_path / "m"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)  # the default store ./mlflow.db does not exist here
    source = make(folder, model_file)
    code = main(["predict", source, str(clips / "one.flac")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("urbansound predict: error: ") and reason in err[0]
    assert "Traceback" not in err[0]
    assert not (tmp_path / "mlflow.db").exists()


def test_an_unknown_run_in_an_existing_store_is_exit_2(tmp_path, clips, capsys):
    from urbansound.components import tracking_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking_store.check_store(uri)  # creates an empty store
    code = main(
        ["predict", "runs:/0123456789abcdef/model", str(clips / "one.flac"), "--tracking-uri", uri]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(
        "urbansound predict: error: runs:/0123456789abcdef/model: not found in"
    )


@pytest.mark.parametrize("hop", ["0", "3.5"])
def test_a_bad_hop_is_exit_2(model_file, clips, capsys, hop):
    code = main(["predict", str(model_file), str(clips / "one.flac"), "--hop", hop])
    assert code == 2
    assert "hop must be > 0 and <= the window (3 s)" in capsys.readouterr().err


def test_predict_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith("usage: urbansound predict")
    assert "--hop SECONDS" in out and "--timeline" in out and "--json" in out


def test_a_local_model_uses_the_config_json_written_beside_it(tmp_path, model_file):
    import shutil

    from urbansound.config import Config
    from urbansound.pipeline.model_source import load_model
    from urbansound.training import CONFIG_FILE, MODEL_FILE

    shutil.copy(model_file, tmp_path / MODEL_FILE)
    assert load_model(str(tmp_path)).config == Config()  # nothing beside it: defaults
    zeros = Config().override(**{"audio.pad_mode": "zeros"})
    (tmp_path / CONFIG_FILE).write_text(zeros.to_json())
    loaded = load_model(str(tmp_path / MODEL_FILE))
    assert loaded.config == zeros and loaded.config_source == str(tmp_path / CONFIG_FILE)
