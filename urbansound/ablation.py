"""The deformation ablation: which deformation family helps which class, and the
per-class policy that follows (a leaf of the study: numbers in, tables, a heatmap and
``augment.per_class`` entries out).

``urbansound study deformations`` trains one model without augmentation and once per
family of :data:`urbansound.deformations.DEFORMATION_FAMILIES`.  Every training keeps
the predictions of its **validation fold** (original audio of a non-test fold, drawn with
the seed: :func:`urbansound.folds.split_folds`), and only those choose the policy:

1. per configuration, each class's validation recall, pooled over its trainings (one
   per test fold): correct / validation clips of the class (:func:`pooled_counts`);
2. per class and family, the change in that recall the family brings over no
   augmentation (:func:`recall_deltas`);
3. the rule (:func:`choose_policy`): a class gets every family whose delta is greater
   than ``margin`` (default :data:`DEFAULT_MARGIN`, 0: strictly better); a class whose
   deltas are all <= margin, or that has no validation clip, gets none;
4. the policy as ``augment.per_class`` entries, one per class (:func:`per_class_entries`),
   written as a JSON list that ``urbansound run --set augment.per_class=@FILE`` reads.

The test folds report the result (the policy's configuration is trained and tested like
every other) but never reach steps 1–4.  Nothing here imports kfp or mlflow.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from urbansound.deformations import DEFORMATION_FAMILIES

DEFAULT_MARGIN = 0.0
"""A family is chosen for a class when its validation recall delta is above this."""

FAMILY_SHORT = {
    "time_stretch": "TS",
    "pitch_shift_1": "PS1",
    "pitch_shift_2": "PS2",
    "drc": "DRC",
    "background_noise": "BG",
}
"""The families' names in Salamon & Bello 2017 (the heatmap's columns)."""

RULE = (
    "a class gets every deformation family whose validation recall delta (pooled over the "
    "trainings' validation folds, against no augmentation) is > {margin:g}; none otherwise"
)

DELTAS_CSV = "recall_deltas.csv"
DELTAS_MD = "recall_deltas.md"
HEATMAP_FILE = "recall_deltas_heatmap.png"
POLICY_FILE = "per_class_policy.json"
RECORD_FILE = "ablation.json"
TEST_FILE = "policy_test_accuracy.txt"

Counts = dict[str, list[int]]
"""``{class: [correct, total]}``."""


def pooled_counts(
    pairs: Iterable[tuple[Sequence[int], Sequence[int]]], class_names: Sequence[str]
) -> Counts:
    """Correct and total validation clips per class, over every (y_true, y_pred) pair
    (one per training)."""
    counts = {name: [0, 0] for name in class_names}
    for y_true, y_pred in pairs:
        if len(y_true) != len(y_pred):
            raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
        for t, p in zip(y_true, y_pred):
            name = class_names[int(t)]
            counts[name][0] += int(t) == int(p)
            counts[name][1] += 1
    return counts


def recall(counts: Mapping[str, Sequence[int]]) -> dict[str, float | None]:
    """Each class's recall (None: no clip of it)."""
    return {k: (c / n if n else None) for k, (c, n) in counts.items()}


def recall_deltas(
    baseline: Mapping[str, Sequence[int]], families: Mapping[str, Mapping[str, Sequence[int]]]
) -> dict[str, dict[str, float | None]]:
    """``{class: {family: recall with the family - recall without}}`` (None where either
    has no clip of the class), classes in the baseline's order, families in ``families``'."""
    base = recall(baseline)
    out: dict[str, dict[str, float | None]] = {}
    for name, b in base.items():
        row: dict[str, float | None] = {}
        for family, counts in families.items():
            r = recall(counts).get(name)
            row[family] = None if b is None or r is None else r - b
        out[name] = row
    return out


def choose_policy(
    deltas: Mapping[str, Mapping[str, float | None]], margin: float = DEFAULT_MARGIN
) -> dict[str, tuple[str, ...]]:
    """The rule: each class gets the families whose delta is > ``margin``, in the
    families' order (a small tolerance keeps float noise out: 1/3 - 1/3 is never > 0)."""
    return {
        name: tuple(f for f, d in row.items() if d is not None and d > margin + 1e-9)
        for name, row in deltas.items()
    }


def per_class_entries(
    policy: Mapping[str, Sequence[str]], families: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, ...]:
    """``augment.per_class`` entries of a policy: ``"<class>=<deformation>,..."`` with
    every deformation of each chosen family, ``"<class>="`` for a class that gets none."""
    families = DEFORMATION_FAMILIES if families is None else families
    return tuple(
        f"{name}=" + ",".join(d for f in chosen for d in families[f])
        for name, chosen in policy.items()
    )


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def deltas_csv(
    deltas: Mapping[str, Mapping[str, float | None]],
    baseline: Mapping[str, float | None],
    policy: Mapping[str, Sequence[str]],
) -> str:
    """The table as CSV: class, the baseline's validation recall, one delta per family,
    the families chosen (``+``-joined)."""
    families = list(next(iter(deltas.values()), {}))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", "recall_none", *families, "chosen"])
    for name, row in deltas.items():
        b = baseline.get(name)
        writer.writerow(
            [
                name,
                "" if b is None else f"{b:.3f}",
                *(_cell(row[f]) for f in families),
                "+".join(policy.get(name, ())),
            ]
        )
    return buffer.getvalue()


def deltas_markdown(
    deltas: Mapping[str, Mapping[str, float | None]],
    baseline: Mapping[str, float | None],
    policy: Mapping[str, Sequence[str]],
) -> str:
    """The table as markdown; a chosen cell is bold."""
    families = list(next(iter(deltas.values()), {}))
    head = ["class", "recall (none)", *(FAMILY_SHORT.get(f, f) for f in families), "policy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in deltas.items():
        b = baseline.get(name)
        cells = [
            f"**{_cell(row[f])}**" if f in policy.get(name, ()) else _cell(row[f]) for f in families
        ]
        chosen = ", ".join(FAMILY_SHORT.get(f, f) for f in policy.get(name, ())) or "none"
        lines.append(
            "| " + " | ".join([name, "" if b is None else f"{b:.3f}", *cells, chosen]) + " |"
        )
    return "\n".join(lines)


def plot_heatmap(
    deltas: Mapping[str, Mapping[str, float | None]],
    policy: Mapping[str, Sequence[str]],
    path: str | os.PathLike,
    *,
    title: str = "Validation recall change per class and deformation family",
) -> None:
    """A class × family heatmap of the deltas (red: the family hurts the class, blue: it
    helps; a chosen cell is framed), written as PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    classes = list(deltas)
    families = list(next(iter(deltas.values()), {}))
    values = np.array(
        [[np.nan if deltas[c][f] is None else deltas[c][f] for f in families] for c in classes],
        dtype=float,
    )  # (class, family)
    limit = max(0.05, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.05)
    fig, ax = plt.subplots(figsize=(1.3 * len(families) + 3, 0.45 * len(classes) + 1.8))
    image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(families)), [FAMILY_SHORT.get(f, f) for f in families])
    ax.set_yticks(range(len(classes)), classes)
    for i, c in enumerate(classes):
        for j, f in enumerate(families):
            text = "–" if np.isnan(values[i, j]) else f"{values[i, j]:+.2f}"
            dark = not np.isnan(values[i, j]) and abs(values[i, j]) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize=8, c="w" if dark else "k")
            if f in policy.get(c, ()):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="black"))
    fig.colorbar(image, ax=ax, label="recall delta (validation folds)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_ablation(
    folder: str | os.PathLike,
    *,
    model: str,
    class_names: Sequence[str],
    baseline: Mapping[str, Sequence[int]],
    families: Mapping[str, Mapping[str, Sequence[int]]],
    sources: Sequence[Mapping],
    margin: float = DEFAULT_MARGIN,
) -> dict:
    """Compute deltas and policy from the validation counts and write the table (CSV,
    markdown), the heatmap, the policy file and the whole record into ``folder``.

    ``sources``: one mapping per training whose validation predictions were counted
    (configuration, test fold, validation fold, training folds), kept in the record so
    that anyone can check no test fold chose the policy.  Returns the record.

    Raises
    ------
    ValueError
        a source has no validation fold, or its validation fold is its test fold.
    """
    for s in sources:
        v = s.get("validation_fold")
        if v is None or v == s["test_fold"] or v in s.get("train_folds", ()):
            raise ValueError(
                f"{s.get('configuration', '?')}, test fold {s['test_fold']}: no validation "
                f"fold apart from the test and training folds ({v}); the ablation needs "
                f"train.validation='fold'"
            )
    deltas = recall_deltas(baseline, families)
    policy = choose_policy(deltas, margin)
    entries = per_class_entries(policy)
    base_recall = recall(baseline)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DELTAS_CSV).write_text(deltas_csv(deltas, base_recall, policy))
    (folder / DELTAS_MD).write_text(deltas_markdown(deltas, base_recall, policy) + "\n")
    plot_heatmap(
        deltas,
        policy,
        folder / HEATMAP_FILE,
        title=f"{model}: validation recall change per class and deformation family",
    )
    (folder / POLICY_FILE).write_text(json.dumps(list(entries), indent=1) + "\n")
    record = {
        "model": model,
        "rule": RULE.format(margin=margin),
        "margin": margin,
        "class_names": list(class_names),
        "families": {f: list(DEFORMATION_FAMILIES[f]) for f in families},
        "validation_counts": {"none": dict(baseline), **{f: dict(c) for f, c in families.items()}},
        "deltas": deltas,
        "policy": {k: list(v) for k, v in policy.items()},
        "per_class": list(entries),
        "sources": [dict(s) for s in sources],
    }
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=1))
    return record


def format_policy_test(rows: Sequence[Mapping], model: str, names: Sequence[str]) -> str:
    """The test accuracy (mean / median / std over the test folds) of a model's
    configurations ``names`` (no augmentation, all deformations, the per-class policy),
    from the comparison's rows."""
    by_name = {r["name"]: r for r in rows}
    width = max(len(n) for n in names) + 2
    lines = [
        f"{model}: the per-class policy (chosen on validation folds) on the test folds",
        f"  {'configuration':<{width}}{'folds':<12} {'mean':>6} {'median':>7} {'std':>6}",
    ]
    for name in names:
        r = by_name.get(name)
        if r is None:
            lines.append(f"  {name:<{width}}(no result)")
            continue
        folds = ",".join(str(f) for f in r["folds"])
        lines.append(
            f"  {name:<{width}}{folds:<12} {r['mean']:6.1%} {r['median']:7.1%} {r['std']:6.1%}"
        )
    return "\n".join(lines)
