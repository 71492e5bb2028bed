"""``urbansound models``, ``predict``, ``export`` and ``listen``: the models there are, and
what a trained model does."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from urbansound.pipeline.commands.options import (
    EXIT_OK,
    EXIT_USER,
    MODEL_STORE_HELP,
    Command,
    add_model_source,
    add_tracking_uri,
    load_checked_model,
)
from urbansound.pipeline.commands.output import quiet_libraries, terminal_stderr


def add_models_parser(sub, d) -> None:
    models = sub.add_parser(
        "models",
        help="list the models with their parameters and recipe",
        description="Every model --model accepts: trainable parameters, input (a 128×128 "
        "log-mel or the 16 kHz waveform's samples), optimiser, epochs, models trained per "
        "fold (an ensemble of seeds when > 1), protocol.",
    )
    models.add_argument("--json", action="store_true", help="one JSON object per model")


@quiet_libraries("models")
def cmd_models(args) -> int:
    import json

    from urbansound.config import config_for
    from urbansound.features import input_shape
    from urbansound.models import MODELS, build_model, trainable_parameter_count

    rows: list[dict[str, Any]] = []  # JSON objects, one per model
    for name, spec in MODELS.items():
        shape = input_shape(config_for(name))[:-1]  # without the channel axis
        rows.append(
            {
                "name": name,
                "parameters": trainable_parameter_count(build_model(name)),
                "input": spec.input_kind,
                "input_shape": list(shape),
                "ensemble": spec.ensemble,
                "optimizer": spec.optimizer,
                "learning_rate": spec.learning_rate,
                "schedule": spec.schedule,
                "epochs": spec.epochs,
                "validation": spec.validation,
                "study": spec.study,
                "summary": spec.summary,
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    print(
        f"{'model':<15} {'parameters':>10}  {'input':<16} {'optimiser':<9} {'epochs':>6} "
        f"{'models/fold':>11}  protocol"
    )
    for r in rows:
        protocol = (
            "validation fold + early stopping"
            if r["validation"] == "fold"
            else f"fixed {r['schedule'].replace('_', '-')} schedule"
        )
        shown_input = f"{r['input']} {'×'.join(str(n) for n in r['input_shape'])}"
        print(
            f"{r['name']:<15} {r['parameters']:>10,}  {shown_input:<16} "
            f"{r['optimizer']:<9} {r['epochs']:>6} {r['ensemble']:>11}  {protocol}"
        )
        print(f"{'':<15} {r['summary']}")
    return EXIT_OK


def add_predict_parser(sub, d) -> None:
    from urbansound.predict import DEFAULT_HOP_SECONDS

    p = sub.add_parser(
        "predict",
        help="classify recordings of any length with a trained model",
        description="Classify audio files (any format ingest reads; folders are searched "
        "recursively) with a trained model: per file the class and the top-3 "
        "probabilities, the mean over sliding 3 s windows. Long files are read "
        "in blocks, never whole.",
    )
    add_model_source(
        p,
        "a model.keras file, a folder holding one (a pipeline output), or an "
        "MLflow URI: runs:/<run>/model, models:/<id>, models:/<name>@<alias>",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument(
        "--hop",
        type=float,
        default=DEFAULT_HOP_SECONDS,
        metavar="SECONDS",
        help=f"seconds between window starts, > 0 and <= 3 "
        f"(default {DEFAULT_HOP_SECONDS:g}: windows overlap by half)",
    )
    p.add_argument(
        "--timeline",
        action="store_true",
        help="also a row per window (start, end, class, probability) and the events: "
        "consecutive windows of one class merged",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    add_tracking_uri(p, MODEL_STORE_HELP)


@quiet_libraries("predict")
def cmd_predict(args) -> int:
    """Exit 0 when at least one file was classified; 2 when the model cannot be used or
    every file failed (each failure is one line: the file and the reason)."""
    import json

    from urbansound.audio import AudioError
    from urbansound.predict import find_audio_files, keras_classifier, predict_file

    loaded = load_checked_model(args.model, args.tracking_uri, hop=args.hop)
    print(
        f"model {args.model}; configuration: {loaded.config_source}",
        file=terminal_stderr() if args.json else sys.stdout,
        flush=True,
    )
    classify = keras_classifier(loaded.model)

    def failed(path, reason: str) -> None:
        print(f"urbansound predict: error: {path}: {reason}", file=terminal_stderr(), flush=True)
        if args.json:
            print(json.dumps({"file": str(path), "error": reason}), flush=True)

    done = 0
    for raw in args.paths:
        if Path(raw).is_dir() and not find_audio_files([raw]):
            failed(raw, "no audio files in this folder")
    for path in find_audio_files(args.paths):
        try:
            result = predict_file(path, classify, config=loaded.config, hop_seconds=args.hop)
        except AudioError as exc:
            failed(path, exc.reason)
            continue
        done += 1
        if args.json:
            print(json.dumps(result.to_dict(timeline=args.timeline)), flush=True)
            continue
        top = result.top()
        print(
            f"{path}: {top[0][0]} {top[0][1]:.3f}  ("
            + ", ".join(f"{c} {p:.3f}" for c, p in top[1:])
            + f")  {result.duration_s:.1f} s, {len(result.starts_s)} window(s)",
            flush=True,
        )
        if args.timeline:
            rows = result.to_dict(timeline=True)
            print(f"  {'start s':>9} {'end s':>9}  {'class':<17} probability")
            for r in rows["timeline"]:
                print(
                    f"  {r['start_s']:9.2f} {r['end_s']:9.2f}  {r['class']:<17} "
                    f"{r['probability']:.3f}"
                )
            print("  events:")
            for r in rows["events"]:
                print(
                    f"  {r['start_s']:9.2f} {r['end_s']:9.2f}  {r['class']:<17} "
                    f"{r['probability']:.3f}  ({r['windows']} window(s))"
                )
    return EXIT_OK if done else EXIT_USER


def add_export_parser(sub, d) -> None:
    p = sub.add_parser(
        "export",
        help="convert a trained model for edge devices (TensorFlow Lite)",
        description="Convert a trained model to a TensorFlow Lite file (float32, or int8 "
        "with --int8) and write beside it a JSON file with the front end an "
        "edge device must reproduce (the configuration: sample rate, window, "
        "log-mel settings), the class names and the input/output tensors "
        "(shape, dtype, int8 scale and zero point).",
    )
    add_model_source(
        p, "what predict takes: a model.keras file, a folder holding one, or an MLflow URI"
    )
    p.add_argument(
        "--format", choices=("tflite",), default="tflite", help="output format (default tflite)"
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="full-integer post-training quantisation (int8 weights, activations, "
        "input and output), calibrated on real windows",
    )
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="PATH",
        help="with --int8: audio files or folders like the sounds the model will "
        "hear (default: the built-in synthetic demo data)",
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="OUT",
        help="the .tflite file to write, or a folder (default ./model.tflite, "
        "./model_int8.tflite with --int8); OUT with .json is written beside it",
    )
    add_tracking_uri(p, MODEL_STORE_HELP)


@quiet_libraries("export")
def cmd_export(args) -> int:
    """Exit 0 with the file written; 2 when the model, the calibration data or OUT cannot
    be used (one line)."""
    from urbansound.export import (
        TFLiteModel,
        agreement,
        batched,
        calibration_inputs,
        check_export_outputs,
        demo_calibration_inputs,
        export_paths,
        export_tflite,
    )
    from urbansound.pipeline.model_source import find_local_model, is_mlflow_uri
    from urbansound.predict import find_audio_files, keras_classifier
    from urbansound.training import CONFIG_FILE

    if args.calibration and not args.int8:
        print(
            "urbansound export: error: --calibration is used only with --int8",
            file=terminal_stderr(),
        )
        return EXIT_USER
    out = args.out or ("model_int8.tflite" if args.int8 else "model.tflite")
    # refused before the model is even loaded: never write over an input or a stranger's file
    tflite_path, json_path = export_paths(out, int8=args.int8)
    inputs = []
    if not is_mlflow_uri(args.model):
        model_path = find_local_model(args.model)
        inputs += [
            ("MODEL", model_path),
            (f"MODEL's {CONFIG_FILE}", model_path.parent / CONFIG_FILE),
        ]
    inputs += [("--calibration", p) for p in find_audio_files(args.calibration or [])]
    check_export_outputs(tflite_path, json_path, inputs)
    loaded = load_checked_model(args.model, args.tracking_uri)
    print(f"model {args.model}; configuration: {loaded.config_source}", flush=True)
    calibration = None
    if args.int8:
        if args.calibration:
            calibration = calibration_inputs(args.calibration, loaded.config)
        else:
            calibration = demo_calibration_inputs(loaded.config)
        print(
            f"int8 calibration: {len(calibration.inputs)} windows from {calibration.source}"
            + (
                ""
                if args.calibration
                else "; give --calibration with recordings like the ones the model will hear"
            ),
            flush=True,
        )
    result = export_tflite(
        loaded.model, loaded.config, out, int8=args.int8, calibration=calibration, source=args.model
    )
    print(
        f"wrote {result.tflite_path} ({result.size_bytes / 1024:,.0f} KB, "
        f"{result.metadata['quantization']}) and {result.json_path}",
        flush=True,
    )
    if calibration is not None:
        # a check that the quantised model still ranks like the original, on the
        # calibration windows (seen by the quantiser: an optimistic figure)
        x = calibration.inputs
        agree = agreement(
            batched(keras_classifier(loaded.model), x), batched(TFLiteModel(result.tflite_path), x)
        )
        print(
            f"int8 vs Keras on the {agree['n']} calibration windows: same top class "
            f"{agree['top1']:.1%}, largest probability difference {agree['max_abs_diff']:.3f}",
            flush=True,
        )
    return EXIT_OK


def add_listen_parser(sub, d) -> None:
    from urbansound.predict import DEFAULT_HOP_SECONDS

    p = sub.add_parser(
        "listen",
        help="classify a live stream (raw PCM on stdin, or a file at real time)",
        description="Classify a continuous stream window by window, printing each 3 s "
        "window as soon as its last sample has arrived: start and end (s), "
        "class, probability and latency (ms from the arrival of the window's "
        "last sample to the line). Ctrl-C or the end of the stream prints a "
        "summary (windows, mean and 95th-percentile latency, CPU share).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              arecord -q -f S16_LE -c1 -r 22050 | urbansound listen MODEL
              urbansound listen MODEL --input street.flac        # played at real time
              sox street.wav -t raw -e signed -b 16 -c 1 -r 44100 - | urbansound listen MODEL --rate 44100
            """),
    )
    add_model_source(
        p, "what predict takes: a model.keras file, a folder holding one, or an MLflow URI"
    )
    p.add_argument(
        "--input",
        default="-",
        metavar="FILE|-",
        help="an audio file (any format predict reads), or - for raw little-endian "
        "16-bit mono PCM on stdin (default -)",
    )
    p.add_argument(
        "--rate",
        type=int,
        default=None,
        metavar="HZ",
        help="sample rate of the PCM on stdin (default 22050; a file's own header gives its rate)",
    )
    p.add_argument(
        "--hop",
        type=float,
        default=DEFAULT_HOP_SECONDS,
        metavar="SECONDS",
        help=f"seconds between window starts, > 0 and <= 3 (default {DEFAULT_HOP_SECONDS:g})",
    )
    p.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="play a file at the pace of a recording (default), or as fast as it "
        "is classified (--no-realtime); stdin comes at its writer's pace",
    )
    add_tracking_uri(p, MODEL_STORE_HELP)


@quiet_libraries("listen")
def cmd_listen(args) -> int:
    """Exit 0 at the end of the stream or on Ctrl-C; 2 when the model or the input cannot
    be used, or the stream ended inside a sample (after the summary)."""
    from urbansound.files import regular_file_problem
    from urbansound.live import (
        LIVE_BLOCK_SECONDS,
        PCM_SAMPLE_BYTES,
        STDIN,
        ListenStats,
        check_rate,
        classify_stream,
        file_blocks,
        pcm_blocks,
        prefetch,
        resample_blocks,
        stream_windows,
        timed_reads,
        warm_up,
    )
    from urbansound.predict import keras_classifier

    stdin = args.input == "-"
    if not stdin and args.rate is not None:
        print(
            f"urbansound listen: error: --rate is for raw PCM on stdin (--input -); "
            f"{args.input}'s header gives its rate",
            file=terminal_stderr(),
        )
        return EXIT_USER
    problem = None if stdin else regular_file_problem(args.input)
    if problem:  # os.stat only: a FIFO is never opened here
        hint = (
            "; pipe raw PCM to stdin instead (--input -)"
            if problem.startswith("not a regular file")
            else ""
        )
        print(f"urbansound listen: error: {args.input}: {problem}{hint}", file=terminal_stderr())
        return EXIT_USER
    rate = check_rate(22050 if args.rate is None else args.rate)
    if stdin and sys.stdin.isatty():
        print(
            "urbansound listen: error: stdin is a terminal: pipe raw PCM into it "
            "(arecord -f S16_LE -c1 -r 22050 | urbansound listen MODEL) or give --input FILE",
            file=terminal_stderr(),
        )
        return EXIT_USER
    pcm_info: dict = {}
    stop = threading.Event()  # Ctrl-C while listening (below)
    if stdin:
        # read (and time) the pipe from now on, while TensorFlow loads: a writer such as
        # arecord must never block on a full pipe and drop audio
        fd = sys.stdin.fileno()
        chunks = prefetch(
            timed_reads(
                lambda n: os.read(fd, n), int(rate * LIVE_BLOCK_SECONDS) * PCM_SAMPLE_BYTES
            ),
            stop=stop,
        )
    loaded = load_checked_model(args.model, args.tracking_uri, hop=args.hop)
    config = loaded.config
    classify = keras_classifier(loaded.model)
    warm_up(classify, config)
    a = config.audio
    if stdin:
        blocks = resample_blocks(pcm_blocks(chunks, info=pcm_info), rate, a.sample_rate)
        what = f"{STDIN}: S16_LE mono at {rate} Hz"
    else:
        blocks = file_blocks(args.input, sample_rate=a.sample_rate, realtime=args.realtime)
        what = f"{args.input}{' at real time' if args.realtime else ''}"
    print(f"model {args.model}; configuration: {loaded.config_source}", flush=True)
    print(f"listening to {what}: {a.clip_seconds:g} s windows every {args.hop:g} s", flush=True)
    print(f"{'start s':>9} {'end s':>9}  {'class':<17} {'prob':>5} {'latency ms':>11}", flush=True)
    stats = ListenStats()
    ended = "end of stream"
    # From here Ctrl-C only sets `stop`, checked after each window and while waiting for
    # audio: a KeyboardInterrupt raised inside TensorFlow's predict can be swallowed there,
    # and listen would then wait on the still open pipe for ever.
    previous_handler = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        for r in classify_stream(
            stream_windows(
                blocks, config=config, hop_seconds=args.hop, name=STDIN if stdin else args.input
            ),
            classify,
            config=config,
        ):
            latency = (time.monotonic() - r.arrived) * 1000
            stats.add(latency)
            print(
                f"{r.start_s:9.2f} {r.end_s:9.2f}  {r.label:<17} {r.probability:5.3f} "
                f"{latency:11.0f}",
                flush=True,
            )
            if stop.is_set():
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        ended = "interrupted"
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    print(f"summary ({ended}): {stats.line()}", flush=True)
    if pcm_info.get("trailing_bytes"):
        print(
            f"urbansound listen: error: {STDIN}: the stream ended inside a sample "
            f"({pcm_info['bytes']} bytes is not a whole number of 2-byte S16_LE samples; "
            f"the last byte was dropped): is it 16-bit mono?",
            file=terminal_stderr(),
        )
        return EXIT_USER
    return EXIT_OK


COMMANDS = {
    "models": Command(add_models_parser, cmd_models),
    "predict": Command(add_predict_parser, cmd_predict),
    "export": Command(add_export_parser, cmd_export),
    "listen": Command(add_listen_parser, cmd_listen),
}
