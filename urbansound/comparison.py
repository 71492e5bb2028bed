"""Across runs: the study's Table 1 (mean / median / std of the fold accuracies per
model × augmentation) and its box plot of fold accuracies (the study's Fig. 25).

Pure functions over plain records; :mod:`urbansound.pipeline.compare` reads the records
from MLflow and ``urbansound compare`` prints and logs what these return (``--html``: the
per-class accuracies side by side, :func:`per_class_page`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from urbansound.metrics import summarize_accuracies

BOXPLOT_FILE = "fold_accuracy_boxplot.png"
TABLE_FILE = "comparison.txt"
ROWS_FILE = "comparison.json"
HTML_FILE = "comparison.html"
"""The files a comparison writes (``urbansound compare``, a study's last task): the table,
its rows as JSON, the box plot and the per-class page."""


@dataclass(frozen=True)
class RunAccuracies:
    """One pipeline run's fold accuracies (fractions in 0..1) and what it was."""

    run_id: str
    model: str
    augmentation: str  # "none", or the deformations joined by "+"
    fold_accuracies: Mapping[int, float]
    name: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)
    # accuracy (recall, 0..1) of each class over every test fold, in label order
    per_class: Mapping[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``model + augmentation`` as the table's and the plot's row label."""
        return self.model if self.augmentation == "none" else f"{self.model} + {self.augmentation}"


STUDY_TABLE: tuple[tuple[str, float, float, float], ...] = (
    ("study: baseline (SB-CNN)", 0.562, 0.545, 0.052),
    ("study: improved", 0.694, 0.69, 0.024),
    ("study: baseline + augmentation", 0.673, 0.68, 0.018),
)
"""The thesis' 10-fold figures (SEED.md), printed under the table for reference."""


def comparison_rows(runs: Sequence[RunAccuracies]) -> list[dict]:
    """One row per run, best mean first: label, run id, folds, mean, median, std (0..1)."""
    rows = []
    for run in runs:
        if not run.fold_accuracies:
            continue
        summary = summarize_accuracies(run.fold_accuracies)
        rows.append(
            {
                "label": run.label,
                "run_id": run.run_id,
                "name": run.name,
                "model": run.model,
                "augmentation": run.augmentation,
                "folds": sorted(int(k) for k in run.fold_accuracies),
                "mean": summary["mean"],
                "median": summary["median"],
                "std": summary["std"],
            }
        )
    return sorted(rows, key=lambda row: -row["mean"])


def format_comparison(rows: Sequence[dict], *, study: bool = True) -> str:
    """The study's Table 1 as text: one line per run, then the study's own rows."""
    width = max([len(r["label"]) for r in rows] + [len(s[0]) for s in STUDY_TABLE] + [5])
    lines = [f"{'model':<{width}}  {'folds':<12} {'mean':>6} {'median':>7} {'std':>6}  run"]
    for r in rows:
        folds = ",".join(str(f) for f in r["folds"])
        lines.append(
            f"{r['label']:<{width}}  {folds:<12} {r['mean']:6.1%} {r['median']:7.1%} "
            f"{r['std']:6.1%}  {r['run_id']}"
        )
    if study:
        for label, mean, median, std in STUDY_TABLE:
            lines.append(
                f"{label:<{width}}  {'1-10':<12} {mean:6.1%} {median:7.1%} {std:6.1%}  SEED.md"
            )
    return "\n".join(lines)


def per_class_page(runs: Sequence[RunAccuracies]) -> str:
    """The per-class accuracy of ``runs`` side by side as one self-contained HTML page (the
    style of :func:`urbansound.report.build_report`): a column per run (best mean first), a
    row per class (in the order the runs name them), the mean fold accuracy last."""
    from urbansound.report import comparison_page

    rows = comparison_rows(runs)
    by_id = {r.run_id: r for r in runs}
    ordered = [by_id[row["run_id"]] for row in rows]
    classes: list[str] = []
    for run in ordered:
        classes += [name for name in run.per_class if name not in classes]
    return comparison_page(
        [f"{r.label} ({r.run_id[:8]})" for r in ordered],
        classes,
        [r.per_class for r in ordered],
        [row["mean"] for row in rows],
    )


def plot_fold_boxes(
    runs: Sequence[RunAccuracies],
    path: str | os.PathLike,
    *,
    title: str = "Test-fold accuracy per run",
) -> None:
    """Box plot of each run's fold accuracies (one box per run, best mean on top), with
    the individual folds drawn as points; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r.fold_accuracies]
    if not runs:
        raise ValueError("no run with fold accuracies to plot")
    runs = sorted(runs, key=lambda r: np.mean(list(r.fold_accuracies.values())))
    data = [[100 * v for v in r.fold_accuracies.values()] for r in runs]
    labels = [f"{r.label}\n{r.run_id[:8]}" for r in runs]
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.7 * len(runs)))
    ax.boxplot(data, vert=False, widths=0.5)
    for i, values in enumerate(data, start=1):
        ax.plot(values, np.full(len(values), i), "o", color="tab:blue", alpha=0.6, markersize=4)
    ax.set_yticks(range(1, len(runs) + 1), labels, fontsize=8)
    ax.set_xlabel("test-fold accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
