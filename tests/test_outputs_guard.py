"""No command writes over its own inputs, over a file it did not write, or deletes a file it
did not write (issue 15, defect classes 2 and 3): export, features, ingest, run,
train-final, demo-data and compare refuse before writing anything, one line, exit code 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import SR, refused_in_one_line, tone, wav_bytes

from urbansound.outputs import (
    MARKER,
    OutputError,
    check_outputs,
    claim_folder,
    record,
    remove_recorded,
)
from urbansound.pipeline.cli import main


def _tree(root: Path) -> dict:
    """Every file under ``root`` with the SHA-256 of its bytes: proof nothing changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _refused(argv, capsys, *fragments) -> str:
    """The CLI exits 2 with one stderr line holding every fragment, no traceback."""
    return refused_in_one_line(argv, capsys, *fragments)


# ---------------------------------------------------------------------------
# the rule itself
# ---------------------------------------------------------------------------


def test_an_output_that_is_an_input_is_refused_also_through_a_link(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    link = tmp_path / "alias.keras"
    link.symlink_to(model)
    with pytest.raises(OutputError, match=r"alias.keras: is the input MODEL .*would destroy it"):
        check_outputs([("the .tflite file", link)], [("MODEL", model)])
    with pytest.raises(OutputError, match="is the input MODEL"):  # not there yet: by path
        check_outputs([("out", tmp_path / "sub" / ".." / "new")], [("MODEL", tmp_path / "new")])
    assert model.read_bytes() == b"weights"


def test_two_outputs_at_one_path_and_an_existing_file_not_ours_are_refused(tmp_path):
    with pytest.raises(OutputError, match=r"edge.json: the .tflite and the .json would both"):
        check_outputs(
            [("the .tflite", tmp_path / "edge.json"), ("the .json", tmp_path / "edge.json")]
        )
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(OutputError, match=r"notes.txt: exists and was not written by urbansound"):
        check_outputs([("out", notes)])
    check_outputs([("out", notes)], ours=lambda p: p.read_text() == "mine")  # ours: replaced


def test_claimed_folder_deletes_only_what_it_recorded(tmp_path):
    out = tmp_path / "out"
    assert claim_folder(out, "ingest") == []
    record(out, ["fold1.tfrecord", "manifest.json"])
    (out / "fold1.tfrecord").write_bytes(b"ours")
    (out / "folder_index.tfrecord").write_bytes(b"the user's")  # put there afterwards
    assert claim_folder(out, "ingest") == ["fold1.tfrecord", "manifest.json"]
    assert sorted(remove_recorded(out)) == ["fold1.tfrecord", "manifest.json"]
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "folder_index.tfrecord"]
    with pytest.raises(OutputError, match=r"folder_index.tfrecord: exists and was not written"):
        record(out, ["folder_index.tfrecord"])
    with pytest.raises(
        OutputError, match=r"holds the output of urbansound ingest, not of features"
    ):
        claim_folder(out, "features")


# ---------------------------------------------------------------------------
# export: the four collisions of the issue, and a re-export of our own files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "out, fragment",
    [
        ("edge.json", "the .tflite file and its .json metadata would both be written"),
        ("FOLD/config.tflite", "is the input MODEL's config.json"),
        ("FOLD/model.keras", "is the input MODEL"),
        ("FOLD/model.json", "exists and was not written by urbansound export"),
    ],
)
def test_export_never_writes_over_its_inputs(
    out, fragment, improved_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (improved_dir / "model.json").write_text('{"notes": "the user\'s"}')
    before = _tree(improved_dir)
    out = out.replace("FOLD", str(improved_dir))
    _refused(["export", improved_dir / "model.keras", "-o", out], capsys, fragment)
    assert _tree(improved_dir) == before  # model, config.json, the user's json: byte for byte
    # nothing new beside them (the command's own log of library chatter aside)
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".log"] == []
    (improved_dir / "model.json").unlink()


def test_export_refuses_a_foreign_file_at_out_and_replaces_its_own(improved_dir, tmp_path, capsys):
    foreign = tmp_path / "edge.tflite"
    foreign.write_text("my notes")
    _refused(
        ["export", improved_dir / "model.keras", "-o", foreign],
        capsys,
        foreign,
        "exists and was not written by urbansound export",
    )
    assert foreign.read_text() == "my notes"
    ours = tmp_path / "ours.tflite"
    assert main(["export", str(improved_dir / "model.keras"), "-o", str(ours)]) == 0
    first = ours.read_bytes()
    assert first[4:8] == b"TFL3"
    assert main(["export", str(improved_dir / "model.keras"), "-o", str(ours)]) == 0  # its own pair
    assert ours.read_bytes() == first
    assert json.loads(ours.with_suffix(".json").read_text())["format"] == "tflite"
    capsys.readouterr()


# ---------------------------------------------------------------------------
# ingest and features: never delete or overwrite what they did not write
# ---------------------------------------------------------------------------


def _csv_dataset(root: Path, rows) -> Path:
    """A ``csv`` layout dataset: ``rows`` of (file, label, fold, Hz)."""
    root.mkdir(parents=True)
    lines = ["path,label,fold"]
    for name, label, fold, hz in rows:
        (root / name).write_bytes(wav_bytes(tone(hz, 0.25), SR))
        lines.append(f"{name},{label},{fold}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"


@pytest.fixture
def two_classes(tmp_path) -> Path:
    return _csv_dataset(
        tmp_path / "data",
        [
            (f"{c}{f}.wav", c, f, 300 + 100 * f + (50 if c == "b" else 0))
            for f in (1, 2, 3)
            for c in ("a", "b")
        ],
    )


def test_ingest_into_a_users_folder_refuses_and_keeps_their_files(two_classes, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "folder_index.tfrecord").write_bytes(b"\x00the user's index")
    (out / "notes.txt").write_text("keep")
    before = _tree(out)
    _refused(
        ["ingest", "--data", two_classes, "--out", out],
        capsys,
        out,
        "folder is not empty",
        "was not written by urbansound ingest",
    )
    assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == [
        "folder_index.tfrecord",
        "notes.txt",
    ]


def test_ingest_rerun_replaces_only_its_own_files(two_classes, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["ingest", "--data", str(two_classes), "--out", str(out)]) == 0
    (out / "folder_index.tfrecord").write_bytes(b"added by the user later")
    (out / "fold9.tfrecord").write_bytes(b"not written by ingest either")
    # fewer folds this time: fold3.tfrecord of the first run must go, the user's two stay
    lines = two_classes.read_text().splitlines()
    two_classes.write_text("\n".join(ln for ln in lines if not ln.endswith(",3")) + "\n")
    assert main(["ingest", "--data", str(two_classes), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "fold3.tfrecord" not in names and {"fold1.tfrecord", "fold2.tfrecord"} <= set(names)
    assert (out / "folder_index.tfrecord").read_bytes() == b"added by the user later"
    assert (out / "fold9.tfrecord").read_bytes() == b"not written by ingest either"
    capsys.readouterr()


@pytest.fixture
def ingested(two_classes, tmp_path) -> Path:
    from urbansound.ingest import ingest

    ingest(two_classes, tmp_path / "ingested", workers=1)
    return tmp_path / "ingested"


def test_features_out_equal_to_data_is_refused_and_the_records_survive(ingested, capsys):
    before = _tree(ingested)
    _refused(
        ["features", "--data", ingested, "--out", ingested],
        capsys,
        ingested,
        "--out is the input --data",
        "would replace what is read",
    )
    assert _tree(ingested) == before


def test_features_is_refused_even_when_ingest_left_no_marker(ingested, tmp_path, capsys):
    (ingested / MARKER).unlink()  # an ingest output of an earlier version
    before = _tree(ingested)
    _refused(
        ["features", "--data", ingested, "--out", ingested],
        capsys,
        "--out is the input --data",
        "choose another folder",
    )
    assert _tree(ingested) == before


def test_features_into_a_users_folder_is_refused_before_the_log(ingested, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "fold1.tfrecord").write_bytes(b"someone else's shard")
    _refused(["features", "--data", ingested, "--out", out], capsys, out, "folder is not empty")
    assert sorted(p.name for p in out.iterdir()) == ["fold1.tfrecord"]  # no features.log


# ---------------------------------------------------------------------------
# folders of the other commands
# ---------------------------------------------------------------------------


def test_run_into_a_users_folder_is_refused_before_any_task(two_classes, tmp_path, capsys):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    _refused(
        [
            "run",
            "--data",
            two_classes,
            "--out",
            out,
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        capsys,
        out,
        "was not written by urbansound run",
    )
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert not (tmp_path / "mlflow.db").exists()


def test_train_final_into_a_users_folder_is_refused(two_classes, tmp_path, capsys):
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "model").write_text("not ours")
    _refused(
        ["train-final", "--data", two_classes, "--out", out],
        capsys,
        out,
        "was not written by urbansound train-final",
    )
    assert (out / "model").read_text() == "not ours"


def test_demo_data_never_writes_into_a_real_dataset(tmp_path, capsys):
    real = tmp_path / "UrbanSound8K"
    (real / "metadata").mkdir(parents=True)
    (real / "metadata" / "UrbanSound8K.csv").write_text("the real metadata\n")
    _refused(["demo-data", real], capsys, real, "was not written by urbansound demo-data")
    assert (real / "metadata" / "UrbanSound8K.csv").read_text() == "the real metadata\n"
    demo = tmp_path / "demo"  # a new folder, then the same one again: ours
    assert main(["demo-data", str(demo), "--folds", "1", "--clips-per-class", "1"]) == 0
    assert main(["demo-data", str(demo), "--folds", "1", "--clips-per-class", "1"]) == 0
    capsys.readouterr()


def test_compare_writes_only_into_its_own_folder(tmp_path, monkeypatch):
    from urbansound.comparison import RunAccuracies
    from urbansound.pipeline import compare

    runs = [
        RunAccuracies(
            run_id="r1",
            model="urbannet",
            augmentation="none",
            fold_accuracies={1: 0.5, 2: 0.7},
            name="r1",
        )
    ]
    monkeypatch.setattr(compare, "load_runs", lambda *a, **k: runs)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.md").write_text("my own comparison")
    with pytest.raises(OutputError, match="folder is not empty"):
        compare.compare("sqlite:///unused.db", out_dir=shared, log=False)
    assert [p.name for p in shared.iterdir()] == ["notes.md"]
    fresh = tmp_path / "fresh"
    _, plot, _ = compare.compare("sqlite:///unused.db", out_dir=fresh, log=False)
    assert plot.is_file()
    compare.compare("sqlite:///unused.db", out_dir=fresh, log=False)  # a rerun: its own files
    assert sorted(p.name for p in fresh.iterdir()) == sorted(
        [MARKER, compare.BOXPLOT_FILE, compare.TABLE_FILE, compare.ROWS_FILE]
    )


def test_compile_replaces_its_own_yaml_but_not_another_file(tmp_path, capsys):
    notes = tmp_path / "values.yaml"
    notes.write_text("replicas: 3\n")
    _refused(["compile", "-o", notes], capsys, notes, "was not written by urbansound compile")
    assert notes.read_text() == "replicas: 3\n"
    ours = tmp_path / "pipeline.yaml"
    assert main(["compile", "-o", str(ours)]) == 0
    assert main(["compile", "-o", str(ours)]) == 0  # an earlier compile's: replaced
    assert b"pipelineInfo:" in ours.read_bytes()
    capsys.readouterr()
