"""Tests for urbansound.metrics (accuracy summaries, confusion matrices, plots)
and urbansound.evaluation (combining per-fold results into the study's numbers)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from urbansound.config import CLASS_NAMES
from urbansound.evaluation import (
    CONFUSION_FILE,
    CONFUSION_PLOT,
    SUMMARY_FILE,
    evaluate_folds,
    format_summary,
)
from urbansound.metrics import (
    confusion_matrix,
    normalize_rows,
    per_class_accuracy,
    plot_confusion_matrix,
    plot_history,
    summarize_accuracies,
)
from urbansound.training import FoldResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes


# ---------------------------------------------------------------------------
# confusion_matrix, normalize_rows, per_class_accuracy
# ---------------------------------------------------------------------------


def test_confusion_matrix_hand_made():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 2, 0, 2, 2]
    cm = confusion_matrix(y_true, y_pred, 4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(
        cm,
        [
            [2, 1, 0, 0],
            [0, 2, 0, 0],
            [1, 0, 3, 0],
            [0, 0, 0, 0],
        ],
    )
    assert cm.sum() == len(y_true)
    assert np.trace(cm) == sum(t == p for t, p in zip(y_true, y_pred))


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = confusion_matrix([3], [7], 10)
    assert cm[3, 7] == 1 and cm.sum() == 1


def test_confusion_matrix_repeated_pairs_are_all_counted():
    cm = confusion_matrix([1] * 5, [2] * 5, 3)
    assert cm[1, 2] == 5


def test_confusion_matrix_empty():
    cm = confusion_matrix([], [], 3)
    np.testing.assert_array_equal(cm, np.zeros((3, 3)))


def test_confusion_matrix_shape_mismatch():
    with pytest.raises(ValueError, match=r"y_true \(3,\) and y_pred \(2,\) differ in shape"):
        confusion_matrix([0, 1, 2], [0, 1], 3)


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        ([0, -1], [0, 0], r"y_true has labels outside 0\.\.2: \[-1\]"),
        ([0, 1], [3, 0], r"y_pred has labels outside 0\.\.2: \[3\]"),
        ([0, 5, 9], [0, 0, 0], r"y_true has labels outside 0\.\.2: \[5, 9\]"),
    ],
)
def test_confusion_matrix_labels_out_of_range(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, 3)


def test_normalize_rows_with_empty_row():
    cm = np.array([[2, 1, 1], [0, 0, 0], [0, 3, 1]])
    out = normalize_rows(cm)
    np.testing.assert_allclose(out, [[0.5, 0.25, 0.25], [0, 0, 0], [0, 0.75, 0.25]])
    assert not np.isnan(out).any()
    assert out.dtype == np.float64


def test_per_class_accuracy_nan_for_absent_class():
    cm = np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    acc = per_class_accuracy(cm)
    assert acc[0] == pytest.approx(0.75)
    assert math.isnan(acc[1])
    assert acc[2] == pytest.approx(0.5)


# ---------------------------------------------------------------------------
# summarize_accuracies
# ---------------------------------------------------------------------------


def test_summarize_accuracies_known_numbers():
    summary = summarize_accuracies({3: 0.5, 1: 0.7, 2: 0.6, 10: 0.8})
    assert list(summary["folds"]) == ["1", "2", "3", "10"]  # numeric fold order
    assert summary["folds"]["10"] == 0.8
    assert summary["mean"] == pytest.approx(0.65)
    assert summary["median"] == pytest.approx(0.65)
    # population std (ddof=0): sqrt(mean of squared deviations 0.0225, 0.0025, 0.0025, 0.0225)
    assert summary["std"] == pytest.approx(math.sqrt(0.0125))
    assert summary["std"] != pytest.approx(np.std([0.5, 0.6, 0.7, 0.8], ddof=1))


def test_summarize_accuracies_odd_count_median():
    summary = summarize_accuracies({1: 0.1, 2: 0.9, 3: 0.3})
    assert summary["median"] == pytest.approx(0.3)
    assert summary["mean"] == pytest.approx(13 / 30)


def test_summarize_single_fold_has_zero_std():
    assert summarize_accuracies({4: 0.42})["std"] == 0.0


def test_summarize_accuracies_is_json_serialisable():
    summary = summarize_accuracies({np.int64(1): np.float32(0.5), 2: 0.75})
    assert json.loads(json.dumps(summary))["mean"] == pytest.approx(0.625)


def test_summarize_accuracies_empty():
    with pytest.raises(ValueError, match="no fold accuracies to summarise"):
        summarize_accuracies({})


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def test_plot_confusion_matrix_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    cm = confusion_matrix(rng.integers(0, 10, 300), rng.integers(0, 10, 300), 10)
    path = tmp_path / "cm.png"
    plot_confusion_matrix(cm, CLASS_NAMES, path, title="test")
    assert_png(path)


def test_plot_confusion_matrix_with_empty_rows(tmp_path):
    cm = np.zeros((10, 10), dtype=np.int64)
    cm[0, 0] = 4
    path = tmp_path / "cm.png"
    plot_confusion_matrix(cm, CLASS_NAMES, path)
    assert_png(path)


def test_plot_history_writes_png(tmp_path):
    history = {
        "accuracy": [0.1, 0.3, 0.5, 0.6],
        "val_accuracy": [0.1, 0.2, 0.4, 0.35],
        "loss": [2.3, 1.9, 1.4, 1.1],
        "val_loss": [2.3, 2.1, 1.8, 1.9],
    }
    path = tmp_path / "curves.png"
    plot_history(history, path, title="fold 1")
    assert_png(path)


# ---------------------------------------------------------------------------
# evaluate_folds
# ---------------------------------------------------------------------------


def fold_result(
    test_fold: int, y_true: list[int], y_pred: list[int], salience: list[int] = ()
) -> FoldResult:
    cm = confusion_matrix(y_true, y_pred, 10)
    acc = float(np.mean(np.array(y_true) == np.array(y_pred)))
    return FoldResult(
        test_fold=test_fold,
        validation_fold=test_fold % 3 + 1,
        train_folds=[9],
        test_accuracy=acc,
        test_loss=1.0,
        y_true=y_true,
        y_pred=y_pred,
        confusion_matrix=cm.tolist(),
        history={
            "accuracy": [0.2, 0.4],
            "val_accuracy": [0.3, 0.35],
            "loss": [2.0, 1.5],
            "val_loss": [2.1, 1.9],
        },
        best_epoch=2,
        epochs_run=2,
        n_train=10,
        n_validation=5,
        n_test=len(y_true),
        parameters=241_434,
        salience=list(salience),
    )


@pytest.fixture()
def results():
    return [
        fold_result(1, [0, 0, 1, 1], [0, 0, 1, 0]),  # 0.75
        fold_result(2, [0, 1, 2, 2, 2], [0, 1, 2, 2, 0]),  # 0.8
        fold_result(3, [1, 2], [1, 1]),  # 0.5
    ]


def test_evaluate_folds_writes_summary_and_confusion(tmp_path, results):
    summary = evaluate_folds(results, tmp_path)
    on_disk = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert on_disk == summary
    assert on_disk["folds"] == {"1": 0.75, "2": 0.8, "3": 0.5}
    assert on_disk["mean"] == pytest.approx((0.75 + 0.8 + 0.5) / 3)
    assert on_disk["median"] == pytest.approx(0.75)
    assert on_disk["std"] == pytest.approx(np.std([0.75, 0.8, 0.5]))
    assert on_disk["n_test_examples"] == 11
    per_class = on_disk["per_class"]
    # recall over the summed counts, not the mean of per-fold recalls
    assert per_class["air_conditioner"] == pytest.approx(1.0)  # class 0: 2/2, 1/1
    assert per_class["car_horn"] == pytest.approx(3 / 4)  # class 1: 1/2, 1/1, 1/1
    assert per_class["children_playing"] == pytest.approx(2 / 4)  # class 2: 2/3, 0/1
    assert per_class["gun_shot"] is None  # absent everywhere

    cm = json.loads((tmp_path / CONFUSION_FILE).read_text())
    assert cm["classes"] == list(CLASS_NAMES)
    expected = sum(np.asarray(r.confusion_matrix) for r in results)
    np.testing.assert_array_equal(cm["counts"], expected)
    assert np.asarray(cm["counts"]).sum() == 11
    np.testing.assert_allclose(cm["normalized"], np.round(normalize_rows(expected), 4))

    assert_png(tmp_path / CONFUSION_PLOT)
    for k in (1, 2, 3):
        assert (tmp_path / f"curves_fold{k}.png").read_bytes()[:8] == PNG_MAGIC


def test_evaluate_folds_without_plots(tmp_path, results):
    evaluate_folds(results, tmp_path / "out", plots=False)
    # the out-of-fold predictions are numbers, not plots: always written (no report.html)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        CONFUSION_FILE,
        "predictions.csv",
        SUMMARY_FILE,
    ]


def test_evaluate_folds_duplicate_test_fold(tmp_path, results):
    with pytest.raises(
        ValueError, match=r"a test fold appears twice among the results: \[1, 1, 2, 3\]"
    ):
        evaluate_folds(results + [results[0]], tmp_path, plots=False)
    assert not (tmp_path / SUMMARY_FILE).exists()


def test_evaluate_folds_empty(tmp_path):
    with pytest.raises(ValueError, match="no fold results to evaluate"):
        evaluate_folds([], tmp_path)


def test_format_summary(results, tmp_path):
    text = format_summary(evaluate_folds(results, tmp_path, plots=False))
    lines = text.splitlines()
    assert lines[0] == "fold  accuracy"
    assert lines[1] == "   1     75.0%"
    assert lines[-1] == "mean 68.3%  median 75.0%  std 13.1%"


def test_fold_result_json_round_trip(results):
    r = results[1]
    assert FoldResult.from_json(r.to_json()) == r


def test_accuracy_by_salience_pools_the_folds(tmp_path):
    from urbansound.evaluation import accuracy_by_salience

    results = [
        fold_result(1, [0, 0, 1, 1], [0, 0, 1, 0], salience=[1, 2, 1, 2]),  # fg 2/2, bg 1/2
        fold_result(2, [2, 2, 3], [2, 0, 0], salience=[1, 1, 2]),
    ]  # fg 1/2, bg 0/1
    by = accuracy_by_salience(results)
    assert by == {
        "foreground": {"accuracy": pytest.approx(3 / 4), "n": 4},
        "background": {"accuracy": pytest.approx(1 / 3), "n": 3},
    }
    summary = evaluate_folds(results, tmp_path, plots=False)
    assert summary["by_salience"]["background"]["n"] == 3
    assert (
        format_summary(summary).splitlines()[-1]
        == "by salience: foreground 75.0% (4 clips), background 33.3% (3 clips)"
    )
    # records written without salience (0) are left out, not counted as a class
    assert accuracy_by_salience([fold_result(3, [1], [1], salience=[0])]) == {}
    assert accuracy_by_salience([fold_result(3, [1], [1])]) == {}
