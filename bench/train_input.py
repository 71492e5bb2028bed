"""Streamed training input against the training step, and peak memory at 1× and 4× the data.

    .venv/bin/python bench/train_input.py [--examples 2000] [--model urbannet]

1. Input alone: examples/s of ``StreamedExamples.batches`` (read the shards, parse,
   shuffle, batch, prefetch; no model) over one epoch.
2. Training step: examples/s of the model's own ``fit`` on batches already in memory.
   The issue's target: the input at least 3× faster than the step.
3. Peak resident memory of ``train_fold`` (one epoch) in a fresh process, on a synthetic
   feature folder of N and of 4·N training examples, streamed and in memory.  The
   target: streamed peak at 4× within 1.3× of the peak at 1×.

Prints a table and writes ``bench/results/train_input.json``.  Run it with nothing else
on the machine; the synthetic folders go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_io import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_folder(root: Path, n_train: int, n_test: int = 64, shards: int = 4) -> None:
    """Folds 1 (test) and 2 (training) of random 128×128 log-mels, ``shards`` per fold."""
    import numpy as np

    from urbansound.records import encode_logmel, write_records

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    counts = {}
    for fold, n in ((1, n_test), (2, n_train)):
        per_shard = -(-n // shards)
        for s in range(shards):
            rows = range(s * per_shard, min(n, (s + 1) * per_shard))
            write_records(
                root / f"fold{fold}-{s:05d}-of-{shards:05d}.tfrecord",
                (
                    encode_logmel(
                        rng.normal(-40, 12, (128, 128)).astype(np.float32),
                        label=i % 10,
                        fold=fold,
                        file_name=f"{fold}-{i}.wav",
                    )
                    for i in rows
                ),
            )
        counts[str(fold)] = {"original": n}
    (root / "manifest.json").write_text(json.dumps({"folds": counts}))


def input_rate(folder: Path, model: str) -> float:
    from urbansound.config import config_for
    from urbansound.training_input import StreamedExamples

    config = config_for(model)
    streamed = StreamedExamples(folder, [2], kind="logmel", input_shape=(128, 128, 1))
    n = len(streamed)
    batches = streamed.batches(config, seed=0, n_classes=10, one_hot=config.train.augments_batches)
    for _ in batches.take(2):  # warm-up: graph building
        pass
    started = time.perf_counter()
    seen = sum(len(x) for x, _ in batches.as_numpy_iterator())
    assert seen == n
    return n / (time.perf_counter() - started)


def step_rate(model_name: str, n: int = 512) -> float:
    import numpy as np

    from urbansound.config import config_for
    from urbansound.models import build_model, learning_rate_schedule, make_optimizer

    t = config_for(model_name).train
    rng = np.random.default_rng(0)
    x = rng.normal(-40, 12, (n, 128, 128, 1)).astype(np.float32)
    y = rng.integers(0, 10, n)
    model = build_model(
        model_name,
        seed=0,
        band_mean=np.full(128, -40, np.float32),
        band_variance=np.full(128, 144, np.float32),
    )
    model.compile(
        optimizer=make_optimizer(
            t.optimizer, learning_rate_schedule(t.schedule, t.learning_rate, 1000), t.weight_decay
        ),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x, y, batch_size=t.batch_size, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=t.batch_size, epochs=1, verbose=0)
    return n / (time.perf_counter() - started)


PEAK_SCRIPT = """
import json, resource, sys
sys.path.insert(0, {root!r})
from urbansound.config import config_for
from urbansound.training import train_fold
config = config_for({model!r}).override(**{{"train.epochs": 1, "train.input": {mode!r}}})
train_fold({folder!r}, 1, [1, 2], config=config, out_dir={out!r})
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def peak_mb(folder: Path, mode: str, model: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        code = PEAK_SCRIPT.format(
            root=str(ROOT), model=model, mode=mode, folder=str(folder), out=out
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="training examples at 1×")
    parser.add_argument("--model", default="urbannet")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_input.json"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        one, four = Path(tmp) / "x1", Path(tmp) / "x4"
        write_folder(one, args.examples)
        write_folder(four, 4 * args.examples)
        rates = {
            "input_examples_per_s": input_rate(one, args.model),
            "step_examples_per_s": step_rate(args.model),
        }
        rates["input_over_step"] = rates["input_examples_per_s"] / rates["step_examples_per_s"]
        peaks = {
            f"{mode}_{scale}": peak_mb(folder, mode, args.model)
            for mode in ("stream", "memory")
            for scale, folder in (("1x", one), ("4x", four))
        }
    result = {
        "model": args.model,
        "examples_1x": args.examples,
        **rates,
        **{f"peak_mb_{k}": round(v) for k, v in peaks.items()},
        "stream_peak_ratio_4x_1x": peaks["stream_4x"] / peaks["stream_1x"],
        "memory_peak_ratio_4x_1x": peaks["memory_4x"] / peaks["memory_1x"],
    }
    print(f"{'what':<38} {'value':>10}")
    print(f"{'input alone, examples/s':<38} {rates['input_examples_per_s']:>10.0f}")
    print(
        f"{'training step (' + args.model + '), examples/s':<38} "
        f"{rates['step_examples_per_s']:>10.0f}"
    )
    print(f"{'input / step (target >= 3)':<38} {rates['input_over_step']:>10.1f}")
    for mode in ("stream", "memory"):
        print(
            f"{'peak RSS ' + mode + ' 1x / 4x, MB':<38} "
            f"{peaks[mode + '_1x']:>5.0f} / {peaks[mode + '_4x']:.0f}  "
            f"(ratio {peaks[mode + '_4x'] / peaks[mode + '_1x']:.2f}"
            f"{', target <= 1.3' if mode == 'stream' else ''})"
        )
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
