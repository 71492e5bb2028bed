"""Dataset layouts other than UrbanSound8K, and class names read from the data.

Each test writes a small dataset of short tones (one frequency per class) in one
layout, then lists it (:func:`urbansound.layouts.scan`) or ingests it and checks the
clips, folds, class names and the rejections every layout must make: a missing file,
a path that leaves the dataset folder (``..`` or a link), a file that is not audio,
and strict mode.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from urbansound.config import CLASS_NAMES, Config, ConfigError, DataConfig
from urbansound.ingest import REPORT, ingest
from urbansound.layouts import (
    apply_layout,
    detect_layout,
    frames_for,
    group_key,
    grouped_folds,
    scan,
)
from urbansound.listing import DatasetError
from urbansound.manifest import MANIFEST, IngestError, manifest_class_names
from urbansound.records import decode_waveform, iter_records

SR = 16000
SECONDS = 0.3


def tone_wav(path: Path, freq: float, seconds: float = SECONDS) -> None:
    """A mono 16-bit tone of ``freq`` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, subtype="PCM_16")


def freq_of(class_index: int) -> float:
    return 300.0 + 150.0 * class_index


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def rejected(report_or_listing) -> dict[str, str]:
    items = (
        report_or_listing.rejections
        if hasattr(report_or_listing, "rejections")
        else report_or_listing
    )
    return {
        r.file if hasattr(r, "file") else r["file"]: r.reason
        if hasattr(r, "reason")
        else r["reason"]
        for r in items
    }


def decoded(out: Path) -> dict[str, tuple[int, int, str]]:
    """file name -> (fold, label, class name) of every clip ingest wrote."""
    found = {}
    for path in sorted(out.glob("fold*.tfrecord")):
        for raw in iter_records([str(path)]):
            rec = decode_waveform(raw)
            found[rec.file_name] = (rec.fold, rec.label, rec.class_name)
    return found


# ---------------------------------------------------------------------------
# ESC-50
# ---------------------------------------------------------------------------

ESC_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


def write_esc50(root: Path, categories: dict[int, str], folds=(1, 2), per_fold: int = 2) -> list:
    """ESC-50-shaped: ``{fold}-{src}-A-{target}.wav``, one source recording per clip."""
    rows = []
    for target, category in categories.items():
        for fold in folds:
            for k in range(per_fold):
                src = 1000 + 100 * target + 10 * fold + k
                name = f"{fold}-{src}-A-{target}.wav"
                tone_wav(root / "audio" / name, freq_of(target % 40))
                rows.append([name, fold, target, category, "False", src, "A"])
    write_csv(root / "meta" / "esc50.csv", ESC_HEADER, rows)
    return rows


def test_esc50_detected_classes_by_target_and_clip_length(tmp_path):
    root = tmp_path / "esc"
    # targets deliberately not in alphabetical order of their categories
    write_esc50(root, {0: "dog", 1: "rooster", 2: "cat"})
    assert detect_layout(root) == "esc50"
    listing = scan(root)
    assert listing.layout == "esc50"
    assert listing.class_names == ("dog", "rooster", "cat")
    assert len(listing.clips) == 12 and not listing.rejections
    clip = next(c for c in listing.clips if c.file_name == "audio/2-1120-A-1.wav")
    assert (clip.fold, clip.class_id, clip.class_name, clip.fs_id) == (2, 1, "rooster", 1120)
    # the layout brings 5 s clips, with the frames they give, unless the user set them
    config = apply_layout(Config(), "esc50")
    assert config.audio.clip_seconds == 5.0 and config.features.n_frames == 214
    assert frames_for(config, 5.0) == 1 + (110250 - 1024) // 512
    kept = apply_layout(Config(), "esc50", given={"audio.clip_seconds"})
    assert kept.audio.clip_seconds == 3.0 and kept.features.n_frames == 128


def test_esc50_rejections_and_strict(tmp_path):
    root = tmp_path / "esc"
    rows = write_esc50(root, {0: "dog", 1: "rooster"})
    outside = tmp_path / "secret.wav"
    tone_wav(outside, 4321.0)
    (root / "audio" / "link-out.wav").symlink_to(outside)
    (root / "audio" / "notes.wav").write_text("not audio at all")
    tone_wav(root / "audio" / "unnamed.wav", 500)
    tone_wav(root / "audio" / "1-1019-A-0.wav", 500)
    rows += [
        ["missing.wav", 1, 0, "dog", "False", 1, "A"],
        ["../secret.wav", 1, 0, "dog", "False", 2, "A"],
        ["link-out.wav", 1, 0, "dog", "False", 3, "A"],
        ["notes.wav", 2, 1, "rooster", "False", 4, "A"],
        ["1-1010-A-0.wav", 1, 0, "dog", "False", 1010, "A"],  # repeats a row
        ["1-1019-A-0.wav", 1, 0, "cat", "False", 1019, "A"],
        ["x.wav", 11, 0, "dog", "False", 5, "A"],
    ]
    write_csv(root / "meta" / "esc50.csv", ESC_HEADER, rows)
    out = tmp_path / "out"
    result = ingest(root, out, workers=1)
    reasons = rejected(result)
    assert reasons["audio/missing.wav"] == "audio file not found"
    assert reasons["audio/../secret.wav"] == "file name '../secret.wav' is not a plain file name"
    assert reasons["audio/link-out.wav"] == "file is a link that leads outside the dataset folder"
    assert reasons["audio/notes.wav"].startswith("not a readable audio file")
    assert reasons["audio/unnamed.wav"] == "no metadata row names this file"
    assert reasons["audio/1-1010-A-0.wav"].startswith("duplicate row")
    assert reasons["audio/1-1019-A-0.wav"].startswith("category 'cat' disagrees with target 0")
    assert reasons["audio/x.wav"] == "fold '11' is not one of 1..10"
    assert len(result.rejections) == 8
    assert result.accepted == 8 and result.class_names == ("dog", "rooster")
    clips = decoded(out)
    assert clips["audio/2-1120-A-1.wav"] == (2, 1, "rooster")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["class_names"] == ["dog", "rooster"] and manifest["layout"] == "esc50"
    with pytest.raises(IngestError, match="strict mode: 8 row"):
        ingest(root, out, workers=1, strict=True)
    assert not (out / MANIFEST).exists() and (out / REPORT).exists()


def test_esc50_fifty_classes_through_ingest(tmp_path):
    root = tmp_path / "esc"
    categories = {t: f"class_{49 - t:02d}" for t in range(50)}
    write_esc50(root, categories, folds=(1, 2), per_fold=1)
    out = tmp_path / "out"
    result = ingest(root, out, workers=1)
    assert result.accepted == 100 and result.counts == {1: 50, 2: 50}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["class_names"] == [categories[t] for t in range(50)]
    assert manifest_class_names(manifest) == tuple(categories[t] for t in range(50))
    labels = {name: label for name, (_, label, _) in decoded(out).items()}
    assert labels["audio/1-5810-A-48.wav"] == 48
    assert not manifest["warnings"]


# ---------------------------------------------------------------------------
# A folder per class
# ---------------------------------------------------------------------------


def write_folders(root: Path, classes: list[str], recordings: int = 6, slices: int = 3) -> None:
    """``ROOT/<class>/<rec>-<class index>-0-<slice>.wav``: ``slices`` clips per recording."""
    for ci, cls in enumerate(classes):
        for r in range(recordings):
            for s in range(slices):
                tone_wav(root / cls / f"{1000 * (ci + 1) + r}-{ci}-0-{s}.wav", freq_of(ci))


def test_group_key_default_and_custom():
    assert group_key("100032-3-0-0") == "100032"
    assert group_key("street_7") == "street"
    assert group_key("take_2_12") == "take"
    assert group_key("12345") == "12345"
    assert group_key("1-100032-A-0") == "1-100032-A"
    assert group_key("rec42.part3", r"^(rec[0-9]+)\.") == "rec42"
    assert group_key("other", r"^(rec[0-9]+)\.") is None


def test_grouped_split_never_splits_a_group_and_is_seeded():
    rng = np.random.default_rng(1)
    groups = {f"g{i}": Counter({f"c{i % 3}": int(rng.integers(1, 6))}) for i in range(40)}
    a, b = grouped_folds(groups, 5, seed=7), grouped_folds(groups, 5, seed=7)
    assert a == b and set(a) == set(groups) and set(a.values()) == {1, 2, 3, 4, 5}
    assert grouped_folds(groups, 5, seed=8) != a
    sizes = Counter()
    for key, fold in a.items():
        sizes[fold] += sum(groups[key].values())
    assert max(sizes.values()) - min(sizes.values()) <= 5  # balanced within a group's size


def test_folders_grouped_split(tmp_path):
    root = tmp_path / "data"
    write_folders(root, ["siren", "dog", "engine"], recordings=6, slices=3)
    assert detect_layout(root) == "folders"
    listing = scan(root, DataConfig(n_folds=3, split_seed=4))
    assert listing.class_names == ("dog", "engine", "siren")
    assert len(listing.clips) == 54 and not listing.rejections
    folds_of = defaultdict(set)
    for c in listing.clips:
        folds_of[c.fs_id].add(c.fold)
        assert c.class_name == c.file_name.split("/")[0]
        assert listing.class_names[c.class_id] == c.class_name
    assert len(folds_of) == 18 and all(len(f) == 1 for f in folds_of.values())
    per_fold_class = Counter((c.fold, c.class_name) for c in listing.clips)
    assert set(per_fold_class.values()) == {6}  # 2 recordings x 3 slices of each class per fold
    again = scan(root, DataConfig(n_folds=3, split_seed=4))
    assert [(c.file_name, c.fold) for c in again.clips] == [
        (c.file_name, c.fold) for c in listing.clips
    ]
    other = scan(root, DataConfig(n_folds=3, split_seed=5))
    assert {c.file_name: c.fold for c in other.clips} != {
        c.file_name: c.fold for c in listing.clips
    }
    assert listing.split["groups"] == 18 and listing.split["groups_per_fold"] == {1: 6, 2: 6, 3: 6}


def test_folders_rejections_in_ingest(tmp_path):
    root = tmp_path / "data"
    write_folders(root, ["a", "b", "c"], recordings=3, slices=1)
    outside = tmp_path / "secret.wav"
    tone_wav(outside, 4321.0)
    (root / "a" / "9-0-0-0.wav").symlink_to(outside)  # leaves the dataset
    (root / "b" / "9-1-0-0.wav").symlink_to(root / "a" / "1000-0-0-0.wav")  # into another class
    (root / "c" / "README.txt").write_text("these are tones")
    (root / "c" / "broken-1.wav").symlink_to(root / "c" / "missing.wav")
    (root / "c" / "sub").mkdir()
    (tmp_path / "elsewhere").mkdir()
    tone_wav(tmp_path / "elsewhere" / "1-0.wav", 4321.0)
    (root / "d").symlink_to(tmp_path / "elsewhere")
    os.mkdir(os.fsencode(root) + b"/bad\xff")
    Path(os.fsdecode(os.fsencode(root) + b"/bad\xff/1-0.wav")).write_bytes(b"")
    Path(os.fsdecode(os.fsencode(root) + b"/c/bad\xfe-1.wav")).write_bytes(b"")
    out = tmp_path / "out"
    result = ingest(root, out, config=Config().override(**{"data.n_folds": 3}), workers=1)
    reasons = rejected(result)
    assert reasons["a/9-0-0-0.wav"] == "file is a link that leads outside the dataset folder"
    assert reasons["b/9-1-0-0.wav"].startswith("file is a link that leads outside b/")
    assert reasons["c/broken-1.wav"] == "audio file not found (broken link)"
    assert reasons["c/README.txt"].startswith("not a readable audio file")
    assert reasons["c/sub/"].startswith("a folder inside a class folder is not read")
    assert reasons["d/"].startswith("folder is a link that leads outside the dataset folder")
    assert reasons["bad\\xff/"].startswith("folder name is not valid UTF-8")
    assert reasons["c/bad\\xfe-1.wav"] == "file name is not valid UTF-8 (rename it)"
    assert len(reasons) == 8
    assert result.accepted == 9 and result.class_names == ("a", "b", "c")
    assert result.summary_line().startswith("9 clips accepted (of 17 files) in folds [1, 2, 3]")
    assert "4321" not in json.dumps(decoded(out))
    with pytest.raises(IngestError, match="strict mode: 8 row"):
        ingest(root, out, config=Config().override(**{"data.n_folds": 3}), workers=1, strict=True)
    with pytest.raises(IngestError, match="inside the dataset folder"):
        ingest(root, root / "out", workers=1)


def test_folders_folds_from_csv(tmp_path):
    root = tmp_path / "data"
    write_folders(root, ["a", "b"], recordings=2, slices=2)
    folds_csv = tmp_path / "folds.csv"
    rows = [
        ["a/1000-0-0-0.wav", 1],
        ["a/1000-0-0-1.wav", 1],
        ["1001-0-0-0.wav", 2],
        ["a/1001-0-0-1.wav", 2],
        ["b/2000-1-0-0.wav", 1],
        ["b/2000-1-0-1.wav", 2],
        ["b/2001-1-0-0.wav", 12],
        ["nowhere.wav", 1],
    ]  # b/2001-1-0-1.wav has no row
    write_csv(folds_csv, ["file", "fold"], rows)
    listing = scan(root, DataConfig(folds_from=str(folds_csv)))
    folds = {c.file_name: c.fold for c in listing.clips}
    assert folds == {
        "a/1000-0-0-0.wav": 1,
        "a/1000-0-0-1.wav": 1,
        "a/1001-0-0-0.wav": 2,
        "a/1001-0-0-1.wav": 2,
        "b/2000-1-0-0.wav": 1,
        "b/2000-1-0-1.wav": 2,
    }
    reasons = rejected(listing)
    assert reasons["b/2001-1-0-0.wav"] == "folds.csv line 8: fold '12' is not one of 1..10"
    assert reasons["b/2001-1-0-1.wav"] == f"no fold for this file in {folds_csv}"
    assert reasons["nowhere.wav"].endswith("no such usable file in a class folder")
    # the recording 2000 is in folds 1 and 2: said loudly
    assert any("recording group(s) appear in more than one fold" in w for w in listing.warnings)


def test_folders_group_pattern_mismatch_is_rejected(tmp_path):
    root = tmp_path / "data"
    write_folders(root, ["a", "b"], recordings=2, slices=1)
    listing = scan(root, DataConfig(group_pattern=r"^(1[0-9]+)-", n_folds=2))
    assert sorted(c.file_name for c in listing.clips) == ["a/1000-0-0-0.wav", "a/1001-0-0-0.wav"]
    assert all("does not match the group pattern" in r.reason for r in listing.rejections)
    assert len(listing.rejections) == 2


# ---------------------------------------------------------------------------
# A generic CSV
# ---------------------------------------------------------------------------


def test_generic_csv(tmp_path):
    root = tmp_path / "data"
    rows = []
    for ci, label in enumerate(["zebra", "ant", "moth"]):
        for fold in (1, 2):
            rel = f"clips/{label}-{fold}.flac"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(int(SECONDS * SR)) / SR
            sf.write(path, 0.4 * np.sin(2 * np.pi * freq_of(ci) * t), SR, format="FLAC")
            rows.append([rel, label, fold, f"rec{ci}", 1 + fold % 2])
    outside = tmp_path / "secret.wav"
    tone_wav(outside, 4321.0)
    (root / "clips" / "out.wav").symlink_to(outside)
    (root / "clips" / "text.wav").write_text("hello")
    rows += [
        ["clips/missing.wav", "ant", 1, "", ""],
        ["../secret.wav", "ant", 1, "", ""],
        ["clips/out.wav", "ant", 1, "", ""],
        ["clips/text.wav", "moth", 2, "", ""],
        ["clips/ant-1.flac", "ant", 0, "", ""],
    ]
    write_csv(root / "labels.csv", ["path", "label", "fold", "group", "salience"], rows)
    assert detect_layout(root) == "csv" and detect_layout(root / "labels.csv") == "csv"
    for data in (root, root / "labels.csv"):
        listing = scan(data)
        assert listing.class_names == ("ant", "moth", "zebra") and len(listing.clips) == 7
    out = tmp_path / "out"
    result = ingest(root / "labels.csv", out, workers=1)
    reasons = rejected(result)
    assert reasons["clips/missing.wav"] == "audio file not found"
    assert reasons["../secret.wav"].endswith(
        "is not a plain relative path inside the dataset folder"
    )
    assert reasons["clips/out.wav"] == "file is a link that leads outside the dataset folder"
    assert reasons["clips/text.wav"].startswith("not a readable audio file")
    assert reasons["clips/ant-1.flac"].startswith("fold '0' is not one of 1..10")
    assert len(reasons) == 5 and result.accepted == 6
    clips = decoded(out)
    assert clips["clips/zebra-2.flac"] == (2, 2, "zebra")
    # the same group in two folds is a leak: a warning in the manifest
    manifest = json.loads((out / MANIFEST).read_text())
    assert any("appear in more than one fold" in w for w in manifest["warnings"])
    assert manifest["class_names"] == ["ant", "moth", "zebra"]
    with pytest.raises(IngestError, match="strict mode: 5 row"):
        ingest(root, out, workers=1, strict=True)


# ---------------------------------------------------------------------------
# Detection, configuration, class names given, the command line
# ---------------------------------------------------------------------------


def test_detection_and_unknown_layout(tmp_path):
    us8k = tmp_path / "us8k"
    (us8k / "audio" / "fold1").mkdir(parents=True)
    assert detect_layout(us8k) == "urbansound8k"  # the CSV's absence is ingest's message
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="cannot tell the dataset's layout"):
        detect_layout(empty)
    with pytest.raises(DatasetError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")


def test_data_config_checks():
    with pytest.raises(ConfigError, match="data.layout must be one of"):
        Config().override(**{"data.layout": "kaggle"})
    with pytest.raises(ConfigError, match="data.n_folds must be 2..10"):
        Config().override(**{"data.n_folds": 1})
    with pytest.raises(ConfigError, match="is not a regular expression"):
        Config().override(**{"data.group_pattern": "(unclosed"})
    with pytest.raises(ConfigError, match="data.class_names must differ"):
        Config().override(**{"data.class_names": ["a", "a"]})
    named = Config().override(**{"data.class_names": ["x", "y", "z"]})
    assert named.class_names == ("x", "y", "z") and Config().class_names == CLASS_NAMES
    assert Config.from_json(named.to_json()) == named
    # per-class deformations are checked against the classes when they are known
    with pytest.raises(ConfigError):
        named.override(**{"augment.per_class": ["dog_bark=pitch_shift_2"]})
    esc = Config().override(
        **{"data.layout": "esc50", "augment.per_class": ["rooster=pitch_shift_2"]}
    )
    assert esc.augment.per_class == ("rooster=pitch_shift_2",)


def test_class_names_given_fix_the_order(tmp_path):
    root = tmp_path / "data"
    write_folders(root, ["a", "b", "c"], recordings=2, slices=1)
    listing = scan(root, DataConfig(class_names=("c", "a"), n_folds=2))
    assert listing.class_names == ("c", "a")
    assert {(c.class_name, c.class_id) for c in listing.clips} == {("c", 0), ("a", 1)}
    assert {r.reason for r in listing.rejections} == {"class 'b' is not one of data.class_names"}
    with pytest.raises(DatasetError, match="not UrbanSound8K's ten classes"):
        us8k = tmp_path / "us8k"
        (us8k / "metadata").mkdir(parents=True)
        (us8k / "metadata" / "UrbanSound8K.csv").write_text("x\n")
        scan(us8k, DataConfig(class_names=("a", "b")))


def test_cli_ingest_layouts(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    root = tmp_path / "data"
    write_folders(root, ["a", "b"], recordings=4, slices=2)
    out = tmp_path / "out"
    assert (
        main(["ingest", "--data", str(root), "--out", str(out), "--group-pattern", r"^([0-9]+)-"])
        == 0
    )
    stdout = capsys.readouterr().out
    assert (
        "folders: 2 classes; folds made by a grouped split (seed 0): 8 recording groups" in stdout
    )
    assert stdout.splitlines()[-1].startswith(
        "16 clips accepted (of 16 files) in folds [1, 2, 3, 4, 5]"
    )
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["split"]["group_pattern"] == r"^([0-9]+)-"
    folds_csv = tmp_path / "folds.csv"
    write_csv(
        folds_csv,
        ["file", "fold"],
        [
            [p.relative_to(root).as_posix(), 1 + i % 2]
            for i, p in enumerate(sorted(root.glob("*/*.wav")))
        ],
    )
    assert (
        main(
            [
                "ingest",
                "--data",
                str(root),
                "--out",
                str(out),
                "--layout",
                "folders",
                "--folds-from",
                str(folds_csv),
            ]
        )
        == 0
    )
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith("16 clips accepted (of 16 files) in folds [1, 2]")
    )
    assert main(["ingest", "--data", str(root), "--out", str(out), "--group-pattern", "(x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.group_pattern '(x' is not a regular expression" in err[0]
    assert main(["ingest", "--data", str(root), "--out", str(out), "--layout", "esc50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "meta/esc50.csv: metadata CSV not found" in err[0]


def test_run_and_submit_resolve_layout_settings_and_class_names(tmp_path):
    from urbansound.pipeline.cli import build_parser
    from urbansound.pipeline.commands.options import config_from_args
    from urbansound.pipeline.commands.resolve import resolve_data
    from urbansound.pipeline.preflight import check_dataset

    root = tmp_path / "esc"
    write_esc50(root, {0: "dog", 1: "rooster", 2: "cat"}, folds=(1, 2, 3), per_fold=1)
    parse = build_parser().parse_args
    args = parse(["run", "--data", str(root)])
    config = config_from_args(args, demo=False)
    clips, _, present = check_dataset(root, [], config.train.validation, config.data)
    config = resolve_data(config, root, args, clips)
    assert present == [1, 2, 3]
    assert (config.data.layout, config.audio.clip_seconds, config.features.n_frames) == (
        "esc50",
        5.0,
        214,
    )
    assert config.class_names == ("dog", "rooster", "cat")
    # a clip length the user sets wins over the layout's
    args = parse(["run", "--data", str(root), "--set", "audio.clip_seconds=4"])
    config = resolve_data(config_from_args(args, demo=False), root, args, clips)
    assert (config.audio.clip_seconds, config.features.n_frames) == (4.0, 128)
    # submit cannot list the dataset (the pods' path): a named layout still brings its
    # settings; the class names come from ingest's manifest at run time
    args = parse(["submit", "--host", "http://kfp", "--data", "/mnt/esc", "--layout", "esc50"])
    config = resolve_data(config_from_args(args, demo=False), Path(args.data), args)
    assert config.audio.clip_seconds == 5.0 and config.data.class_names == ()
    # UrbanSound8K keeps its ten names, in classID order
    from urbansound.demo_data import write_demo_dataset

    us8k = tmp_path / "us8k"
    write_demo_dataset(us8k, folds=(1, 2), clips_per_class=1)
    args = parse(["run", "--data", str(us8k)])
    config = config_from_args(args, demo=False)
    clips, _, _ = check_dataset(us8k, [], "none", config.data)
    config = resolve_data(config, us8k, args, clips)
    assert config.data.layout == "urbansound8k" and config.class_names == CLASS_NAMES
    assert config.audio.clip_seconds == 3.0


def _fold_result(fold: int, names: list[str], y_true: list[int], y_pred: list[int]):
    from urbansound.metrics import confusion_matrix
    from urbansound.training import FoldResult

    return FoldResult(
        test_fold=fold,
        validation_fold=None,
        train_folds=[3 - fold],
        test_accuracy=float(np.mean(np.equal(y_true, y_pred))),
        test_loss=1.0,
        y_true=y_true,
        y_pred=y_pred,
        confusion_matrix=confusion_matrix(y_true, y_pred, len(names)).tolist(),
        history={"loss": [1.0], "accuracy": [0.5]},
        best_epoch=1,
        epochs_run=1,
        n_train=4,
        n_validation=0,
        n_test=len(y_true),
        parameters=10,
        class_names=names,
        salience=[0] * len(y_true),
    )


@pytest.mark.parametrize("n_classes", [3, 50])
def test_evaluation_takes_the_classes_of_the_results(tmp_path, n_classes):
    from urbansound.evaluation import evaluate_folds

    names = [f"c{i}" for i in range(n_classes)]
    labels = list(range(n_classes))
    results = [
        _fold_result(1, names, labels, labels),
        _fold_result(2, names, labels, labels[1:] + labels[:1]),
    ]
    summary = evaluate_folds(results, tmp_path, plots=True)
    confusion = json.loads((tmp_path / "confusion_matrix.json").read_text())
    assert confusion["classes"] == names
    assert np.array(confusion["counts"]).shape == (n_classes, n_classes)
    assert np.trace(confusion["counts"]) == n_classes  # fold 1 all right, fold 2 all wrong
    assert list(summary["per_class"]) == names and summary["folds"] == {"1": 1.0, "2": 0.0}
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
    other = _fold_result(2, names[::-1], labels, labels)
    with pytest.raises(ValueError, match="trained on classes"):
        evaluate_folds([results[0], other], tmp_path / "x", plots=False)


def test_three_classes_ingest_features_train_evaluate_predict(tmp_path):
    """A 3-class folder-per-class dataset through ingest, Beam features and two epochs of
    training on 2 folds: a model with 3 outputs, 3 × 3 confusion matrices named by the
    data's classes, and predict naming them from the model's config.json."""
    import keras

    from urbansound.beam_features import run_features
    from urbansound.config import config_for
    from urbansound.evaluation import evaluate_folds
    from urbansound.predict import keras_classifier, predict_file
    from urbansound.training import CONFIG_FILE, MODEL_FILE, train_fold

    root = tmp_path / "data"
    write_folders(root, ["siren", "dog", "engine"], recordings=4, slices=2)
    config = config_for("urbannet", "quick").override(**{"data.n_folds": 2, "train.batch_size": 8})
    names = ["dog", "engine", "siren"]
    result = ingest(root, tmp_path / "waves", config=config, workers=1)
    assert result.counts == {1: 12, 2: 12} and list(result.class_names) == names
    manifest = run_features(
        tmp_path / "waves", tmp_path / "features", config=config, beam_args=["--runner=FnApiRunner"]
    )
    assert manifest["class_names"] == names
    fold = train_fold(tmp_path / "features", 1, [1, 2], config=config, out_dir=tmp_path / "m")
    model = keras.saving.load_model(tmp_path / "m" / MODEL_FILE)
    assert model.output_shape == (None, 3)
    assert fold.class_names == names and np.shape(fold.confusion_matrix) == (3, 3)
    assert np.sum(fold.confusion_matrix) == fold.n_test == 12
    saved = Config.from_json((tmp_path / "m" / CONFIG_FILE).read_text())
    assert saved.class_names == tuple(names)
    summary = evaluate_folds([fold], tmp_path / "eval", plots=False)
    assert list(summary["per_class"]) == names
    prediction = predict_file(
        root / "siren" / "1000-0-0-0.wav", keras_classifier(model), config=saved
    )
    assert list(prediction.class_names) == names and prediction.probabilities.shape == (3,)
    assert {name for name, _ in prediction.top()} == set(names)


def test_with_class_names_prefers_the_config_then_the_manifest(tmp_path):
    from urbansound.manifest import with_class_names

    assert with_class_names(Config(), tmp_path).class_names == CLASS_NAMES  # no manifest
    (tmp_path / MANIFEST).write_text(json.dumps({"class_names": ["b", "a"]}))
    assert with_class_names(Config(), tmp_path).data.class_names == ("b", "a")
    named = Config().override(**{"data.class_names": ["x", "y"]})
    assert with_class_names(named, tmp_path).class_names == ("x", "y")
    (tmp_path / MANIFEST).write_text(json.dumps({"classes": list(CLASS_NAMES)}))  # older
    assert with_class_names(Config(), tmp_path).class_names == CLASS_NAMES
