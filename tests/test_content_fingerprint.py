"""Issue 15, defect classes 1 and 10: a dataset (or any file a run reads) rewritten with other
sound at the same size, with or without its old mtime, is never served from a cache; and a
command that only reads the MLflow store never creates one."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import urbansound.content_hash as content_hash
from urbansound.content_hash import cache_file_for, content_digests
from urbansound.dataset import dataset_fingerprint
from urbansound.layouts import list_clips

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def remembered(monkeypatch):
    """Files written by the test itself are "racy" (changed within RACY_NS of being
    hashed) and never remembered; tests of the warm path remember them."""
    monkeypatch.setattr(content_hash, "RACY_NS", 0)


@pytest.fixture
def demo(tmp_path):
    from urbansound.demo_data import write_demo_dataset

    root = tmp_path / "data"
    write_demo_dataset(root, folds=(1, 2), clips_per_class=1, seed=3)
    return root


def _clips(root):
    clips, _ = list_clips(root)
    return clips


def _rewrite_same_size(path: Path, keep_mtime: bool = True, seed: int = 0) -> None:
    """Other sound in the same format and length: the same byte size; the old
    atime/mtime put back when ``keep_mtime`` (what ``touch -r`` does)."""
    before = os.stat(path)
    info = sf.info(str(path))
    y, rate = sf.read(str(path), always_2d=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, y.shape)
    time.sleep(0.02)  # a few kernel timestamp ticks: the ctime is certain to move
    sf.write(str(path), noise, rate, subtype=info.subtype, format=info.format)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert after.st_size == before.st_size
    assert (after.st_mtime_ns == before.st_mtime_ns) == keep_mtime


class _CountingOpen:
    """Stands in for ``open`` inside urbansound.content_hash: counts the files read."""

    def __init__(self):
        self.paths = []

    def __call__(self, path, *args, **kwargs):
        self.paths.append(os.fspath(path))
        return open(path, *args, **kwargs)


# --------------------------------------------------------------------------------------
# the fingerprint follows the content


@pytest.mark.parametrize("keep_mtime", [True, False])
def test_a_clip_rewritten_at_the_same_size_changes_the_fingerprint(
    demo, tmp_path, remembered, keep_mtime
):
    cache = tmp_path / "digests.json"
    clips = _clips(demo)
    first = dataset_fingerprint(clips, cache_file=cache)
    assert dataset_fingerprint(clips, cache_file=cache) == first  # served from the cache
    _rewrite_same_size(Path(clips[3].path), keep_mtime=keep_mtime)
    changed = dataset_fingerprint(_clips(demo), cache_file=cache)
    assert changed != first
    assert dataset_fingerprint(_clips(demo)) == changed  # the same without any cache


def test_several_clips_rewritten_and_their_mtimes_restored(demo, tmp_path, remembered):
    cache = tmp_path / "digests.json"
    first = dataset_fingerprint(_clips(demo), cache_file=cache)
    paths = [Path(c.path) for c in _clips(demo)[::4]]
    for i, path in enumerate(paths):
        _rewrite_same_size(path, seed=i)
    _digests, stats = content_digests([str(p) for p in paths], cache_file=cache)
    assert stats.hashed == len(paths) and stats.cached == 0  # ctime moved: every one rehashed
    assert dataset_fingerprint(_clips(demo), cache_file=cache) != first


def test_swapped_renamed_and_moved_clips_change_the_fingerprint(demo, tmp_path):
    clips = _clips(demo)
    a, b = Path(clips[0].path), Path(clips[1].path)
    y, rate = sf.read(str(a), always_2d=True)
    sf.write(str(b), y[::-1] * 0.5, rate, subtype=sf.info(str(a)).subtype)
    base = dataset_fingerprint(_clips(demo))
    # two clips of one size swap their content: names, sizes and the listing are unchanged
    assert a.stat().st_size == b.stat().st_size
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    swapped = dataset_fingerprint(_clips(demo))
    assert swapped != base
    a.write_bytes(data_a)
    b.write_bytes(data_b)
    assert dataset_fingerprint(_clips(demo)) == base
    # the metadata moves a clip to the other fold (the file moves with it)
    csv_path = demo / "metadata" / "UrbanSound8K.csv"
    text = csv_path.read_text()
    row = next(line for line in text.splitlines() if line.startswith(a.name))
    moved_row = row.replace(",1,", ",2,") if ",1," in row else row.replace(",2,", ",1,")
    target = demo / "audio" / ("fold2" if ",1," in row else "fold1") / a.name
    a.rename(target)
    csv_path.write_text(text.replace(row, moved_row))
    assert dataset_fingerprint(_clips(demo)) not in (base, swapped)


def test_an_unchanged_tree_is_not_read_again_and_the_cache_not_rewritten(
    demo, tmp_path, remembered, monkeypatch
):
    cache = tmp_path / "out" / "cache" / "digests.json"
    clips = _clips(demo)
    first = dataset_fingerprint(clips, cache_file=cache)
    written = cache.read_bytes()
    stamp = cache.stat().st_mtime_ns
    reads = _CountingOpen()
    monkeypatch.setattr(content_hash, "open", reads, raising=False)
    _digests, stats = content_digests([c.path for c in clips], cache_file=cache)
    assert reads.paths == [] and stats.hashed == 0 and stats.cached == len(clips) == 20
    assert not stats.cache_written
    assert cache.read_bytes() == written and cache.stat().st_mtime_ns == stamp
    assert dataset_fingerprint(clips, cache_file=cache) == first


def test_files_changed_just_now_are_not_remembered(demo, tmp_path):
    """Racy entries: a file written within RACY_NS of its hashing could change again in
    the same timestamp tick; it is hashed again next time (as git does)."""
    cache = tmp_path / "digests.json"
    paths = [c.path for c in _clips(demo)]
    _, stats = content_digests(paths, cache_file=cache)
    assert stats.hashed == 20
    _, again = content_digests(paths, cache_file=cache)
    assert again.hashed == 20 and again.cached == 0
    old = time.time_ns() - 10 * content_hash.RACY_NS  # set back both times: ctime stays now
    for p in paths:
        os.utime(p, ns=(old, old))
    _, third = content_digests(paths, cache_file=cache)
    assert third.hashed == 20  # ctime is still recent: not yet trusted


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json at all",
        b"",
        b'{"version": 1, "algorithm": "sha256", "entries": []}',
        b'{"version": 99, "algorithm": "sha256", "entries": {}}',
        b'["a", "list"]',
        None,  # entries of the right shape with wrong types
    ],
)
def test_a_corrupt_or_foreign_cache_file_is_ignored_and_rebuilt(
    demo, tmp_path, remembered, content
):
    clips = _clips(demo)
    expected = dataset_fingerprint(clips)
    cache = tmp_path / "digests.json"
    if content is None:
        content = json.dumps(
            {
                "version": 1,
                "algorithm": "sha256",
                "entries": {c.path: ["big", 0, 0, 0, 0, "0" * 64] for c in clips},
            }
        ).encode()
    cache.write_bytes(content)
    assert dataset_fingerprint(clips, cache_file=cache) == expected
    rebuilt = json.loads(cache.read_text())
    assert rebuilt["version"] == content_hash.CACHE_VERSION
    assert sorted(rebuilt["entries"]) == sorted(c.path for c in clips)
    _, stats = content_digests([c.path for c in clips], cache_file=cache)
    assert stats.cache_loaded and stats.cached == 20


def test_a_cache_entry_with_another_stat_is_not_trusted(demo, tmp_path, remembered):
    clips = _clips(demo)
    cache = tmp_path / "digests.json"
    expected = dataset_fingerprint(clips, cache_file=cache)
    data = json.loads(cache.read_text())
    for entry in data["entries"].values():
        entry[2] += 1  # another ctime: the file was written since
        entry[5] = "f" * 64
    cache.write_text(json.dumps(data))
    assert dataset_fingerprint(clips, cache_file=cache) == expected


def test_an_unwritable_cache_and_an_unreadable_file_are_not_errors(demo, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    paths = [c.path for c in _clips(demo)[:3]]
    gone = str(tmp_path / "gone.wav")
    digests, stats = content_digests(paths + [gone], cache_file=blocker / "sub" / "d.json")
    assert not stats.cache_written
    assert digests[gone] == "!No such file or directory"
    assert digests[paths[0]] == content_hash.file_digest(paths[0])


def test_the_cache_file_is_one_per_dataset_and_written_atomically(tmp_path, demo, remembered):
    folder = tmp_path / "cache"
    assert cache_file_for(folder, demo) == cache_file_for(folder, str(demo) + "/")
    assert cache_file_for(folder, demo) != cache_file_for(folder, tmp_path)
    dataset_fingerprint(_clips(demo), cache_file=cache_file_for(folder, demo))
    assert [p.name for p in folder.iterdir()] == [cache_file_for(folder, demo).name]


# --------------------------------------------------------------------------------------
# every other place that keys a cache on data


def test_ingest_manifest_hash_follows_the_content(demo, tmp_path):
    from urbansound.ingest import ingest

    first = ingest(demo, tmp_path / "w1", workers=1)
    assert first.dataset_hash == dataset_fingerprint(_clips(demo))
    manifest = json.loads((tmp_path / "w1" / "manifest.json").read_text())
    assert manifest["dataset_hash"] == first.dataset_hash
    _rewrite_same_size(Path(_clips(demo)[5].path))
    second = ingest(demo, tmp_path / "w2", workers=1, digest_cache=tmp_path / "digests.json")
    assert second.dataset_hash != first.dataset_hash
    assert second.dataset_hash == dataset_fingerprint(_clips(demo))


def test_ingest_reads_the_callers_digests_instead_of_hashing_again(
    demo, tmp_path, remembered, monkeypatch
):
    """``run`` fingerprints the tree, then passes its digest cache to the ingest task:
    no clip is read twice; one rewritten since is hashed again, and only that one."""
    from urbansound.ingest import ingest

    cache = tmp_path / "digests.json"
    clips = _clips(demo)
    key = dataset_fingerprint(clips, cache_file=cache)  # what run does before the pipeline
    counting = _CountingOpen()
    monkeypatch.setattr(content_hash, "open", counting, raising=False)
    warm = ingest(demo, tmp_path / "w1", workers=1, digest_cache=cache)
    assert counting.paths == []
    assert (warm.digest_stats.hashed, warm.digest_stats.cached) == (0, len(clips))
    assert warm.dataset_hash == key  # every clip accepted: the same clips, the same digests
    _rewrite_same_size(Path(clips[3].path))
    again = ingest(demo, tmp_path / "w2", workers=1, digest_cache=cache)
    assert counting.paths == [clips[3].path]
    assert (again.digest_stats.hashed, again.digest_stats.cached) == (1, len(clips) - 1)
    assert again.dataset_hash != key


def test_noise_recordings_rewritten_at_the_same_size_change_the_deformation_keys(tmp_path):
    from urbansound.config import Config
    from urbansound.deformation_cache import DeformationCache, cache_context

    noise = tmp_path / "noise"
    noise.mkdir()
    street = noise / "street.wav"
    sf.write(str(street), np.zeros(2205, np.float32) + 0.1, 22050, subtype="PCM_16")
    config = Config().override(**{"augment.noise_dir": str(noise)})
    y = np.zeros(100, np.float32)
    first = DeformationCache("/u", cache_context(config)).key(y, 22050, "background_noise_0", "a")
    _rewrite_same_size(street)
    assert (
        DeformationCache("/u", cache_context(config)).key(y, 22050, "background_noise_0", "a")
        != first
    )


def test_run_fingerprint_covers_noise_recordings_and_the_init_model(demo, tmp_path, remembered):
    from urbansound.config import Config
    from urbansound.pipeline.commands.resolve import INIT_DIGEST_FILE
    from urbansound.pipeline.commands.run import inputs_fingerprint

    out = tmp_path / "out"
    clips = _clips(demo)
    plain = inputs_fingerprint(clips, demo, Config(), out)
    assert plain == dataset_fingerprint(clips)  # the dataset alone: 16 hex digits
    assert list((out / "cache" / "content-digests").iterdir())  # remembered under --out
    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(str(noise / "hum.wav"), np.zeros(2205, np.float32) + 0.1, 22050, subtype="PCM_16")
    model = tmp_path / "init" / "model.keras"
    model.parent.mkdir()
    model.write_bytes(b"weights, version 1")
    config = Config().override(**{"augment.noise_dir": str(noise), "train.init_from": str(model)})
    full = inputs_fingerprint(clips, demo, config, out)
    assert full.startswith(plain + ";noise=") and ";init=" in full
    assert inputs_fingerprint(clips, demo, config, out) == full
    _rewrite_same_size(noise / "hum.wav")
    after_noise = inputs_fingerprint(clips, demo, config, out)
    assert after_noise != full and after_noise.split(";")[2] == full.split(";")[2]
    stat = model.stat()
    model.write_bytes(b"weights, version 2")  # same size, old mtime
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after_init = inputs_fingerprint(clips, demo, config, out)
    assert after_init.split(";")[:2] == after_noise.split(";")[:2]
    assert after_init != after_noise
    # a model copied from MLflow: its digest file (what it holds), not its bytes (re-saved
    # at every run, with the time in its zip)
    copy = out / "init-model" / "model.keras"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"saved at 10:00")
    (copy.parent / INIT_DIGEST_FILE).write_text("ab" * 32 + "\n")
    copied = config.override(**{"augment.noise_dir": "", "train.init_from": str(copy)})
    key = inputs_fingerprint(clips, demo, copied, out)
    assert key == f"{plain};init={'ab' * 8}"
    copy.write_bytes(b"saved at 10:05")
    assert inputs_fingerprint(clips, demo, copied, out) == key


def test_submit_fingerprints_the_content_and_remembers_it_per_user(
    demo, tmp_path, monkeypatch, capsys
):
    from urbansound.pipeline.cli import build_parser
    from urbansound.pipeline.commands.cluster import submit_cache_key
    from urbansound.pipeline.commands.options import config_from_args

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    args = build_parser().parse_args(
        ["submit", "--host", "http://kfp.invalid", "--data", str(demo), "--data-version", "v1"]
    )
    config = config_from_args(args, demo=False)
    sent = submit_cache_key(args, config)
    assert sent == f"version=v1;listing={dataset_fingerprint(_clips(demo))}"
    assert len(list((tmp_path / "xdg" / "urbansound" / "content-digests").glob("*.json"))) == 1
    _rewrite_same_size(Path(_clips(demo)[0].path))
    changed = submit_cache_key(args, config)
    assert changed.startswith("version=v1;listing=") and changed != sent
    assert f"fingerprint {changed.split('=')[-1]}" in capsys.readouterr().out


def test_the_fingerprint_progress_line_stays_quiet_when_quick(monkeypatch):
    import urbansound.components.progress as progress_module
    from urbansound.components.progress import progress_line

    clock = [1.8e9]
    monkeypatch.setattr(progress_module.time, "time", lambda: clock[0])
    lines = []
    quick = progress_line("dataset fingerprint", say=lines.append, after_s=2.0)
    for done in range(1, 11):
        clock[0] += 0.1
        quick(done, 10)
    assert lines == []
    slow = progress_line("dataset fingerprint", say=lines.append, after_s=2.0, every_s=3600)
    for done in range(1, 11):
        clock[0] += 1.0
        slow(done, 10)
    assert [line.split(" (")[0] for line in lines] == [
        "dataset fingerprint: 2/10 clips",
        "dataset fingerprint: 10/10 clips",
    ]


# --------------------------------------------------------------------------------------
# defect 10: reading the store never creates it


def _cli(args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(REPO)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "urbansound.pipeline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_compare_in_an_empty_folder_creates_nothing(tmp_path, monkeypatch, capsys):
    from urbansound.pipeline.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["compare"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"urbansound compare: error: {tmp_path / 'mlflow.db'}: no MLflow store here, "
        f"so no experiment 'urbansound' to compare (run `urbansound run` first, or "
        f"give --tracking-uri)"
    )
    assert main(["compare", "abc123", "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}"]) == 2
    assert (
        "other.db: no MLflow store here, so no run 'abc123' to compare" in capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["register", "0123abcd", "--name", "m"],
        ["predict", "runs:/0123abcd/model", "x.wav"],
        ["train-final", "--data", "DATA", "--from-run", "0123abcd"],
    ],
)
def test_other_commands_that_only_read_the_store_create_nothing(tmp_path, demo, args):
    work = tmp_path / "empty"
    work.mkdir()
    done = _cli([str(demo) if a == "DATA" else a for a in args], cwd=work)
    assert done.returncode == 2, done.stderr
    # (train-final's Beam import may warn first about GCP libraries: not this issue's)
    assert "Traceback" not in done.stderr
    assert f"no MLflow store at {work / 'mlflow.db'}" in done.stderr.strip().splitlines()[-1]
    # no store, no artifact folder, no log (that goes to the per-user state folder)
    assert list(work.iterdir()) == []


# --------------------------------------------------------------------------------------
# end to end: the same command after the audio changed is not served from kfp's cache


@pytest.mark.e2e
def test_run_after_clips_were_rewritten_is_not_served_from_the_cache(tmp_path):
    from urbansound.demo_data import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2), clips_per_class=2, seed=4)
    time.sleep(2.1)  # older than content_hash.RACY_NS when run hashes them: remembered
    command = [
        "run",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--profile",
        "quick",
        "--folds",
        "1",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    ]

    def run():
        done = _cli(command, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        parent = [ln for ln in done.stdout.splitlines() if ln.startswith("MLflow: parent run ")]
        assert len(parent) == 1
        return done.stdout, parent[0].split()[3]

    first_out, first_parent = run()
    assert "ingest-component from cache" not in first_out
    # the ingest task read the digests run had just remembered (the clips are over 2 s old)
    clips = len(list((data / "audio").rglob("*.wav")))
    log = (tmp_path / "out" / "run.log").read_text()
    assert f"content digests: 0 clips hashed, {clips} remembered (the caller's cache)" in log
    unchanged_out, unchanged_parent = run()
    assert "ingest-component from cache" in unchanged_out, unchanged_out
    assert unchanged_parent == first_parent
    for i, clip in enumerate(sorted((data / "audio").rglob("*.wav"))[::5]):
        _rewrite_same_size(clip, keep_mtime=True, seed=10 + i)
    changed_out, changed_parent = run()
    assert "ingest-component from cache" not in changed_out, changed_out
    assert "train-component from cache" not in changed_out
    assert changed_parent != first_parent
