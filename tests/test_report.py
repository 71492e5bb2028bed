"""The error analysis (issue 18): out-of-fold predictions, the report page's numbers (ECE,
precision / recall / F1, the most confident mistakes), its audio, `urbansound report` and
`compare --html`."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import refused_in_one_line, tone

from urbansound.report import (
    COLUMNS,
    Prediction,
    audio_data_uri,
    build_report,
    calibration,
    expected_calibration_error,
    is_report,
    most_confident_mistakes,
    precision_recall_f1,
    read_predictions,
    write_predictions,
)

NAMES = ["air", "bark", "car", "drill"]


def _row(i: int, true: int, pred: int, p: float, fold: int = 1) -> Prediction:
    rest = [c for c in range(len(NAMES)) if c != pred]
    top = ((NAMES[pred], p), (NAMES[rest[0]], (1 - p) / 2), (NAMES[rest[1]], (1 - p) / 4))
    return Prediction(fold, f"{i:03d}-{true}-0-0.wav", 1 + i % 2, true, NAMES[true], pred,
                      NAMES[pred], p, top)  # fmt: skip


def _decode_uri(uri: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    head, data = uri.split(",", 1)
    assert head == "data:audio/flac;base64"
    y, rate = sf.read(io.BytesIO(base64.b64decode(data)), dtype="float64")
    return y, rate


# ---------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------


def test_ece_of_a_known_table_computed_by_hand():
    # bins (k/10, (k+1)/10]: 0.95, 0.95 -> (0.9, 1]: right 1 of 2, mean confidence 0.95;
    # 0.85 -> (0.8, 0.9]: right, 0.85; 0.55 -> (0.5, 0.6]: right, 0.55;
    # 0.3, 0.3 -> (0.2, 0.3] (an edge belongs to the bin below): right 1 of 2, 0.3
    # ECE = (2·|0.5-0.95| + |1-0.85| + |1-0.55| + 2·|0.5-0.3|) / 6 = 1.9 / 6
    confidences = [0.95, 0.95, 0.85, 0.55, 0.3, 0.3]
    correct = [True, False, True, True, False, True]
    ece, bins = calibration(confidences, correct)
    assert ece == pytest.approx(1.9 / 6, abs=1e-12)
    assert [b.count for b in bins] == [0, 0, 2, 0, 0, 1, 0, 0, 1, 2]
    assert (bins[2].lower, bins[2].upper) == (0.2, 0.3)
    assert bins[9].accuracy == 0.5 and bins[9].confidence == pytest.approx(0.95)
    assert bins[0].accuracy is None and bins[0].confidence is None
    # the same through prediction rows; a perfectly calibrated table has 0
    rows = [_row(i, 0, 0 if ok else 1, p) for i, (p, ok) in enumerate(zip(confidences, correct))]
    assert expected_calibration_error(rows) == pytest.approx(1.9 / 6, abs=1e-12)
    assert calibration([0.5, 0.5, 1.0], [True, False, True])[0] == 0.0
    assert calibration([0.0], [False])[1][0].count == 1  # 0 is in the first bin
    with pytest.raises(ValueError, match="outside 0..1"):
        calibration([1.2], [True])


def test_precision_recall_f1_of_a_known_table():
    from urbansound.metrics import confusion_matrix

    counts = confusion_matrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 4)
    stats = precision_recall_f1(counts)
    # class 0: 2 of 3 found, both predictions right; class 1: 1 of 2, 1 of 2 predictions;
    # class 2: its one clip found, 1 of 2 predictions; class 3: no clip, never predicted
    assert stats[0] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3, "predicted": 2}
    assert stats[1]["precision"] == 0.5 and stats[1]["recall"] == 0.5 and stats[1]["f1"] == 0.5
    assert stats[2]["precision"] == 0.5 and stats[2]["recall"] == 1.0
    assert stats[2]["f1"] == pytest.approx(2 / 3)
    assert stats[3] == {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0}
    # a class predicted but never right: precision and recall 0, F1 0 (not undefined)
    assert precision_recall_f1(confusion_matrix([0, 1], [1, 0], 2))[0]["f1"] == 0.0


def test_the_report_lists_exactly_n_mistakes_most_confident_first():
    rng = np.random.default_rng(3)
    rows = [_row(i, i % 4, (i + 1) % 4, float(rng.uniform(0.3, 0.99))) for i in range(40)]
    rows += [_row(100 + i, 2, 2, 0.9) for i in range(10)]  # right: never a mistake
    chosen = most_confident_mistakes(rows, 30)
    assert len(chosen) == 30
    assert [r.probability for r in chosen] == sorted(
        (r.probability for r in rows if not r.correct), reverse=True
    )[:30]
    asked = []

    def audio(keys):
        asked.append(list(keys))
        return {k: (tone(440, 0.5, 16000), 16000) for k in keys}

    summary = {"folds": {"1": 0.2}, "mean": 0.2, "median": 0.2, "std": 0.0}
    page = build_report(rows, summary, NAMES, audio, n_mistakes=30)
    assert asked == [[r.key for r in chosen]]  # the audio of the chosen clips only, at once
    items = re.findall(r'<li class="mistake" data-rank="(\d+)"[^>]*data-file="([^"]+)"', page)
    assert [int(rank) for rank, _ in items] == list(range(1, 31))
    assert [file for _, file in items] == [r.file for r in chosen]
    assert page.count("<audio controls") == 30
    assert page.count('<img class="logmel"') == 30
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # self-contained
    assert is_report_text(page)


def test_a_page_whose_audio_cannot_be_read_still_has_every_number():
    rows = [_row(i, 0, 1, 0.9 - i / 100) for i in range(3)] + [_row(9, 2, 2, 0.8)]

    def broken(keys):
        raise OSError("fold1.tfrecord: input/output error")

    summary = {"folds": {"1": 0.25}, "mean": 0.25, "median": 0.25, "std": 0.0}
    page = build_report(rows, summary, NAMES, broken)
    assert "audio could not be read: fold1.tfrecord: input/output error" in page
    assert page.count('<li class="mistake"') == 3 and "<audio" not in page
    assert page.count("audio not available") == 3
    assert 'class="mean" data-value="0.25"' in page


def is_report_text(page: str) -> bool:
    return page.startswith("<!DOCTYPE html>") and 'content="urbansound report"' in page[:1024]


def test_an_audio_data_uri_decodes_back_to_the_waveform():
    y = tone(440, 1.0, 16000, amplitude=0.6)
    back, rate = _decode_uri(audio_data_uri(y, 16000))
    assert rate == 16000 and back.shape == y.shape
    np.testing.assert_allclose(back, y, atol=1.0 / 32767 + 1e-9)  # 16-bit samples
    # a clip at 22,050 Hz is played at 16 kHz, the same tone; one longer than 10 s is cut
    from conftest import dominant_hz

    long = tone(1000, 12.0, 22050)
    back, rate = _decode_uri(audio_data_uri(long, 22050))
    assert rate == 16000 and len(back) == 160000
    assert dominant_hz(back.astype(np.float32), 16000) == pytest.approx(1000, abs=2)
    with pytest.raises(ValueError, match="no sample"):
        audio_data_uri(np.zeros(0, np.float32), 16000)


def test_predictions_csv_round_trips_and_a_bad_one_is_named(tmp_path):
    rows = [_row(0, 1, 1, 0.75), _row(1, 2, 0, 0.5, fold=3)]
    rows.append(Prediction(2, "old.wav", 0, 0, "air", 1, "bark", None))  # no probability
    path = tmp_path / "predictions.csv"
    write_predictions(rows, path)
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    assert lines[1].split(",")[:8] == ["1", "000-1-0-0.wav", "1", "1", "bark", "1", "bark", "0.75"]
    assert read_predictions(path) == rows
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace("0.75", "1.75"))
    with pytest.raises(ValueError, match=r"bad\.csv: line 2: probability '1\.75' is outside"):
        read_predictions(bad)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="other.csv: not a predictions.csv"):
        read_predictions(tmp_path / "other.csv")


# ---------------------------------------------------------------------------
# evaluate: predictions.csv and report.html from the fold results
# ---------------------------------------------------------------------------


def fold_result(fold: int, files: list[str], y_true: list[int], probabilities, names=NAMES):
    """A FoldResult as train_fold writes it, predictions the argmax of ``probabilities``."""
    from urbansound.metrics import confusion_matrix
    from urbansound.training import FoldResult

    p = np.asarray(probabilities, dtype=np.float64)
    y_pred = p.argmax(axis=1).tolist()
    return FoldResult(
        test_fold=fold,
        validation_fold=None,
        train_folds=[],
        test_accuracy=float(np.mean(np.equal(y_true, y_pred))),
        test_loss=1.0,
        y_true=list(y_true),
        y_pred=y_pred,
        confusion_matrix=confusion_matrix(y_true, y_pred, len(names)).tolist(),
        history={"loss": [1.0], "accuracy": [0.5]},
        best_epoch=1,
        epochs_run=1,
        n_train=1,
        n_validation=0,
        n_test=len(y_true),
        parameters=1,
        class_names=list(names),
        salience=[1 + i % 2 for i in range(len(y_true))],
        file_names=list(files),
        probabilities=np.round(p, 6).tolist(),
    )


def synthetic_results(seed: int = 0, per_fold: int = 12) -> list:
    rng = np.random.default_rng(seed)
    results = []
    for fold in (1, 2):
        y_true = [i % len(NAMES) for i in range(per_fold)]
        p = rng.dirichlet(np.ones(len(NAMES)) * 0.5, size=per_fold)
        results.append(
            fold_result(fold, [f"f{fold}-{i:02d}.wav" for i in range(per_fold)], y_true, p)
        )
    return results


def test_evaluate_writes_one_prediction_row_per_test_clip_and_the_report(tmp_path):
    from urbansound.evaluation import evaluate_folds

    results = synthetic_results()
    summary = evaluate_folds(
        results,
        tmp_path,
        plots=True,
        audio=lambda keys: {k: (tone(300, 0.4, 16000), 16000) for k in keys},
    )
    rows = read_predictions(tmp_path / "predictions.csv")
    assert len(rows) == sum(r.n_test for r in results) == 24
    for r in results:
        mine = [row for row in rows if row.fold == r.test_fold]
        assert [row.file for row in mine] == r.file_names
        assert [row.true_index for row in mine] == r.y_true
        assert [row.predicted_index for row in mine] == r.y_pred
        assert [row.probability for row in mine] == [max(p) for p in r.probabilities]
        assert [row.top[0][0] for row in mine] == [NAMES[k] for k in r.y_pred]
        assert all(len(row.top) == 3 for row in mine)
        assert np.mean([row.correct for row in mine]) == summary["folds"][str(r.test_fold)]
    assert summary["calibration"] == {
        "ece": pytest.approx(expected_calibration_error(rows)),
        "bins": 10,
        "clips": 24,
    }
    page = (tmp_path / "report.html").read_text()
    assert is_report(tmp_path / "report.html")
    mistakes = sum(not row.correct for row in rows)
    assert page.count("<audio controls") == min(30, mistakes) > 0
    # the page's numbers are summary.json's, exactly
    saved = json.loads((tmp_path / "summary.json").read_text())
    for fold, accuracy in saved["folds"].items():
        assert re.search(
            rf'data-fold="{fold}">.*?data-value="{re.escape(repr(accuracy))}"', page
        ), fold
    assert f'class="mean" data-value="{saved["mean"]!r}"' in page
    assert f'class="ece" data-value="{saved["calibration"]["ece"]!r}"' in page


def test_fold_results_written_before_probabilities_still_evaluate(tmp_path):
    """A fold_result.json of an earlier version (no file names, no probabilities, no
    salience) reads and evaluates: its rows have no probability, no calibration."""
    from urbansound.evaluation import evaluate_folds
    from urbansound.training import FoldResult

    old = json.loads(synthetic_results()[0].to_json())
    for key in ("file_names", "probabilities", "salience"):
        del old[key]
    result = FoldResult.from_json(json.dumps(old))
    assert result.file_names == [] and result.probabilities == []
    summary = evaluate_folds([result], tmp_path, plots=False)
    assert "calibration" not in summary
    rows = read_predictions(tmp_path / "predictions.csv")
    assert len(rows) == result.n_test and {r.probability for r in rows} == {None}
    assert [r.predicted_index for r in rows] == result.y_pred


def test_records_audio_reads_the_clips_ingest_decoded(waveforms):
    from conftest import read_records

    from urbansound.report import records_audio

    records = read_records(waveforms / "wave")
    wanted = [(rec.fold, name) for name, rec in sorted(records.items())][:3] + [(2, "nope.wav")]
    found = records_audio(waveforms / "wave")(wanted)
    assert set(found) == set(wanted[:3])
    for (_fold, name), (y, rate) in found.items():
        assert rate == records[name].sample_rate
        np.testing.assert_array_equal(y, records[name].waveform)


# ---------------------------------------------------------------------------
# `urbansound report RUN_ID` and `compare --html`, on a store as a pipeline run leaves it
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logged_run(waveforms, tmp_path_factory):
    """A sqlite store with a pipeline run whose evaluation (of the built-in data's ingest
    output, predictions made up, mostly wrong) is logged as evaluate logs it."""
    from conftest import read_records

    from urbansound.components import runs, tracking_store
    from urbansound.config import CLASS_NAMES, Config
    from urbansound.evaluation import evaluate_folds
    from urbansound.report import records_audio

    work = tmp_path_factory.mktemp("logged")
    records = read_records(waveforms / "wave")
    rng = np.random.default_rng(5)
    results = []
    for fold in (1, 2, 3):
        clips = sorted((n, r) for n, r in records.items() if r.fold == fold)
        p = rng.dirichlet(np.ones(10) * 0.3, size=len(clips))
        results.append(
            fold_result(fold, [n for n, _ in clips], [r.label for _, r in clips], p, CLASS_NAMES)
        )
    evaluation = work / "evaluation"
    summary = evaluate_folds(results, evaluation, audio=records_audio(waveforms / "wave"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    config = Config()
    parent = runs.start_parent_run(
        uri,
        "report-key",
        {**config.flat(), "data_root": str(waveforms / "data")},
        run_name="urbannet · no augmentation · data",
        config=config,
    )
    runs.log_summary(uri, parent, summary, str(evaluation))
    for fold, accuracy in summary["folds"].items():
        fold_run = runs.start_fold_run(uri, parent, int(fold), {})
        tracking_store.client(uri).log_metric(fold_run, "test_accuracy", accuracy)
        runs.end_run(uri, fold_run, "FINISHED")
    runs.end_run(uri, parent, "FINISHED")
    return {"uri": uri, "parent": parent, "fold_run": fold_run, "evaluation": evaluation,
            "summary": summary, "work": work}  # fmt: skip


def test_the_parent_run_has_the_predictions_as_a_file_a_table_and_the_report(logged_run):
    from urbansound.components.tracking_store import client

    c = client(logged_run["uri"])
    parent = logged_run["parent"]
    names = {a.path for a in c.list_artifacts(parent)}
    assert {"predictions.csv", "predictions_table.json", "report.html"} <= names
    table = json.loads(Path(c.download_artifacts(parent, "predictions_table.json")).read_text())
    assert table["columns"] == list(COLUMNS)
    assert len(table["data"]) == logged_run["summary"]["n_test_examples"] == 30
    tags = json.loads(c.get_run(parent).data.tags["mlflow.loggedArtifacts"])
    assert {"path": "predictions_table.json", "type": "table"} in tags
    metrics = c.get_run(parent).data.metrics
    ece = logged_run["summary"]["calibration"]["ece"]
    assert metrics["expected_calibration_error"] == pytest.approx(ece)
    # a resumed evaluation logging again leaves the table as it was (MLflow would append)
    from urbansound.components import runs

    runs.log_summary(
        logged_run["uri"], parent, logged_run["summary"], str(logged_run["evaluation"])
    )
    again = json.loads(Path(c.download_artifacts(parent, "predictions_table.json")).read_text())
    assert len(again["data"]) == 30


def test_report_command_writes_the_logged_page_and_rebuilds_it_from_the_data(
    logged_run, tmp_path, capsys, monkeypatch
):
    from urbansound.pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    uri, parent = logged_run["uri"], logged_run["parent"]
    assert main(["report", parent, "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    written = tmp_path / f"report-{parent[:8]}.html"
    assert out.strip() == f"report: {written.name} (the report.html logged by run {parent})"
    logged_page = (logged_run["evaluation"] / "report.html").read_text()
    assert written.read_text() == logged_page
    # again over its own page: replaced
    assert main(["report", parent, "--tracking-uri", uri, "-o", str(written), "--rebuild"]) == 0
    assert "built again from run" in capsys.readouterr().out
    rebuilt = written.read_text()
    # the same mistakes, playing the same decoded clips (read again from the data folder)
    uris = re.compile(r'src="(data:audio/flac;base64,[^"]+)"')
    assert uris.findall(rebuilt) == uris.findall(logged_page)
    assert len(uris.findall(rebuilt)) == 30 - round(30 * logged_run["summary"]["mean"])
    for key in ("mean", "median", "std"):
        assert f'class="{key}" data-value="{logged_run["summary"][key]!r}"' in rebuilt


def test_report_command_refuses_in_one_line(logged_run, tmp_path, capsys):
    uri, parent = logged_run["uri"], logged_run["parent"]
    theirs = tmp_path / "notes.html"
    theirs.write_text("<html>my notes</html>")
    refused_in_one_line(
        ["report", parent, "--tracking-uri", uri, "-o", theirs], capsys,
        str(theirs), "was not written by urbansound report",
    )  # fmt: skip
    assert theirs.read_text() == "<html>my notes</html>"
    refused_in_one_line(
        ["report", "nope", "--tracking-uri", uri, "-o", tmp_path / "a.html"], capsys,
        "nope: no such run",
    )  # fmt: skip
    refused_in_one_line(
        ["report", logged_run["fold_run"], "--tracking-uri", uri, "-o", tmp_path / "a.html"],
        capsys, "is a fold run; give its pipeline run", parent,
    )  # fmt: skip
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    refused_in_one_line(
        ["report", parent, "--tracking-uri", missing, "-o", tmp_path / "a.html"], capsys,
        "no MLflow store",
    )  # fmt: skip
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "a.html").exists()


def test_report_command_refuses_a_run_without_predictions(tmp_path, capsys):
    from urbansound.components import runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = runs.start_parent_run(uri, "old-key", {"train.model": "urbannet"})
    runs.end_run(uri, parent, "FINISHED")
    refused_in_one_line(
        ["report", parent, "--tracking-uri", uri, "-o", tmp_path / "r.html"], capsys,
        f"run {parent} has no predictions.csv or summary.json",
    )  # fmt: skip


def test_compare_html_puts_per_class_accuracy_side_by_side(logged_run, tmp_path, capsys):
    from urbansound.config import CLASS_NAMES
    from urbansound.pipeline.cli import main

    uri, parent = logged_run["uri"], logged_run["parent"]
    page_path = tmp_path / "classes.html"
    code = main(
        ["compare", parent, "--tracking-uri", uri, "--out", str(tmp_path / "cmp"),
         "--html", str(page_path), "--no-log"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    page = page_path.read_text()
    assert is_report(page_path)
    per_class = logged_run["summary"]["per_class"]
    for name in CLASS_NAMES:
        row = re.search(rf'<tr data-class="{name}">(.*?)</tr>', page)
        assert row, name
        value = per_class[name]
        assert f'data-value="{value!r}"' in row.group(1), (name, row.group(1))
    # a file of someone else's is not replaced
    page_path.write_text("mine")
    refused_in_one_line(
        ["compare", parent, "--tracking-uri", uri, "--html", page_path, "--no-log"], capsys,
        "was not written by urbansound compare",
    )  # fmt: skip
