"""How much would more training clips help?  A learning curve from recipe-search rows.

    .venv/bin/python bench/learning_curve.py --candidates aug-bf16-quarter,aug-bf16-half,aug-bf16 \
        [--seeds 0,1,2] [--results bench/results/recipe_search.jsonl] [--at 1881] \
        [--json bench/results/learning_curve_dev.json] [--plot docs/learning_curve_dev.png]

Each candidate is one point: the same recipe trained on a share of the training folds' clips
(``recipe_search.py --train-fraction``), scored on the same whole validation folds.  A point's
accuracy is the mean over seeds of the mean over validation folds, with the std over seeds;
its size is the mean count of training clips.  The line is a least-squares fit of accuracy
on log2(clips) through the per-seed values: ``slope`` is the gain per doubling of the data.
``--at N`` reads the line at N clips.  That is an extrapolation beyond the measured
points, on these validation folds: the held-back test folds are other recordings, so read it
as the size of the effect of more data, not as a prediction of a test score.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipe_search, beside this file
from recipe_search import per_seed_accuracy

RESULTS = Path(__file__).parent / "results" / "recipe_search.jsonl"


def curve_points(
    rows: list[dict], candidates: list[str], seeds: set[int] | None = None
) -> list[dict]:
    """One point per candidate: clips (mean ``n_train``), the per-seed accuracies (each the
    mean over the validation folds that seed finished all of), their mean and std.
    ``seeds``: only those seeds' rows (every point then has the same seeds)."""
    points = []
    for name in candidates:
        mine = [r for r in rows if r["candidate"] == name and (seeds is None or r["seed"] in seeds)]
        if not mine:
            raise SystemExit(f"no rows for candidate {name!r}")
        per_seed = [accuracy for _, accuracy in sorted(per_seed_accuracy(mine).items())]
        if not per_seed:
            raise SystemExit(f"candidate {name!r}: no seed finished every validation fold")
        points.append(
            {
                "candidate": name,
                "train_fraction": mine[0].get("train_fraction", 1.0),
                "clips": statistics.mean(r["n_train"] for r in mine),
                "per_seed": per_seed,
                "mean": statistics.mean(per_seed),
                "std": statistics.stdev(per_seed) if len(per_seed) > 1 else float("nan"),
            }
        )
    return sorted(points, key=lambda p: p["clips"])


def fit_log2(points: list[dict]) -> tuple[float, float]:
    """(intercept, slope) of accuracy = intercept + slope × log2(clips), least squares over
    every per-seed value of every point."""
    x = np.concatenate([[math.log2(p["clips"])] * len(p["per_seed"]) for p in points])
    y = np.concatenate([p["per_seed"] for p in points])
    if len(set(x.tolist())) < 2:
        raise SystemExit("a learning curve needs points at two sizes or more")
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def table(points: list[dict], intercept: float, slope: float, at: int | None) -> str:
    lines = [
        "| training clips | share | candidate | per seed | mean ± std |",
        "|---|---|---|---|---|",
    ]
    for p in points:
        lines.append(
            f"| {p['clips']:.0f} | {p['train_fraction']:g} | {p['candidate']} | "
            f"{', '.join(f'{a:.3f}' for a in p['per_seed'])} | {p['mean']:.3f} ± {p['std']:.3f} |"
        )
    lines.append(
        f"\nfit: accuracy = {intercept:.3f} + {slope:.4f} × log2(clips): "
        f"{slope:+.3f} per doubling of the training clips"
    )
    if at:
        lines.append(f"read at {at} clips (extrapolated): {intercept + slope * math.log2(at):.3f}")
    return "\n".join(lines)


def plot(points: list[dict], intercept: float, slope: float, at: int | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for p in points:
        ax.scatter([p["clips"]] * len(p["per_seed"]), p["per_seed"], color="0.6", s=12)
    ax.errorbar(
        [p["clips"] for p in points],
        [p["mean"] for p in points],
        yerr=[0 if math.isnan(p["std"]) else p["std"] for p in points],
        fmt="o",
        color="C0",
        capsize=4,
        label="mean ± std over seeds",
    )
    right = max(at or 0, max(p["clips"] for p in points))
    xs = np.geomspace(min(p["clips"] for p in points), right, 50)
    ax.plot(
        xs,
        intercept + slope * np.log2(xs),
        "--",
        color="C1",
        label=f"fit: {slope:+.3f} per doubling",
    )
    if at:
        ax.axvline(at, color="0.8", lw=1)
        ax.annotate("extrapolated", (at, ax.get_ylim()[0]), ha="right", va="bottom", fontsize=8)
    ax.set_xscale("log", base=2)
    ticks = sorted({round(p["clips"]) for p in points} | ({at} if at else set()))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training clips (log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("urbannet on the real dev folds: accuracy against training clips", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", required=True, help="comma-separated, one per size")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="a recipe_search.py results file (JSONL)"
    )
    parser.add_argument(
        "--seeds", help="comma-separated: only these seeds, so that every point has the same seeds"
    )
    parser.add_argument("--at", type=int, help="read the fitted line at this many clips")
    parser.add_argument("--json", type=Path, help="write the points and the fit here")
    parser.add_argument("--plot", type=Path, help="write the curve as a PNG here")
    args = parser.parse_args(argv)
    outputs = [path.resolve() for path in (args.json, args.plot) if path is not None]
    if args.results.resolve() in outputs:  # the results are the input: never overwritten
        parser.error(f"--json / --plot would overwrite the results file {args.results}")
    if len(set(outputs)) < len(outputs):
        parser.error("--json and --plot name the same file")
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    seeds = {int(seed) for seed in args.seeds.split(",")} if args.seeds else None
    points = curve_points(rows, args.candidates.split(","), seeds)
    intercept, slope = fit_log2(points)
    print(table(points, intercept, slope, args.at))
    if args.json:
        result = {
            # relative to the repository, so the committed file names no machine's path
            "results": os.path.relpath(args.results, Path(__file__).resolve().parents[1]),
            "seeds": sorted(seeds) if seeds else "all",
            "points": points,
            "fit": {"intercept": intercept, "slope_per_doubling": slope},
        }
        if args.at:
            result["at"] = {"clips": args.at, "accuracy": intercept + slope * math.log2(args.at)}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot(points, intercept, slope, args.at, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
