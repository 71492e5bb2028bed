"""Tests for urbansound.demo_data (the built-in synthetic UrbanSound8K dataset)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from urbansound.demo_data import CLASS_NAMES, CSV_COLUMNS, synthesize_clip, write_demo_dataset

HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"
FOLDS = (2, 5)
CLIPS_PER_CLASS = 2
SEED = 0
SR = 22050


def _read_csv(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata" / "UrbanSound8K.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def _wav_path(root: Path, row: dict) -> Path:
    return root / "audio" / f"fold{row['fold']}" / str(row["slice_file_name"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("us8k_demo")
    rows = write_demo_dataset(root, folds=FOLDS, clips_per_class=CLIPS_PER_CLASS, seed=SEED)
    return root, rows


# ---------------------------------------------------------------------------
# Dataset layout and metadata
# ---------------------------------------------------------------------------


def test_class_names():
    assert CLASS_NAMES == (
        "air_conditioner",
        "car_horn",
        "children_playing",
        "dog_bark",
        "drilling",
        "engine_idling",
        "gun_shot",
        "jackhammer",
        "siren",
        "street_music",
    )
    assert ",".join(CSV_COLUMNS) == HEADER


def test_class_names_are_the_configs():
    from urbansound import config

    assert tuple(config.CLASS_NAMES) == CLASS_NAMES


def test_csv_header_and_row_count(dataset):
    root, rows = dataset
    first_line = (
        (root / "metadata" / "UrbanSound8K.csv").read_text(encoding="utf-8").splitlines()[0]
    )
    assert first_line == HEADER
    csv_rows = _read_csv(root)
    assert len(csv_rows) == len(FOLDS) * len(CLASS_NAMES) * CLIPS_PER_CLASS
    assert len(rows) == len(csv_rows)


def test_returned_rows_match_csv(dataset):
    root, rows = dataset
    csv_rows = _read_csv(root)
    for ret, got in zip(rows, csv_rows):
        assert list(ret) == list(CSV_COLUMNS)
        assert ret["slice_file_name"] == got["slice_file_name"]
        assert ret["fsID"] == int(got["fsID"])
        assert ret["start"] == float(got["start"])
        assert ret["end"] == float(got["end"])
        assert ret["salience"] == int(got["salience"])
        assert ret["fold"] == int(got["fold"])
        assert ret["classID"] == int(got["classID"])
        assert ret["class"] == got["class"]


def test_files_exist_and_match_metadata(dataset):
    root, _ = dataset
    csv_rows = _read_csv(root)
    listed = set()
    for row in csv_rows:
        path = _wav_path(root, row)
        assert path.is_file(), path
        listed.add(path)
        fs_id, class_id, occ_id, slice_id = path.stem.split("-")
        assert int(fs_id) == int(row["fsID"])
        assert int(class_id) == int(row["classID"])
        assert int(occ_id) >= 0 and int(slice_id) >= 0
        assert row["class"] == CLASS_NAMES[int(row["classID"])]
        assert int(row["salience"]) in (1, 2)
    # nothing on disk that the CSV does not list, and only the requested folds
    on_disk = set((root / "audio").rglob("*.wav"))
    assert on_disk == listed
    assert sorted(p.name for p in (root / "audio").iterdir()) == sorted(f"fold{f}" for f in FOLDS)
    assert len({r["slice_file_name"] for r in csv_rows}) == len(csv_rows)


def test_every_class_in_every_fold(dataset):
    root, _ = dataset
    csv_rows = _read_csv(root)
    for fold in FOLDS:
        counts = np.bincount(
            [int(r["classID"]) for r in csv_rows if int(r["fold"]) == fold], minlength=10
        )
        assert counts.tolist() == [CLIPS_PER_CLASS] * 10


def test_fsid_never_spans_folds(dataset):
    root, _ = dataset
    folds_of: dict[str, set[str]] = {}
    for row in _read_csv(root):
        folds_of.setdefault(row["fsID"], set()).add(row["fold"])
    assert all(len(f) == 1 for f in folds_of.values())


def test_start_end_consistent_with_audio(dataset):
    root, _ = dataset
    for row in _read_csv(root):
        start, end = float(row["start"]), float(row["end"])
        assert 0.0 <= start < end
        info = sf.info(str(_wav_path(root, row)))
        assert end - start == pytest.approx(info.frames / info.samplerate, abs=1e-4)
        assert end - start <= 4.0 + 1e-9


def test_formats_are_mixed(dataset):
    root, _ = dataset
    infos = [sf.info(str(_wav_path(root, row))) for row in _read_csv(root)]
    assert {i.format for i in infos} == {"WAV"}
    assert len({i.samplerate for i in infos}) >= 3
    assert {i.channels for i in infos} == {1, 2}
    subtypes = {i.subtype for i in infos}
    assert len(subtypes) >= 2
    assert subtypes <= {"PCM_16", "PCM_24", "PCM_U8", "FLOAT"}
    durations = np.array([i.frames / i.samplerate for i in infos])
    assert np.any(durations < 3.9)
    assert np.any(np.abs(durations - 4.0) < 1e-3)


def test_audio_is_sane(dataset):
    root, _ = dataset
    for row in _read_csv(root):
        x, _ = sf.read(str(_wav_path(root, row)), dtype="float64")
        assert np.all(np.isfinite(x))
        peak = np.max(np.abs(x))
        assert 0.01 < peak <= 0.95  # audible, and no clipping in any format


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "again"
    write_demo_dataset(again, folds=FOLDS, clips_per_class=CLIPS_PER_CLASS, seed=SEED)
    assert _tree_hash(again) == _tree_hash(root)


def test_different_seed_gives_different_dataset(dataset, tmp_path):
    root, _ = dataset
    other = tmp_path / "other"
    write_demo_dataset(other, folds=FOLDS, clips_per_class=CLIPS_PER_CLASS, seed=SEED + 1)
    assert _tree_hash(other) != _tree_hash(root)
    a = (root / "metadata" / "UrbanSound8K.csv").read_bytes()
    b = (other / "metadata" / "UrbanSound8K.csv").read_bytes()
    assert a != b


def test_float_wavs_carry_no_timestamp(dataset):
    # libsndfile stamps the wall-clock time into the PEAK chunk of float WAVs;
    # the writer must zero it or "same seed -> same bytes" breaks across runs.
    root, _ = dataset
    float_files = [
        _wav_path(root, r)
        for r in _read_csv(root)
        if sf.info(str(_wav_path(root, r))).subtype == "FLOAT"
    ]
    assert float_files, "fixture dataset should contain at least one FLOAT wav"
    for path in float_files:
        raw = path.read_bytes()
        pos = raw.find(b"PEAK")
        assert pos > 0
        assert raw[pos + 12 : pos + 16] == b"\x00\x00\x00\x00"


def test_synthesize_clip_deterministic():
    a = synthesize_clip(3, rng=np.random.default_rng(42))
    b = synthesize_clip(3, rng=np.random.default_rng(42))
    c = synthesize_clip(3, rng=np.random.default_rng(43))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------------------
# synthesize_clip: output contract and spectral identity of the classes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("class_id", range(10))
@pytest.mark.parametrize("sr,duration_s", [(22050, 4.0), (8000, 1.3), (44100, 0.5)])
def test_synthesize_clip_contract(class_id, sr, duration_s):
    x = synthesize_clip(
        class_id, sr=sr, duration_s=duration_s, rng=np.random.default_rng([1, class_id])
    )
    assert x.dtype == np.float32
    assert x.shape == (round(sr * duration_s),)
    assert np.all(np.isfinite(x))
    assert 0.0 < np.max(np.abs(x)) <= 1.0


def test_background_salience_is_quieter():
    for class_id in range(10):
        fg = synthesize_clip(class_id, rng=np.random.default_rng([2, class_id]), salience=1)
        bg = synthesize_clip(class_id, rng=np.random.default_rng([2, class_id]), salience=2)
        assert np.max(np.abs(bg)) < np.max(np.abs(fg))


def test_invalid_arguments(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        synthesize_clip(10, rng=rng)
    with pytest.raises(ValueError):
        synthesize_clip(-1, rng=rng)
    with pytest.raises(ValueError):
        synthesize_clip(0, rng=rng, duration_s=0.0)
    with pytest.raises(ValueError):
        synthesize_clip(0, rng=rng, salience=3)
    with pytest.raises(ValueError):
        write_demo_dataset(tmp_path, folds=(1, 1))
    with pytest.raises(ValueError):
        write_demo_dataset(tmp_path, clips_per_class=0)


def _centroid_hz(x: np.ndarray, sr: int) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    return float(np.sum(power * freqs) / np.sum(power))


def _crest(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(np.max(np.abs(x)) / np.sqrt(np.mean(x**2)))


def _dominant_hz(x: np.ndarray, sr: int, start_s: float, win_s: float = 0.25) -> float:
    i0, w = int(start_s * sr), int(win_s * sr)
    spec = np.abs(np.fft.rfft(x[i0 : i0 + w] * np.hanning(w)))
    return float(np.argmax(spec) * sr / w)


def _clips(class_id: int, n: int, tag: int) -> list[np.ndarray]:
    return [
        synthesize_clip(class_id, sr=SR, rng=np.random.default_rng([tag, class_id, i]))
        for i in range(n)
    ]


def test_engine_idling_is_far_below_drilling():
    engine = [_centroid_hz(x, SR) for x in _clips(CLASS_NAMES.index("engine_idling"), 5, 10)]
    drill = [_centroid_hz(x, SR) for x in _clips(CLASS_NAMES.index("drilling"), 5, 10)]
    assert max(engine) < 500.0
    assert min(drill) > 1500.0
    assert 4.0 * max(engine) < min(drill)


def test_siren_pitch_sweeps():
    for x in _clips(CLASS_NAMES.index("siren"), 5, 11):
        first = _dominant_hz(x, SR, 0.0)
        later = [_dominant_hz(x, SR, s) for s in np.arange(0.125, 3.75 + 1e-9, 0.125)]
        assert 500.0 < first < 1700.0  # the fundamental dominates
        assert max(abs(f - first) for f in later) > 100.0


def _centroid_spread(x: np.ndarray, sr: int, win_s: float = 0.25) -> float:
    """max/min spectral centroid over the loud 0.25 s windows of a clip."""
    w = int(win_s * sr)
    frames = x[: len(x) // w * w].reshape(-1, w).astype(np.float64) * np.hanning(w)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    power = np.abs(np.fft.rfft(frames[rms > 0.7 * rms.max()], axis=1)) ** 2
    cents = power @ np.fft.rfftfreq(w, 1.0 / sr) / power.sum(axis=1)
    return float(cents.max() / cents.min())


def test_siren_sweeps_but_car_horn_is_steady():
    sirens = [_centroid_spread(x, SR) for x in _clips(CLASS_NAMES.index("siren"), 5, 12)]
    horns = [_centroid_spread(x, SR) for x in _clips(CLASS_NAMES.index("car_horn"), 5, 12)]
    assert min(sirens) > 1.2
    assert max(horns) < 1.15


def test_gun_shot_is_impulsive_air_conditioner_is_not():
    guns = [_crest(x) for x in _clips(CLASS_NAMES.index("gun_shot"), 5, 13)]
    acs = [_crest(x) for x in _clips(CLASS_NAMES.index("air_conditioner"), 5, 13)]
    assert min(guns) > 8.0
    assert max(acs) < 6.0
    assert min(guns) > 1.5 * max(acs)


def test_jackhammer_pulses_at_10_to_20_hz():
    frame_rate = 400  # envelope sample rate in Hz
    for x in _clips(CLASS_NAMES.index("jackhammer"), 5, 14):
        hop = SR // frame_rate
        k = len(x) // hop
        env = np.sqrt(np.mean(x[: k * hop].reshape(k, hop).astype(np.float64) ** 2, axis=1))
        spec = np.abs(np.fft.rfft((env - env.mean()) * np.hanning(k)))
        freqs = np.fft.rfftfreq(k, 1.0 / frame_rate)
        band = (freqs >= 5.0) & (freqs <= 40.0)
        peak = freqs[band][np.argmax(spec[band])]
        assert 9.0 <= peak <= 21.0


def test_the_metadata_csv_reads_back_as_written(tmp_path):
    from urbansound.dataset import read_rows

    rows = write_demo_dataset(tmp_path, folds=(2,), clips_per_class=1, seed=5)
    header, read, rejected = read_rows(tmp_path)
    assert header == list(CSV_COLUMNS) and not rejected
    assert [r.values["slice_file_name"] for r in read] == [r["slice_file_name"] for r in rows]
    assert {r.values["fold"] for r in read} == {"2"}
