"""Size and per-window inference time of a model as Keras, TFLite float32 and TFLite int8.

    .venv/bin/python bench/export_size.py                       # urbannet, untrained (seed 0)
    .venv/bin/python bench/export_size.py --model M --clips /tmp/us8k/audio/fold1 --n-clips 200

MODEL is anything ``urbansound predict`` takes.  Size and speed do not depend on the
weights; agreement (top class, largest probability difference against Keras) is measured
only with ``--clips``, on their windows, the int8 file being calibrated on the built-in
demo data (``--calibrate-on-clips``: on the first clips instead, which are then also in
the comparison).  Times: batch of one window (what ``urbansound listen`` runs), median of
``--repeats`` calls after 3 warm-up calls, the formats timed in turns, one process,
default threads.  Prints a table
and writes bench/results/export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_ms(fns: dict, x, repeats: int) -> dict:
    """Median ms per call of each function on ``x``, timed in turns (one call of each per
    round) so that a change in the machine's load affects them alike."""
    for fn in fns.values():
        for _ in range(3):
            fn(x)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(v) * 1000) for name, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model predict takes (default: urbannet, untrained)")
    ap.add_argument("--clips", nargs="+", help="audio files/folders for the agreement")
    ap.add_argument("--n-clips", type=int, default=100, help="at most this many clips")
    ap.add_argument("--calibrate-on-clips", action="store_true")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "export.json"))
    args = ap.parse_args(argv)

    from urbansound.config import Config
    from urbansound.export import (
        TFLiteModel,
        agreement,
        batched,
        calibration_inputs,
        demo_calibration_inputs,
        export_tflite,
    )
    from urbansound.models import build_model, trainable_parameter_count
    from urbansound.predict import find_audio_files, keras_classifier

    if args.model:
        from urbansound.pipeline.model_source import load_model

        loaded = load_model(args.model)
        model, config, name = loaded.model, loaded.config, args.model
    else:
        config = Config()
        model = build_model(
            "urbannet",
            seed=0,
            band_mean=np.full(128, -40.0, np.float32),
            band_variance=np.full(128, 400.0, np.float32),
        )
        name = "urbannet (untrained, seed 0)"
    clips = find_audio_files(args.clips)[: args.n_clips] if args.clips else []
    x_eval = (
        calibration_inputs(clips, config, max_windows=10 * len(clips)).inputs if clips else None
    )
    cal = (
        calibration_inputs(clips, config)
        if clips and args.calibrate_on_clips
        else demo_calibration_inputs(config)
    )
    keras_fn = keras_classifier(model)
    x1 = (x_eval if x_eval is not None else cal.inputs)[:1]
    p_keras = batched(keras_fn, x_eval) if x_eval is not None else None
    rows = [{"format": "keras (.keras, float32)", "size_kb": None}]
    fns = {0: keras_fn}
    with tempfile.TemporaryDirectory() as tmp:
        for int8 in (False, True):
            result = export_tflite(
                model,
                config,
                Path(tmp) / ("q.tflite" if int8 else "f.tflite"),
                int8=int8,
                calibration=cal if int8 else None,
            )
            tfl = TFLiteModel(result.tflite_path)
            row = {
                "format": f"tflite {'int8' if int8 else 'float32'}",
                "size_kb": result.size_bytes / 1024,
            }
            if p_keras is not None:
                row["agreement"] = agreement(p_keras, batched(tfl, x_eval))
            fns[len(rows)] = tfl
            rows.append(row)
        for i, ms in median_ms(fns, x1, args.repeats).items():
            rows[i]["ms_per_window"] = ms
    if args.model and Path(args.model).exists():
        from urbansound.pipeline.model_source import find_local_model

        rows[0]["size_kb"] = find_local_model(args.model).stat().st_size / 1024
    report = {
        "model": name,
        "parameters": trainable_parameter_count(model),
        "calibration": f"{len(cal.inputs)} windows from {cal.source}",
        "eval_windows": None if x_eval is None else int(len(x_eval)),
        "eval_clips": len(clips),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
    }
    print(f"{name}: {report['parameters']:,} parameters; int8 calibration: {report['calibration']}")
    if x_eval is not None:
        print(f"agreement with Keras on {len(x_eval)} windows of {len(clips)} clips")
    print(f"{'format':<24} {'size KB':>9} {'ms/window':>10} {'same top class':>15} {'max |dp|':>9}")
    for r in rows:
        a = r.get("agreement")
        size = f"{r['size_kb']:,.0f}" if r["size_kb"] else "-"
        top1 = f"{a['top1']:.1%}" if a else "-"
        diff = f"{a['max_abs_diff']:.3f}" if a else "-"
        print(f"{r['format']:<24} {size:>9} {r['ms_per_window']:>10.2f} {top1:>15} {diff:>9}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
