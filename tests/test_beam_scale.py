"""The features stage scales out: shards per fold, any Beam filesystem, several processes.

Issue 7 ("Scale out"): the stage reads and writes through Beam's FileSystems, cuts
each fold into shards so that workers split the work, and gives the same examples
whether one process or several compute them.
"""

from __future__ import annotations

import io
import json
import os
import typing

import numpy as np
import pytest
from apache_beam.io.filesystem import FileMetadata, FileSystem

from urbansound.config import Config

NOISE = "background_noise_traffic"  # synthesised noise: needs no binary


def _records(directory) -> dict[int, list[bytes]]:
    from urbansound.records import fold_files, iter_records

    return {f: sorted(iter_records(fold_files(directory, f))) for f in (1, 2, 3)}


# ---------------------------------------------------------------------------
# Shard plan and the TFRecord framing
# ---------------------------------------------------------------------------


def test_shards_follow_the_clip_count(tmp_path):
    from urbansound.beam_features import plan_shards

    for name in (
        "fold1.tfrecord",
        "fold2-00000-of-00002.tfrecord",
        "fold2-00001-of-00002.tfrecord",
        "fold10.tfrecord",
    ):
        (tmp_path / name).write_bytes(b"")
    shards = plan_shards(str(tmp_path), {1: 300, 2: 100, 10: 5}, clips_per_shard=128)
    by_fold = {f: [s for s in shards if s[3] == f] for f in (1, 2, 10)}
    # 300 clips in one file: 3 parts of it; fold1 never picks up fold10's file
    assert [(os.path.basename(s[0]), s[1], s[2], s[4]) for s in by_fold[1]] == [
        ("fold1.tfrecord", 0, 3, "fold1-00000-of-00003.tfrecord"),
        ("fold1.tfrecord", 1, 3, "fold1-00001-of-00003.tfrecord"),
        ("fold1.tfrecord", 2, 3, "fold1-00002-of-00003.tfrecord"),
    ]
    # 100 clips in two files: one part of each, two output shards
    assert [(os.path.basename(s[0]), s[2], s[4]) for s in by_fold[2]] == [
        ("fold2-00000-of-00002.tfrecord", 1, "fold2-00000-of-00002.tfrecord"),
        ("fold2-00001-of-00002.tfrecord", 1, "fold2-00001-of-00002.tfrecord"),
    ]
    # a fold of one shard keeps the plain name earlier callers read
    assert [s[4] for s in by_fold[10]] == ["fold10.tfrecord"]
    with pytest.raises(FileNotFoundError, match="no TFRecords for fold 4"):
        plan_shards(str(tmp_path), {4: 10})


def test_tfrecord_framing_agrees_with_tensorflow_and_splits_by_stride(tmp_path):
    from urbansound.beam_features import read_tfrecords, write_tfrecord
    from urbansound.records import iter_records, write_records

    payloads = [bytes([i]) * (i * 37 % 300) for i in range(11)]  # includes an empty record
    ours = tmp_path / "ours.tfrecord"
    with open(ours, "wb") as fh:
        for p in payloads:
            write_tfrecord(fh, p)
    assert list(iter_records([str(ours)])) == payloads  # TensorFlow reads what we write
    theirs = tmp_path / "theirs.tfrecord"
    write_records(theirs, payloads)
    assert list(read_tfrecords(str(theirs))) == payloads  # and we read what it writes
    parts = [list(read_tfrecords(str(theirs), part=k, parts=3)) for k in range(3)]
    assert parts == [payloads[0::3], payloads[1::3], payloads[2::3]]

    data = bytearray(theirs.read_bytes())
    data[30] ^= 0xFF  # record 0 is empty (16 bytes): this is inside record 1's data
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match=r"bad\.tfrecord: corrupt TFRecord file \(record 1: data checksum\)"
    ):
        list(read_tfrecords(str(bad)))
    (tmp_path / "short.tfrecord").write_bytes(theirs.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"short\.tfrecord: truncated TFRecord file \(record 10\)"):
        list(read_tfrecords(str(tmp_path / "short.tfrecord")))


# ---------------------------------------------------------------------------
# One process vs two
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def single(waveforms):
    """The default single-process run, 4 clips per shard (3 shards per fold)."""
    from urbansound.beam_features import run_features

    config = Config().override(**{"augment.deformations": (NOISE,)})
    manifest = run_features(
        waveforms / "wave",
        waveforms / "single",
        config=config,
        beam_args=["--runner=FnApiRunner"],
        deform_folds=[2, 3],
        clips_per_shard=4,
    )
    return manifest, _records(waveforms / "single")


def test_two_processes_write_the_same_examples_as_one(waveforms, single):
    from urbansound.beam_features import run_features

    manifest, records = single
    config = Config().override(**{"augment.deformations": (NOISE,)})
    seen = []
    multi = run_features(
        waveforms / "wave",
        waveforms / "multi",
        config=config,
        beam_args=[
            "--runner=FnApiRunner",
            "--direct_num_workers=2",
            "--direct_running_mode=multi_processing",
        ],
        deform_folds=[2, 3],
        clips_per_shard=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert _records(waveforms / "multi") == records  # record for record, byte for byte
    assert (
        multi["folds"]
        == manifest["folds"]
        == {
            "1": {"original": 10},
            "2": {"original": 10, NOISE: 10},
            "3": {"original": 10, NOISE: 10},
        }
    )
    assert multi["shards"] == manifest["shards"] == {"1": 3, "2": 3, "3": 3}
    assert manifest["workers"] == 1 and multi["workers"] == 2  # both processes wrote shards
    names = sorted(
        p.name for p in (waveforms / "multi").iterdir() if p.name != ".urbansound-outputs.json"
    )  # the output folder's marker
    assert names == sorted(
        p.name for p in (waveforms / "single").iterdir() if p.name != ".urbansound-outputs.json"
    )
    assert names[:3] == [
        "fold1-00000-of-00003.tfrecord",
        "fold1-00001-of-00003.tfrecord",
        "fold1-00002-of-00003.tfrecord",
    ]
    assert seen[-1] == (30, 30) and all(d <= t for d, t in seen)


def test_a_rerun_replaces_every_shard_of_a_differently_sharded_run(waveforms, single):
    """Stale shards of an earlier plan never mix into a new output."""
    from urbansound.beam_features import run_features

    out = waveforms / "rerun"
    config = Config().override(**{"augment.deformations": (NOISE,)})
    run_features(
        waveforms / "wave",
        out,
        config=config,
        beam_args=["--runner=FnApiRunner"],
        deform_folds=[2, 3],
        clips_per_shard=4,
    )
    manifest = run_features(
        waveforms / "wave",
        out,
        config=config,
        beam_args=["--runner=FnApiRunner"],
        deform_folds=[2, 3],
    )
    assert sorted(p.name for p in out.iterdir()) == [
        ".urbansound-outputs.json",  # the marker: what the next run may replace
        "fold1.tfrecord",
        "fold2.tfrecord",
        "fold3.tfrecord",
        "manifest.json",
        "report.json",
    ]
    assert manifest["shards"] == {"1": 1, "2": 1, "3": 1}
    assert _records(out) == single[1]


# ---------------------------------------------------------------------------
# A filesystem that is not the local disk
# ---------------------------------------------------------------------------


class MemoryFileSystem(FileSystem):
    """A Beam filesystem held in this process (``memtest://``): stands in for gs:// or
    s3:// to show every path the stage touches goes through FileSystems."""

    files: typing.ClassVar[dict[str, bytes]] = {}

    @classmethod
    def scheme(cls):
        return "memtest"

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/")] + [p.strip("/") for p in paths])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path, data in list(self.files.items()):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data), 0.0)

    def create(self, path, mime_type=None, compression_type=None):
        files = self.files

        class Writer(io.BytesIO):
            def close(self):
                files[path] = self.getvalue()
                super().close()

        return Writer()

    def open(self, path, mime_type=None, compression_type=None):
        if path not in self.files:
            raise OSError(f"{path}: no such object")
        return io.BytesIO(self.files[path])

    def copy(self, source_file_names, destination_file_names):
        for s, d in zip(source_file_names, destination_file_names):
            self.files[d] = self.files[s]

    def rename(self, source_file_names, destination_file_names):
        for s, d in zip(source_file_names, destination_file_names):
            self.files[d] = self.files.pop(s)

    def exists(self, path):
        return path in self.files

    def size(self, path):
        return len(self.files[path])

    def last_updated(self, path):
        return 0.0

    def checksum(self, path):
        return str(len(self.files[path]))

    def metadata(self, path):
        return FileMetadata(path, len(self.files[path]), 0.0)

    def delete(self, paths):
        for path in paths:
            if path not in self.files:
                raise OSError(f"{path}: no such object")
            del self.files[path]

    def report_lineage(self, path, lineage, level=None):
        pass


def test_the_stage_reads_and_writes_any_beam_filesystem(waveforms, single, tmp_path, monkeypatch):
    """Ingest output copied to ``memtest://``; features (with the deformation cache
    there too) read and write only through FileSystems: the same examples as on disk,
    and nothing lands in the working directory (a local Path of a URI would)."""
    from urbansound.beam_features import run_features
    from urbansound.records import decode_features

    MemoryFileSystem.files.clear()
    for path in (waveforms / "wave").iterdir():
        MemoryFileSystem.files[f"memtest://bucket/wave/{path.name}"] = path.read_bytes()
    monkeypatch.chdir(tmp_path)
    config = Config().override(
        **{"augment.deformations": (NOISE,), "augment.cache_dir": "memtest://bucket/cache"}
    )
    manifest = run_features(
        "memtest://bucket/wave",
        "memtest://bucket/feat",
        config=config,
        beam_args=["--runner=FnApiRunner"],
        deform_folds=[2, 3],
        clips_per_shard=4,
    )
    assert list(tmp_path.iterdir()) == []
    written = sorted(p for p in MemoryFileSystem.files if p.startswith("memtest://bucket/feat/"))
    assert written == sorted(
        [
            f"memtest://bucket/feat/fold{f}-0000{i}-of-00003.tfrecord"
            for f in (1, 2, 3)
            for i in range(3)
        ]
        + ["memtest://bucket/feat/manifest.json", "memtest://bucket/feat/report.json"]
    )
    from urbansound.beam_features import read_tfrecords

    got = {
        f: sorted(raw for p in written if f"/fold{f}-" in p for raw in read_tfrecords(p))
        for f in (1, 2, 3)
    }
    assert got == single[1]
    stored = json.loads(MemoryFileSystem.files["memtest://bucket/feat/manifest.json"])
    assert stored["folds"] == single[0]["folds"] and stored == manifest
    assert manifest["deformation_cache"] == {
        "dir": "memtest://bucket/cache",
        "hits": 0,
        "computed": 20,
    }
    cached = [p for p in MemoryFileSystem.files if p.startswith("memtest://bucket/cache/")]
    assert len(cached) == 20 and all(p.endswith(".npy") for p in cached)
    one = decode_features(got[2][0])
    assert one.values.shape == (128, 128) and np.all(np.isfinite(one.values))


def test_features_command_prints_progress_and_logs_the_chatter(waveforms, single):
    """``urbansound features`` as a user runs it: its own few lines on the terminal,
    Beam's INFO lines in OUT/features.log, and no TensorFlow start-up messages."""
    import subprocess
    import sys
    from pathlib import Path

    out = waveforms / "cli"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "urbansound.pipeline.cli",
            "features",
            "--data",
            str(waveforms / "wave"),
            "--out",
            str(out),
            "--beam-arg=--runner=FnApiRunner",
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines[0] == f"full log: {out / 'features.log'}  (-v shows it here)"
    progress = lines[1:-1]  # one line per 10 s at most (not a terminal), then the last
    assert 1 <= len(progress) <= 4 and progress[-1].startswith("features: 30/30 clips ("), lines
    assert all(ln.startswith("features: ") and "/30 clips (" in ln for ln in progress)
    assert lines[-1].startswith(f"30 logmel examples in {out} (")
    assert "3 shards, 1 worker processes" in lines[-1]
    assert (out / "features.log").is_file()  # where Beam's own lines go, if it has any
    # the stage no longer imports TensorFlow at all: none of its start-up lines anywhere
    everything = done.stdout + done.stderr + (out / "features.log").read_text()
    assert "cuda" not in everything.lower() and "absl" not in everything
    assert _records(out) == {
        f: [r for r in single[1][f] if b"background_noise" not in r] for f in (1, 2, 3)
    }


def test_shards_get_smaller_with_deformations_so_both_workers_stay_busy():
    from urbansound.beam_features import CLIPS_PER_SHARD, clips_per_shard_for
    from urbansound.config import Config
    from urbansound.deformations import SALAMON_BELLO_DEFORMATIONS, STUDY_DEFORMATIONS

    assert clips_per_shard_for(Config()) == CLIPS_PER_SHARD == 128
    study = Config().override(**{"augment.deformations": STUDY_DEFORMATIONS})
    assert clips_per_shard_for(study) == 8
    everything = Config().override(**{"augment.deformations": SALAMON_BELLO_DEFORMATIONS})
    assert clips_per_shard_for(everything) == 4
