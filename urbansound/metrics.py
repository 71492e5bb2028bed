"""Evaluation numbers and plots: accuracy summaries, confusion matrices, curves.

Pure NumPy, except the ``plot_*`` functions which draw with matplotlib's
non-interactive Agg backend and write PNG files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts, shape (n_classes, n_classes), int64: row = true class, column = predicted."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true {true.shape} and y_pred {pred.shape} differ in shape")
    for name, labels in (("y_true", true), ("y_pred", pred)):
        # a negative label would otherwise be counted silently in the last class
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(
                f"{name} has labels outside 0..{n_classes - 1}: "
                f"{sorted(set(labels[(labels < 0) | (labels >= n_classes)].tolist()))}"
            )
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    return cm


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix (each true class sums to 1; empty rows stay 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class, shape (n_classes,); NaN for a class with no examples."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / totals, np.nan)


def summarize_accuracies(fold_accuracies: Mapping[int, float]) -> dict:
    """``{"folds": {"<k>": acc}, "mean", "median", "std"}``; std is the population
    standard deviation (ddof=0) of the fold accuracies, as numpy computes it."""
    if not fold_accuracies:
        raise ValueError("no fold accuracies to summarise")
    values = np.array([fold_accuracies[k] for k in sorted(fold_accuracies)], dtype=np.float64)
    return {
        "folds": {str(k): float(fold_accuracies[k]) for k in sorted(fold_accuracies)},
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "std": float(values.std()),
    }


ANNOTATE_UP_TO = 20
"""Confusion-matrix plots write each cell's value up to this many classes."""


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "Confusion matrix",
) -> None:
    """Counts and row-normalised matrices side by side, as one PNG.  The figure grows
    with the number of classes; beyond :data:`ANNOTATE_UP_TO` classes the cells are not
    written in (50 classes would be 2,500 unreadable numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {n} class names")
    side = max(7.0, 0.3 * n)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 2, side))
    tick_size = 10 if n <= ANNOTATE_UP_TO else 6
    for ax, matrix, label, fmt in (
        (axes[0], cm, "counts", "d"),
        (axes[1], normalize_rows(cm), "normalised by true class", ".2f"),
    ):
        image = ax.imshow(matrix, cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=tick_size)
        ax.set_yticks(range(n), class_names, fontsize=tick_size)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} ({label})")
        threshold = matrix.max() / 2 if matrix.size else 0
        if n > ANNOTATE_UP_TO:
            continue
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                format(value, fmt),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value > threshold else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_history(
    history: Mapping[str, Sequence[float]], path: str | os.PathLike, *, title: str = ""
) -> None:
    """Accuracy and loss per epoch (train and validation) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("accuracy", "loss")):
        for name, style in ((key, "-"), (f"val_{key}", "--")):
            if name in history:
                ax.plot(range(1, len(history[name]) + 1), history[name], style, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
