"""Training cost of every model on this machine: ms per example (a 128×128 log-mel, or 3 s
of 16 kHz waveform for conv1d) per epoch, and the
projected wall time of one test fold with the model's own recipe.

    .venv/bin/python bench/train_speed.py [--examples 512] [--train-clips 1600] [--models a,b] [--precisions float32,mixed_bfloat16]

Runs each model's real training step (its optimiser, its batch size, the input path
train_fold takes: in-memory arrays, or augmented batches when the recipe augments) on random log-mels after one warm-up epoch, so the
numbers include Keras' per-step overhead but not data loading.  Run it with nothing
else on the machine.  The issue's budget: one test fold of the real dev data (≈ 1,600
training clips) in ≤ 30 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(model_name: str, n_examples: int, precision: str = "float32") -> dict:
    import numpy as np

    from urbansound.config import config_for
    from urbansound.features import input_shape
    from urbansound.models import build_model, learning_rate_schedule, make_optimizer
    from urbansound.training_input import AugmentedBatches

    config = config_for(model_name)
    t = config.train
    rng = np.random.default_rng(0)
    shape = input_shape(config)  # (128, 128, 1) log-mels, or (48000, 1) waveforms
    logmel = config.input_kind == "logmel"
    x = (
        rng.normal(-40, 12, (n_examples, *shape))
        if logmel
        else rng.normal(0, 0.1, (n_examples, *shape))
    ).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n_examples)]
    model = build_model(
        model_name,
        seed=0,
        input_shape=shape,
        band_mean=np.full(128, -40, np.float32) if logmel else None,
        band_variance=np.full(128, 144, np.float32) if logmel else None,
    )
    from urbansound.precision import mixed_copy, resolve_precision

    resolved = resolve_precision(precision)
    if resolved != "float32":
        model = mixed_copy(model, resolved)  # what train_fold trains (urbansound.precision)
    model.compile(
        optimizer=make_optimizer(
            t.optimizer, learning_rate_schedule(t.schedule, t.learning_rate, 1000), t.weight_decay
        ),
        loss="categorical_crossentropy",
    )
    # the input path train_fold takes: augmented batches only when the recipe augments
    augmenting = t.augments_batches
    data = (
        dict(x=AugmentedBatches(x, y, config, seed=0, fill=np.full(128, -40, np.float32)))
        if augmenting
        else dict(x=x, y=y, batch_size=t.batch_size, shuffle=True)
    )
    model.fit(**data, epochs=1, verbose=0)  # warm-up: graph tracing, XLA
    started = time.perf_counter()
    model.fit(**data, epochs=2, verbose=0)
    ms = 1000 * (time.perf_counter() - started) / (2 * n_examples)
    return {
        "model": model_name,
        "precision": resolved,
        "ms_per_example_epoch": round(ms, 2),
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "members": len(t.member_seeds),  # train.ensemble: models trained per fold
    }


def main(argv=None) -> int:
    from urbansound.models import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=512, help="random examples timed")
    parser.add_argument(
        "--train-clips",
        type=int,
        default=1600,
        help="training clips of the fold the projection is for",
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--precisions",
        default="float32",
        help="train.precision values to time, e.g. float32,mixed_bfloat16 (flat models only)",
    )
    parser.add_argument(
        "--json",
        default="bench/results/train_speed.json",
        help="where to write results (default bench/results/train_speed.json)",
    )
    args = parser.parse_args(argv)
    rows = []
    print(
        f"{'model':<15} {'precision':<15} {'ms/example/epoch':>17} {'epochs':>6} {'models':>6} "
        f"{'one fold of ' + str(args.train_clips) + ' clips':>24}"
    )
    for name in args.models.split(","):
        for precision in args.precisions.split(","):
            try:
                row = measure(name, args.examples, precision)
            except ValueError as error:  # a nested model (conv1d) trains in float32 only
                print(f"{name:<15} {precision:<15} skipped: {error}", flush=True)
                continue
            row["projected_fold_minutes"] = round(
                row["ms_per_example_epoch"]
                * args.train_clips
                * row["epochs"]
                * row["members"]
                / 60_000,
                1,
            )
            rows.append(row)
            print(
                f"{name:<15} {row['precision']:<15} {row['ms_per_example_epoch']:>17.2f} "
                f"{row['epochs']:>6} {row['members']:>6} {row['projected_fold_minutes']:>20.1f} min",
                flush=True,
            )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "train_clips": args.train_clips,
                "examples_timed": args.examples,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
