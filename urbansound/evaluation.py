"""Stage 4, evaluate: combine the per-fold results into the numbers the study reports.

Writes to one directory::

    summary.json            {"folds": {"<k>": acc}, "mean", "median", "std", "per_class": {...},
                             "by_salience": {"foreground": {"accuracy", "n"}, "background": ...},
                             "n_test_examples", "ingest": {"accepted", "rejected", "report", ...}}
    confusion_matrix.json   {"classes": [...], "counts": [[...]], "normalized": [[...]]}:
                            n_classes × n_classes in the order of the data's class names
    confusion_matrix.png    counts and row-normalised, summed over folds
    curves_fold<k>.png      accuracy / loss per epoch of each fold
    predictions.csv         one row per test clip: its out-of-fold prediction, probability
                            and top 3 (:data:`urbansound.report.COLUMNS`)
    report.html             the error analysis as one self-contained page, with players of
                            the most confident mistakes (:func:`urbansound.report.build_report`)

``summary.json`` also has ``"calibration": {"ece", "bins", "clips"}`` (the expected
calibration error of the clips with a probability; see :mod:`urbansound.report`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from urbansound.config import FeatureConfig
from urbansound.messages import names_excerpt
from urbansound.metrics import (
    normalize_rows,
    per_class_accuracy,
    plot_confusion_matrix,
    plot_history,
    summarize_accuracies,
)
from urbansound.report import (
    ECE_BINS,
    PREDICTIONS_FILE,
    REPORT_FILE,
    AudioSource,
    Prediction,
    build_report,
    calibrated_rows,
    expected_calibration_error,
    prediction_rows,
    write_predictions,
)
from urbansound.training import FoldResult

SUMMARY_FILE = "summary.json"
CONFUSION_FILE = "confusion_matrix.json"
CONFUSION_PLOT = "confusion_matrix.png"


def evaluate_folds(
    results: Sequence[FoldResult],
    out_dir: str | os.PathLike,
    *,
    plots: bool = True,
    ingest: dict | None = None,
    audio: AudioSource | None = None,
    features: FeatureConfig | None = None,
) -> dict:
    """Summarise fold results and write the evaluation files (the module's docstring).

    ``ingest`` (accepted / rejected counts, report path, dataset hash) is copied into
    the summary so that it says what data the numbers come from.  ``plots``: also the
    PNGs and ``report.html``, whose mistakes play their clips from ``audio`` (e.g.
    :func:`urbansound.report.records_audio` of ingest's output; None: no players), their
    log-mel images drawn with ``features`` (the run's front end; None: the default one).

    Returns
    -------
    summary : the content of ``summary.json``.
    """
    if not results:
        raise ValueError("no fold results to evaluate")
    folds = [r.test_fold for r in results]
    if len(set(folds)) != len(folds):
        raise ValueError(f"a test fold appears twice among the results: {sorted(folds)}")
    # the classes come from the data (ingest's manifest): every fold must name the same
    class_names = list(results[0].class_names)
    for r in results:
        if list(r.class_names) != class_names:
            raise ValueError(
                f"test fold {r.test_fold} was trained on classes "
                f"{names_excerpt(r.class_names)}, test fold "
                f"{results[0].test_fold} on {names_excerpt(class_names)}"
            )
        if np.shape(r.confusion_matrix) != (len(class_names), len(class_names)):
            raise ValueError(
                f"test fold {r.test_fold}: confusion matrix of shape "
                f"{np.shape(r.confusion_matrix)} for {len(class_names)} classes"
            )
    counts = np.sum([np.asarray(r.confusion_matrix) for r in results], axis=0)
    summary = summarize_accuracies({r.test_fold: r.test_accuracy for r in results})
    per_class = per_class_accuracy(counts)
    summary["per_class"] = {
        name: (None if np.isnan(acc) else float(acc)) for name, acc in zip(class_names, per_class)
    }
    summary["n_test_examples"] = int(counts.sum())
    summary["by_salience"] = accuracy_by_salience(results)
    if any(len(r.seeds) > 1 for r in results):
        # which numbers these are: an ensemble per fold, and each seed's model alone
        summary["ensemble"] = {
            str(r.test_fold): {"seeds": r.seeds, "member_accuracies": r.member_accuracies}
            for r in results
        }
    # which numbers these are: each test clip on its first window, or the mean of its windows
    windows = sum(r.test_windows or r.n_test for r in results)
    clips = sum(r.n_test for r in results)
    summary["test_time"] = {
        "clips": clips,
        "windows": windows,
        "method": (
            "mean of each clip's windows (features.window_hop_s)"
            if windows > clips
            else "one window per clip (its first audio.clip_seconds)"
        ),
    }
    summary["warnings"] = missing_class_warnings(results, class_names)
    predictions = fold_predictions(results)
    ece = expected_calibration_error(predictions)
    if ece is not None:
        summary["calibration"] = {
            "ece": ece,
            "bins": ECE_BINS,
            "clips": len(calibrated_rows(predictions)),
        }
    if ingest is not None:
        summary["ingest"] = dict(ingest)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    (out / CONFUSION_FILE).write_text(
        json.dumps(
            {
                "classes": class_names,
                "counts": counts.tolist(),
                "normalized": np.round(normalize_rows(counts), 4).tolist(),
            },
            indent=2,
        )
    )
    write_predictions(predictions, out / PREDICTIONS_FILE)
    if plots:
        (out / REPORT_FILE).write_text(
            build_report(
                predictions, summary, class_names, audio, features=features or FeatureConfig()
            ),
            encoding="utf-8",
        )
        plot_confusion_matrix(
            counts, class_names, out / CONFUSION_PLOT, title=f"{len(results)} fold(s)"
        )
        for r in results:
            plot_history(
                r.history,
                out / f"curves_fold{r.test_fold}.png",
                title=f"test fold {r.test_fold} (validation fold {r.validation_fold or 'none'})",
            )
    return summary


def fold_predictions(results: Sequence[FoldResult]) -> list[Prediction]:
    """Every test clip's out-of-fold prediction, fold by fold in the results' order (the
    rows of ``predictions.csv``); results written before file names and probabilities were
    kept give rows without them."""
    return [
        row
        for r in results
        for row in prediction_rows(
            r.test_fold,
            r.class_names,
            r.y_true,
            r.y_pred,
            file_names=r.file_names,
            salience=r.salience,
            probabilities=r.probabilities,
        )
    ]


def missing_class_warnings(results: Sequence[FoldResult], class_names: Sequence[str]) -> list[str]:
    """One warning per test fold with no clip of a class that other test folds have (a
    class its model trained on): that fold's accuracy says nothing about the class."""
    rows = {r.test_fold: np.asarray(r.confusion_matrix).sum(axis=1) for r in results}
    warnings = []
    for fold, row in rows.items():
        elsewhere = [
            i
            for i in range(len(class_names))
            if row[i] == 0 and any(other[i] > 0 for f, other in rows.items() if f != fold)
        ]
        if elsewhere:
            warnings.append(
                f"test fold {fold} has no clips of class(es) "
                f"{', '.join(class_names[i] for i in elsewhere)}: its accuracy is "
                f"over the other classes only"
            )
    return warnings


SALIENCE_NAMES = {1: "foreground", 2: "background"}


def accuracy_by_salience(results: Sequence[FoldResult]) -> dict[str, dict]:
    """Accuracy over all test examples of each salience (the study's foreground /
    background split): ``{"foreground": {"accuracy", "n"}, "background": {...}}``;
    a salience with no example (or records without salience) is left out."""
    hits: dict[int, list[bool]] = {}
    for r in results:
        for salience, true, pred in zip(r.salience, r.y_true, r.y_pred):
            hits.setdefault(int(salience), []).append(true == pred)
    return {
        SALIENCE_NAMES[s]: {"accuracy": float(np.mean(h)), "n": len(h)}
        for s, h in sorted(hits.items())
        if s in SALIENCE_NAMES
    }


def format_summary(summary: dict) -> str:
    """Human-readable table of fold accuracies and their mean / median / std."""
    ensemble = summary.get("ensemble") or {}
    lines = ["fold  accuracy" + ("  (ensemble of seeds; each seed alone)" if ensemble else "")]
    lines += [
        f"{k:>4}  {acc:8.1%}"
        + (
            "  (" + " / ".join(f"{m:.1%}" for m in ensemble[k]["member_accuracies"]) + ")"
            if k in ensemble
            else ""
        )
        for k, acc in summary["folds"].items()
    ]
    lines.append(
        f"mean {summary['mean']:.1%}  median {summary['median']:.1%}  std {summary['std']:.1%}"
    )
    test_time = summary.get("test_time") or {}
    if test_time.get("windows", 0) > test_time.get("clips", 0):
        lines.append(
            f"test-time averaging: {test_time['windows']} windows of {test_time['clips']} clips"
        )
    calibration = summary.get("calibration") or {}
    if "ece" in calibration:
        lines.append(
            f"expected calibration error {calibration['ece']:.1%} "
            f"({calibration.get('bins', 10)} bins, {calibration.get('clips', 0)} clips)"
        )
    by_salience = summary.get("by_salience") or {}
    if by_salience:
        lines.append(
            "by salience: "
            + ", ".join(
                f"{name} {v['accuracy']:.1%} ({v['n']} clips)" for name, v in by_salience.items()
            )
        )
    return "\n".join(lines)
