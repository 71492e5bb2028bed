"""Bad input for ``urbansound ingest``: one test per case of the hardening issue, on real files.

Every test builds a small valid dataset in ``tmp_path`` (3 folds x 2 classes, one
0.25 s tone per clip, each at its own frequency), injects one bad case, runs
:func:`urbansound.ingest.ingest` and asserts EITHER

* accepted correctly: the clip is in its fold's TFRecord as 22,050 Hz mono
  float32 of the expected duration, with its tone at the expected frequency
  (so resampling and mix-down are checked, not just "no exception"); OR
* reported: ``report.json`` holds exactly that file with a clear reason,

and, in both cases, that every good clip is still accepted.

Decisions recorded here (and in the library's docstrings):

* Decoded by content, never by extension: 8 channels, 192 kHz, 8-bit unsigned,
  32-bit float, IMA ADPCM, and FLAC / OGG / MP3 streams named ``.wav`` are
  accepted.  A 50 ms clip is accepted (over the 20 ms minimum; loop-padded later).
* Rejected with a reason: zero bytes, a truncated WAV (cut inside the header,
  or holding less audio than its header declares: libsndfile would decode the
  remainder, silently shortening the clip, so it is rejected), a text file,
  NaN/inf samples, all-zero silence (also channels that cancel in the mix-down).
* The metadata CSV must be UTF-8 (a BOM is fine): other bytes in the header
  are a DatasetError naming the CSV and the byte offset; in a row, that row
  alone is rejected naming its line and the byte offset, never a latin-1 guess
  (which would turn every affected row into a puzzling "file not found").
* Whole-dataset problems (no dataset folder, no CSV, missing columns, an empty
  CSV, nothing usable) raise DatasetError / IngestError naming the path: exit 2
  in the CLI.  Per-row and per-file problems go to the report.
* A class missing from a fold is accepted; ``manifest.json`` lists it under "warnings".
* A failed ingest (strict, or nothing usable) keeps report.json/report.csv but
  removes fold records and manifest.json.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    BAD_FOLD,
    GOOD_SECONDS,
    HEADER,
    SR,
    Dataset,
    Outcome,
    assert_good_accepted,
    assert_tone,
    dominant_hz,
    run_ingest,
    tone,
    wav_bytes,
)

from urbansound.ingest import REPORT, ingest
from urbansound.listing import DatasetError
from urbansound.manifest import MANIFEST, IngestError

BAD = "999-3-0-0.wav"  # the injected clip: fsID 999, class 3 (dog_bark), fold 2
BAD_FILE = f"audio/fold{BAD_FOLD}/{BAD}"
SECRET_HZ = 4321.0  # the tone of files outside the dataset, which must never be read


# ---------------------------------------------------------------------------
# Building datasets (Dataset: conftest)
# ---------------------------------------------------------------------------


def make_dataset(root: Path, *, skip=()) -> Dataset:
    """3 folds x classes 0 and 1, one 0.25 s tone each (300..800 Hz), PCM_16 at 22,050 Hz."""
    (root / "metadata").mkdir(parents=True)
    ds = Dataset(root=root, rows=[], good={})
    for fold in (1, 2, 3):
        for class_id in (0, 1):
            if (fold, class_id) in skip:
                continue
            freq = 300.0 + 100 * (2 * (fold - 1) + class_id)
            name = f"{100 + 10 * fold + class_id}-{class_id}-0-0.wav"
            ds.add(name, fold, class_id, wav_bytes(tone(freq, GOOD_SECONDS, SR), SR))
            ds.good[name] = (fold, class_id, freq)
    return ds


@pytest.fixture
def ds(tmp_path) -> Dataset:
    return make_dataset(tmp_path / "data")


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder next to the dataset holding a valid clip that must never be read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.wav").write_bytes(wav_bytes(tone(SECRET_HZ, 0.5, SR), SR))
    return folder


# ---------------------------------------------------------------------------
# Reading ingest's output (run_ingest, assert_good_accepted: conftest)
# ---------------------------------------------------------------------------


def assert_only_rejected(
    ds: Dataset, outcome: Outcome, file: str, *reason_parts: str, fold=BAD_FOLD
):
    """report.json lists exactly ``file`` with a reason holding every part; the rest is fine."""
    assert len(outcome.report) == 1, outcome.report
    entry = outcome.report[0]
    assert entry["file"] == file
    assert entry["fold"] == fold
    for part in reason_parts:
        assert part.lower() in entry["reason"].lower(), entry["reason"]
    assert_good_accepted(ds, outcome)
    assert [(r.file, r.reason) for r in outcome.result.rejections] == [
        (entry["file"], entry["reason"])
    ]
    with open(outcome.out / "report.csv", newline="", encoding="utf-8") as fh:
        assert [(r["file"], r["reason"]) for r in csv.DictReader(fh)] == [
            (entry["file"], entry["reason"])
        ]


def assert_secret_never_decoded(outcome: Outcome):
    for rec in outcome.records.values():
        assert abs(dominant_hz(rec.waveform) - SECRET_HZ) > 50, rec.file_name


# ---------------------------------------------------------------------------
# Audio accepted: decoded by content, resampled, mixed down
# ---------------------------------------------------------------------------


def _short_50ms(path):
    path.write_bytes(wav_bytes(tone(1000, 0.05, SR), SR))
    return dict(seconds=0.05, freq=1000)


def _eight_channels(path):
    gains = np.arange(1, 9) / 10  # channel k carries the tone at gain 0.1 .. 0.8
    y = tone(440, 0.5, 44100, amplitude=1.0)[:, None] * gains[None, :]
    path.write_bytes(wav_bytes(y.astype(np.float32), 44100))
    assert sf.info(path).channels == 8
    return dict(seconds=0.5, freq=440, amp=float(gains.mean()))  # mix-down = channel mean


def _rate_192k(path):
    # a 1 kHz tone plus a 30 kHz one that a naive decimation would alias to 7,950 Hz
    y = tone(1000, 0.5, 192000, amplitude=0.4) + tone(30000, 0.5, 192000, amplitude=0.4)
    path.write_bytes(wav_bytes(y, 192000, "PCM_24"))
    return dict(seconds=0.5, freq=1000, no_alias_hz=30000 - SR)


def _unsigned_8bit(path):
    path.write_bytes(wav_bytes(tone(500, 0.5, 11025), 11025, "PCM_U8"))
    assert sf.info(path).subtype == "PCM_U8"
    return dict(seconds=0.5, freq=500, amp=0.5)


def _float_32bit(path):
    path.write_bytes(wav_bytes(tone(1500, 0.5, 48000, amplitude=0.7), 48000, "FLOAT"))
    return dict(seconds=0.5, freq=1500, amp=0.7)


def _ima_adpcm(path):
    # libsndfile writes 4,089-sample IMA blocks at 44.1 kHz mono; 3 whole blocks, no padding
    n = 3 * 4089
    path.write_bytes(wav_bytes(tone(700, n / 44100, 44100), 44100, "IMA_ADPCM"))
    info = sf.info(path)
    assert (info.subtype, info.frames) == ("IMA_ADPCM", n)
    return dict(seconds=n / 44100, freq=700)


def _stereo_24bit(path):
    y = np.stack([tone(900, 0.5, 48000, 0.6), tone(900, 0.5, 48000, 0.2)], axis=1)
    path.write_bytes(wav_bytes(y, 48000, "PCM_24"))
    return dict(seconds=0.5, freq=900, amp=0.4)


def _lossy_or_flac(fmt, subtype, magic):
    def write(path):
        path.write_bytes(wav_bytes(tone(1000, 0.5, 44100), 44100, subtype, fmt))
        head = path.read_bytes()[:4]
        assert any(head.startswith(m) for m in magic), head
        # MP3 may gain or lose up to one 1,152-sample frame (576 at 22,050 Hz)
        return dict(seconds=0.5, freq=1000, length_tol=600 if fmt == "MP3" else 1)

    return write


def _float_scaled(amplitude):
    """A float WAV whose samples exceed ±1 but are sane (e.g. written on an int16 scale)."""

    def write(path):
        path.write_bytes(wav_bytes(tone(1200, 0.5, SR, amplitude=amplitude), SR, "FLOAT"))
        return dict(seconds=0.5, freq=1200, amp=amplitude)

    return write


ACCEPTED_AUDIO = {
    "float_peak_4": _float_scaled(4.0),
    "float_int16_scale": _float_scaled(32767.0),
    "clip_of_50ms": _short_50ms,
    "eight_channels": _eight_channels,
    "rate_192kHz": _rate_192k,
    "unsigned_8bit": _unsigned_8bit,
    "float_32bit": _float_32bit,
    "ima_adpcm": _ima_adpcm,
    "stereo_24bit_48kHz": _stereo_24bit,
    "flac_named_wav": _lossy_or_flac("FLAC", "PCM_16", [b"fLaC"]),
    "ogg_named_wav": _lossy_or_flac("OGG", "VORBIS", [b"OggS"]),
    "mp3_named_wav": _lossy_or_flac("MP3", "MPEG_LAYER_III", [b"ID3", b"\xff\xfb", b"\xff\xf3"]),
}


@pytest.mark.parametrize("case", list(ACCEPTED_AUDIO))
def test_audio_accepted_decoded_by_content(ds, case):
    path = ds.add(BAD, content=b"")
    expected = ACCEPTED_AUDIO[case](path)
    outcome = run_ingest(ds)

    assert outcome.report == []
    assert_good_accepted(ds, outcome, extra=[BAD])
    rec = outcome.records[BAD]
    assert (rec.fold, rec.label, rec.class_name) == (BAD_FOLD, 3, "dog_bark")
    assert_tone(
        rec,
        seconds=expected["seconds"],
        freq=expected["freq"],
        length_tol=expected.get("length_tol", 1),
        amp=expected.get("amp"),
    )
    if "no_alias_hz" in expected:
        y = rec.waveform
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        at = int(round(expected["no_alias_hz"] * len(y) / SR))
        assert spectrum[at - 3 : at + 4].max() < 1e-3 * spectrum.max()


# ---------------------------------------------------------------------------
# Audio rejected: reported with a reason, the run goes on
# ---------------------------------------------------------------------------

_PCM = wav_bytes(tone(440, 0.5, 44100), 44100)  # 44-byte canonical header + 44,100 data bytes
assert _PCM[36:40] == b"data" and len(_PCM) == 44 + 44100


def _float_with(value):
    y = tone(440, 0.5, SR)
    y[1000] = value
    return wav_bytes(y, SR, "FLOAT")


REJECTED_AUDIO = {
    "zero_bytes": (b"", "empty file"),
    "truncated_in_riff_header": (_PCM[:10], "truncated WAV header"),
    "truncated_in_fmt_chunk": (_PCM[:20], "truncated WAV header"),
    "truncated_in_data_chunk_header": (_PCM[:40], "truncated WAV header"),
    "truncated_header_only": (_PCM[:44], "truncated WAV data"),
    "truncated_mid_data": (_PCM[: 44 + 20000], "truncated WAV data"),
    "text_file": (b"this is not audio\n" * 20, "not a readable audio file"),
    "random_bytes": (np.random.default_rng(0).bytes(20000), "not a readable audio file"),
    "all_zero_silence": (wav_bytes(np.zeros(SR, np.float32), SR), "silent"),
    "silence_8bit_unsigned": (wav_bytes(np.zeros(SR, np.float32), SR, "PCM_U8"), "silent"),
    "stereo_channels_cancel": (
        wav_bytes(np.stack([tone(440, 0.5, SR), -tone(440, 0.5, SR)], 1), SR, "FLOAT"),
        "cancel out",
    ),
    "nan_in_float_wav": (_float_with(np.nan), "NaN or infinite"),
    "inf_in_float_wav": (_float_with(np.inf), "NaN or infinite"),
    "minus_inf_in_float_wav": (_float_with(-np.inf), "NaN or infinite"),
    "clip_of_10ms": (wav_bytes(tone(1000, 0.01, SR), SR), "too short"),
    # finite but absurd: the float32 log-mel of a 1e18 peak was all NaN (issue 10, defect 2)
    "float_peak_1e30": (
        wav_bytes(tone(440, 0.5, SR, amplitude=1e30), SR, "FLOAT"),
        "implausible amplitude: peak sample 1e+30",
    ),
    "float_peak_1e18": (
        wav_bytes(tone(440, 0.5, SR, amplitude=1e18), SR, "FLOAT"),
        "implausible amplitude",
    ),
    "float_peak_1e11": (
        wav_bytes(tone(440, 0.5, SR, amplitude=1e11), SR, "FLOAT"),
        "implausible amplitude",
    ),
    "float_one_huge_sample": (_float_with(3e38), "implausible amplitude"),
    "float_peak_1e-9": (
        wav_bytes(tone(440, 0.5, SR, amplitude=1e-9), SR, "FLOAT"),
        "practically silent",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED_AUDIO))
def test_audio_rejected_with_reason(ds, case):
    content, reason = REJECTED_AUDIO[case]
    ds.add(BAD, content=content)
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, reason)
    assert outcome.manifest["rejected"] == 1
    assert outcome.manifest["accepted"] == len(ds.good)


# ---------------------------------------------------------------------------
# Metadata: whole-dataset problems are DatasetError / IngestError naming the path
# ---------------------------------------------------------------------------


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "nope"))):
        ingest(tmp_path / "nope", tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_missing_csv(ds):
    ds.csv_path.unlink()
    with pytest.raises(DatasetError) as err:
        ingest(ds.root, ds.root.parent / "out", workers=1)
    assert str(ds.csv_path) in str(err.value)
    assert "not found" in str(err.value)
    assert not (ds.root.parent / "out").exists()


@pytest.mark.parametrize(
    "header, missing",
    [
        ([h for h in HEADER if h != "classID"], "classID"),
        (["Fold" if h == "fold" else h for h in HEADER], "fold"),
        (["class_name" if h == "class" else h for h in HEADER], "class"),
        (["file" if h == "slice_file_name" else h for h in HEADER], "slice_file_name"),
    ],
)
def test_missing_or_renamed_column(ds, header, missing):
    ds.write_csv(header)
    with pytest.raises(DatasetError) as err:
        ingest(ds.root, ds.root.parent / "out", workers=1)
    message = str(err.value)
    assert message.startswith(f"{ds.csv_path}: missing column(s) ['{missing}']")
    if missing == "fold":
        assert "did you mean 'fold' for 'Fold'" in message


def test_csv_with_byte_order_mark_is_accepted(ds):
    ds.write_csv(bom=True)
    outcome = run_ingest(ds)
    assert outcome.report == []
    assert_good_accepted(ds, outcome)


def test_non_utf8_row_is_rejected_alone_naming_line_and_offset(ds):
    ds.add("998-3-0-0.wav", content=wav_bytes(tone(440, 0.5, SR), SR))
    raw = ds.csv_path.read_bytes()
    offset = raw.index(b"998-3")
    ds.csv_path.write_bytes(raw[:offset] + b"\xe9" + raw[offset + 1 :])  # latin-1 e-acute
    line = raw[:offset].count(b"\n") + 1
    outcome = run_ingest(ds)
    reasons = {r["file"]: r["reason"] for r in outcome.report}
    assert reasons == {
        f"CSV line {line}": f"CSV line {line}: not UTF-8 text (byte 0xe9 at byte offset {offset})",
        "audio/fold2/998-3-0-0.wav": "no metadata row names this file",
    }
    assert_good_accepted(ds, outcome)


def test_non_utf8_header_is_an_error_naming_file_and_offset(ds):
    raw = ds.csv_path.read_bytes()
    ds.csv_path.write_bytes(raw.replace(b"class\n", b"cl\xe4ss\n", 1))
    offset = raw.index(b"class\n") + 2
    with pytest.raises(DatasetError) as err:
        ingest(ds.root, ds.root.parent / "out", workers=1)
    assert str(err.value) == (
        f"{ds.csv_path}: not UTF-8 text (byte 0xe4 at byte offset {offset}); "
        f"the header line 1 cannot be read (re-save the CSV as UTF-8 text)"
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf\r\n\n", "empty file"),
        (b"\xff\xfes\x00l\x00", "not UTF-8 text (byte 0xff at byte offset 0"),  # UTF-16
        (b"slice_file_name\x00,fsID\n", "contains NUL bytes"),
    ],
)
def test_unreadable_csv_is_an_error(ds, content, message):
    ds.csv_path.write_bytes(content)
    with pytest.raises(DatasetError) as err:
        ingest(ds.root, ds.root.parent / "out", workers=1)
    assert str(err.value).startswith(f"{ds.csv_path}: {message}")


def test_empty_dataset_header_only(ds):
    import shutil

    shutil.rmtree(ds.root / "audio")
    ds.rows.clear()
    ds.write_csv()
    out = ds.root.parent / "out"
    with pytest.raises(IngestError) as err:
        ingest(ds.root, out, workers=1)
    assert "no usable clip" in str(err.value) and "no rows" in str(err.value)
    assert str(ds.root) in str(err.value)
    assert json.loads((out / REPORT).read_text()) == []
    assert not (out / MANIFEST).exists()


def test_empty_dataset_no_usable_clip(ds):
    for name, (fold, _, _) in ds.good.items():
        ds.path(fold, name).write_bytes(b"")
    out = ds.root.parent / "out"
    with pytest.raises(IngestError, match="no usable clip") as err:
        ingest(ds.root, out, workers=1)
    assert str(out / REPORT) in str(err.value)
    report = json.loads((out / REPORT).read_text())
    assert sorted(r["file"] for r in report) == sorted(
        f"audio/fold{f}/{n}" for n, (f, _, _) in ds.good.items()
    )
    assert all("empty file" in r["reason"] for r in report)
    assert not (out / MANIFEST).exists() and not list(out.glob("fold*.tfrecord"))


# ---------------------------------------------------------------------------
# Metadata: per-row and per-file problems are reported, the run goes on
# ---------------------------------------------------------------------------


def test_row_whose_file_is_missing(ds):
    ds.add(BAD)  # a row, no file
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, "audio file not found")


def test_file_with_no_row(ds):
    ds.add(BAD, content=wav_bytes(tone(440, 0.5, SR), SR), row=False)
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, "no metadata row")


def test_duplicate_row(ds):
    name = "120-0-0-0.wav"  # fold 2, class 0: CSV line 4
    ds.rows.append(dict(next(r for r in ds.rows if r["slice_file_name"] == name)))
    ds.write_csv()
    outcome = run_ingest(ds)
    assert_only_rejected(
        ds, outcome, f"audio/fold2/{name}", "duplicate row", "CSV line 8 repeats line 4"
    )


def test_duplicate_file_name_in_another_fold(ds):
    name = "120-0-0-0.wav"  # listed in fold 2
    ds.add(name, fold=3, class_id=0, content=wav_bytes(tone(440, 0.5, SR), SR))
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, f"audio/fold3/{name}", "duplicate row", fold=3)


def test_class_id_disagrees_with_class_name(ds):
    ds.add(BAD, content=wav_bytes(tone(440, 0.5, SR), SR), **{"class": "siren"})
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, "class 'siren' disagrees with classID 3")


def test_class_id_disagrees_with_file_name(ds):
    ds.add(BAD, class_id=4, content=wav_bytes(tone(440, 0.5, SR), SR))  # name says 3, row says 4
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, "file name encodes classID 3 but the row says 4")


@pytest.mark.parametrize("class_id", ["10", "-1", "three", ""])
def test_class_id_out_of_range(ds, class_id):
    ds.add(BAD, content=wav_bytes(tone(440, 0.5, SR), SR), classID=class_id)
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, "is not one of 0..9")


@pytest.mark.parametrize("fold", ["0", "11", "-1", "2.5", "abc", ""])
def test_fold_outside_1_to_10(ds, fold):
    number = {"0": 0, "11": 11, "-1": -1}.get(fold)
    # where a folder of that name can exist, put the file there too: still one entry
    ds.add(
        BAD,
        fold=number if number is not None else BAD_FOLD,
        row=False,
        content=wav_bytes(tone(440, 0.5, SR), SR) if number is not None else None,
    )
    ds.add(BAD, content=None, fold=fold)
    outcome = run_ingest(ds)
    shown = f"audio/fold{number}/{BAD}" if number is not None else BAD
    assert_only_rejected(ds, outcome, shown, f"fold {fold!r} is not one of 1..10", fold=number)


@pytest.mark.parametrize(
    "name",
    [
        "../../../outside/secret.wav",
        "../fold1/111-1-0-0.wav",
        "ABSOLUTE",
        "..",
        "sub\\..\\..\\x.wav",
    ],
)
def test_file_name_escaping_the_dataset_folder(ds, outside, name):
    if name == "ABSOLUTE":
        name = str(outside / "secret.wav")
    ds.add(name)
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, f"audio/fold{BAD_FOLD}/{name}", "not a plain file name")
    assert_secret_never_decoded(outcome)


@pytest.mark.parametrize(
    "name, shown",
    [
        ("a\nb-3-0-0.wav", "a\\nb-3-0-0.wav"),
        ("tab\t-3-0-0.wav", "tab\\t-3-0-0.wav"),
        ("   ", ""),
    ],
)
def test_control_characters_and_blank_names(ds, name, shown):
    ds.add(name)
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, f"audio/fold{BAD_FOLD}/{shown}", "not a plain file name")


def test_row_with_wrong_number_of_fields(ds):
    ds.add(BAD, content=wav_bytes(tone(440, 0.5, SR), SR))
    ds.csv_path.write_text(ds.csv_path.read_text().replace(f"{BAD},", f"{BAD},extra,"))
    outcome = run_ingest(ds)
    assert len(outcome.report) == 2, outcome.report
    by_reason = {r["reason"].split(":")[0]: r for r in outcome.report}
    assert by_reason["CSV line 8"]["file"] == BAD  # the malformed row (fold unknown)
    assert "9 fields, the header has 8" in by_reason["CSV line 8"]["reason"]
    assert by_reason["no metadata row names this file"]["file"] == BAD_FILE
    assert_good_accepted(ds, outcome)


def test_symlink_to_a_file_outside(ds, outside):
    ds.add(BAD)
    ds.path(BAD_FOLD, BAD).symlink_to(outside / "secret.wav")
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, "link that leads outside the dataset folder")
    assert_secret_never_decoded(outcome)


def test_a_symlink_loop_is_rejected_with_its_reason(ds):
    """Two links pointing at each other: Python 3.11's resolve() raises a RuntimeError
    (no strerror), which must be a rejection naming the loop, not a traceback."""
    ds.add(BAD)
    clip = ds.path(BAD_FOLD, BAD)
    other = clip.with_name("loop.wav")
    clip.symlink_to(other)
    other.symlink_to(clip)
    outcome = run_ingest(ds)
    reasons = {r["file"]: r["reason"] for r in outcome.report}
    assert reasons[BAD_FILE].startswith("cannot resolve path ("), reasons
    assert "loop" in reasons[BAD_FILE].lower(), reasons
    assert_good_accepted(ds, outcome)


def test_symlink_into_another_fold_is_rejected(ds):
    """A link from fold 2 to a clip of fold 1 would put one recording in two folds."""
    ds.add(BAD)
    fold1_clip = next(name for name, (fold, _, _) in ds.good.items() if fold == 1)
    ds.path(BAD_FOLD, BAD).symlink_to(ds.path(1, fold1_clip))
    outcome = run_ingest(ds)
    assert_only_rejected(ds, outcome, BAD_FILE, "link that leads outside audio/fold2")


def test_symlink_to_a_fifo_outside_is_never_opened(ds, outside):
    """The link's target is a FIFO: a reader opening it would block until a writer
    comes, so a writer thread stands by and records whether anyone opened it."""
    fifo = outside / "fifo.wav"
    os.mkfifo(fifo)
    ds.add(BAD)
    ds.path(BAD_FOLD, BAD).symlink_to(fifo)
    state = {"test_done": False, "opened_by_ingest": False}

    def writer():
        fd = os.open(fifo, os.O_WRONLY)  # returns once some reader has opened the FIFO
        state["opened_by_ingest"] = not state["test_done"]
        try:
            os.write(fd, b"RIFF")
        except OSError:
            pass
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        outcome = run_ingest(ds)
    finally:
        state["test_done"] = True
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # release the writer
        thread.join(10)
        os.close(reader)
    assert not state["opened_by_ingest"]
    assert_only_rejected(ds, outcome, BAD_FILE, "leads outside the dataset folder")


def test_fold_folder_linked_outside_is_not_listed(ds, outside):
    (ds.root / "audio" / "fold4").symlink_to(outside, target_is_directory=True)
    (outside / "stray-3-0-0.wav").write_bytes(wav_bytes(tone(SECRET_HZ, 0.5, SR), SR))
    os.link(outside / "secret.wav", outside / BAD)  # a row names it, through the linked folder
    ds.add(BAD, fold=4)
    outcome = run_ingest(ds)
    assert sorted((r["file"], r["fold"]) for r in outcome.report) == [
        ("audio/fold4/", 4),
        (f"audio/fold4/{BAD}", 4),
    ]
    reasons = {r["file"]: r["reason"] for r in outcome.report}
    assert "leads outside the dataset folder" in reasons["audio/fold4/"]
    assert "leads outside the dataset folder" in reasons[f"audio/fold4/{BAD}"]
    assert_good_accepted(ds, outcome)
    assert_secret_never_decoded(outcome)


def test_metadata_csv_linked_outside_is_an_error(ds, outside):
    target = outside / "UrbanSound8K.csv"
    target.write_bytes(ds.csv_path.read_bytes())
    ds.csv_path.unlink()
    ds.csv_path.symlink_to(target)
    with pytest.raises(DatasetError, match="leads outside the dataset folder"):
        ingest(ds.root, ds.root.parent / "out", workers=1)


def test_file_name_not_utf8_on_disk(ds):
    raw_name = b"\xff\xfe-3-0-0.wav"
    folder = os.fsencode(ds.root / "audio" / f"fold{BAD_FOLD}")
    fd = os.open(folder + b"/" + raw_name, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, wav_bytes(tone(440, 0.5, SR), SR))
    os.close(fd)
    outcome = run_ingest(ds)
    assert_only_rejected(
        ds,
        outcome,
        f"audio/fold{BAD_FOLD}/\\xff\\xfe-3-0-0.wav",
        "no metadata row",
        "not valid UTF-8",
    )
    assert outcome.manifest["rejected"] == 1


# ---------------------------------------------------------------------------
# A class missing from a fold
# ---------------------------------------------------------------------------


def test_class_with_no_clips_in_a_fold(tmp_path):
    ds = make_dataset(tmp_path / "data", skip={(3, 1)})  # no car_horn in fold 3
    outcome = run_ingest(ds)
    assert outcome.report == []
    assert_good_accepted(ds, outcome)
    manifest = outcome.manifest
    assert manifest["class_counts"] == {
        "1": {"air_conditioner": 1, "car_horn": 1},
        "2": {"air_conditioner": 1, "car_horn": 1},
        "3": {"air_conditioner": 1},
    }
    assert "fold 3 has no clips of class(es) car_horn" in manifest["warnings"]
    assert not any(w.startswith(("fold 1", "fold 2")) for w in manifest["warnings"])
    assert outcome.result.warnings == manifest["warnings"]


# ---------------------------------------------------------------------------
# Strict mode
# ---------------------------------------------------------------------------


def test_strict_fails_after_writing_the_report(ds):
    ds.add(BAD, content=b"")
    out = ds.root.parent / "out"
    with pytest.raises(IngestError) as err:
        ingest(ds.root, out, workers=1, strict=True)
    message = str(err.value)
    assert message.startswith("strict mode: 1 row(s) or file(s) rejected")
    assert f"{BAD_FILE}: empty file" in message and str(out / REPORT) in message
    report = json.loads((out / REPORT).read_text())
    assert [(r["file"], r["reason"]) for r in report] == [(BAD_FILE, "empty file (0 bytes)")]
    assert not (out / MANIFEST).exists()
    assert not list(out.glob("fold*.tfrecord"))


def test_strict_passes_a_clean_dataset_and_replaces_stale_output(ds):
    out = ds.root.parent / "out"
    out.mkdir()
    (out / "fold7.tfrecord").write_bytes(b"stale")  # an earlier ingest's (its manifest says so)
    (out / MANIFEST).write_text(json.dumps({"folds": {"7": 1}, "dataset_hash": "0" * 16}))
    outcome = run_ingest(ds, strict=True)
    assert outcome.report == []
    assert_good_accepted(ds, outcome)
    assert sorted(p.name for p in out.glob("fold*.tfrecord")) == [
        "fold1.tfrecord",
        "fold2.tfrecord",
        "fold3.tfrecord",
    ]


# ---------------------------------------------------------------------------
# Output location
# ---------------------------------------------------------------------------


def test_unwritable_output_location(ds, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    with pytest.raises(IngestError) as err:
        ingest(ds.root, out, workers=1)
    assert str(err.value).startswith(f"{out}: cannot write output here")


def test_output_inside_the_dataset_audio_is_refused(ds):
    out = ds.root / "audio" / "fold1" / "out"
    with pytest.raises(IngestError, match="inside the dataset's audio/ folder"):
        ingest(ds.root, out, workers=1)
    assert not out.exists()


# ---------------------------------------------------------------------------
# The CLI: one-line summary, one-line errors, exit codes
# ---------------------------------------------------------------------------


def cli(capsys, *args):
    from urbansound.pipeline.cli import main

    code = main(["ingest", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def test_cli_summary_line(ds, capsys):
    ds.add(BAD, content=b"")
    out = ds.root.parent / "out"
    code, stdout, _ = cli(capsys, "--data", ds.root, "--out", out)
    assert code == 0
    lines = stdout.rstrip("\n").splitlines()
    assert lines[-1] == (
        f"{len(ds.good)} clips accepted (of {len(ds.good) + 1} CSV rows) in "
        f"folds [1, 2, 3], 1 rejected (report: {out / REPORT})"
    )
    assert f"  rejected {BAD_FILE}: empty file (0 bytes)" in lines


def test_cli_strict_exits_2_with_one_line(ds, capsys):
    ds.add(BAD, content=b"just text")
    out = ds.root.parent / "out"
    code, _stdout, stderr = cli(capsys, "--data", ds.root, "--out", out, "--strict")
    assert code == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("urbansound ingest: error: strict mode: 1 row(s) or file(s) rejected")
    assert BAD_FILE in last and str(out / REPORT) in last
    assert (out / REPORT).exists()


def test_cli_missing_csv_exits_2(ds, capsys):
    ds.csv_path.unlink()
    code, _, stderr = cli(capsys, "--data", ds.root, "--out", ds.root.parent / "out")
    assert code == 2
    assert stderr.strip() == (
        f"urbansound ingest: error: {ds.csv_path}: metadata CSV not found "
        f"(expected the UrbanSound8K layout: metadata/UrbanSound8K.csv and "
        f"audio/fold1..fold10/)"
    )


def test_cli_unwritable_output_exits_2(ds, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "out"
    code, _, stderr = cli(capsys, "--data", ds.root, "--out", out)
    assert code == 2
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith(f"urbansound ingest: error: {out}: cannot write output here")
    )


def test_cli_no_usable_clip_exits_2(ds, capsys):
    ds.rows.clear()
    ds.write_csv()
    code, _, stderr = cli(capsys, "--data", ds.root, "--out", ds.root.parent / "out")
    assert code == 2
    assert "no usable clip" in stderr.strip().splitlines()[-1]


def test_cli_non_utf8_file_name(ds, capsys):
    fd = os.open(
        os.fsencode(ds.root / "audio" / "fold1") + b"/\xe9-0-0-0.wav",
        os.O_WRONLY | os.O_CREAT,
        0o644,
    )
    os.close(fd)
    code, stdout, _ = cli(capsys, "--data", ds.root, "--out", ds.root.parent / "out")
    assert code == 0
    assert "rejected audio/fold1/\\xe9-0-0-0.wav: no metadata row" in stdout


# ---------------------------------------------------------------------------
# Nothing outside the dataset folder and the output folder is read or written
# ---------------------------------------------------------------------------


_AUDITED: list[tuple[str, str]] = []
_AUDIT_ON = False
_AUDIT_HOOKED = False


def _audit(event, args):
    if (
        _AUDIT_ON
        and event
        in (
            "open",
            "os.listdir",
            "os.scandir",
            "os.mkdir",
            "os.remove",
            "os.rename",
            "os.symlink",
            "shutil.rmtree",
        )
        and args
    ):
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            _AUDITED.append((event, os.fsdecode(path)))


def _tree(folder: Path) -> dict:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def test_reads_and_writes_stay_inside_dataset_and_output(tmp_path, outside, monkeypatch):
    """Python-level opens and listings (audit hooks) under tmp_path all fall in the
    dataset or the output folder, and nothing else under tmp_path changes, even with
    names that escape the dataset and links leading outside.  (libsndfile opens only
    paths of accepted clips: the symlink and FIFO tests cover what it never sees.)"""
    global _AUDIT_ON, _AUDIT_HOOKED
    ds = make_dataset(tmp_path / "data")
    ds.add("../../../outside/secret.wav")
    ds.add(BAD)
    ds.path(BAD_FOLD, BAD).symlink_to(outside / "secret.wav")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = {
        k: v
        for k, v in _tree(tmp_path).items()
        if not k.startswith((str(ds.root), str(tmp_path / "out")))
    }
    if not _AUDIT_HOOKED:  # audit hooks cannot be removed: this one is off outside this test
        sys.addaudithook(_audit)
        _AUDIT_HOOKED = True
    _AUDITED.clear()
    _AUDIT_ON = True
    try:
        ingest(ds.root, tmp_path / "out", workers=1)
    finally:
        _AUDIT_ON = False
    after = {
        k: v
        for k, v in _tree(tmp_path).items()
        if not k.startswith((str(ds.root), str(tmp_path / "out")))
    }
    assert after == before
    assert list(cwd.iterdir()) == []
    touched = [
        (event, p)
        for event, p in _AUDITED
        if str(tmp_path) in os.path.abspath(p) or not os.path.isabs(p)
    ]
    strays = [
        (e, p)
        for e, p in touched
        if not os.path.abspath(p).startswith((str(ds.root), str(tmp_path / "out")))
    ]
    assert touched and not strays, strays
