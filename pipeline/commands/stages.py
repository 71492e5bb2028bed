"""``urbansound demo-data``, ``ingest`` and ``features``: the built-in data and the
pipeline's first two stages alone."""

from __future__ import annotations

import sys
from pathlib import Path

from urbansound.pipeline.commands.options import (
    EXIT_OK,
    SET_OPTION,
    Command,
    add_beam_options,
    add_option,
    add_options,
    beam_args,
    config_from_args,
    data_options,
    folds_arg,
    option_named,
    positive,
)
from urbansound.pipeline.commands.output import chatter_to
from urbansound.pipeline.commands.resolve import CONTENT_DIGESTS, with_deformation_cache


def add_demo_data_parser(sub, d) -> None:
    demo = sub.add_parser(
        "demo-data",
        help="write the built-in synthetic dataset",
        description="Write a deterministic synthetic dataset in the "
        "UrbanSound8K layout (10 classes, mixed formats).",
    )
    demo.add_argument("dir", help="destination folder")
    demo.add_argument("--folds", type=folds_arg, default=[1, 2, 3, 4], help="default 1,2,3,4")
    demo.add_argument(
        "--clips-per-class", type=positive, default=8, help="clips per class per fold (default 8)"
    )
    demo.add_argument("--seed", type=int, default=0)


def add_ingest_parser(sub, d) -> None:
    ing = sub.add_parser(
        "ingest",
        help="run the ingest stage alone",
        description="Check the CSV against the audio and decode every clip "
        "into fold<k>.tfrecord files plus report.json.",
    )
    ing.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="the dataset: UrbanSound8K, ESC-50, a folder per class or a CSV (--layout)",
    )
    ing.add_argument("--out", required=True, metavar="DIR", help="output folder")
    ing.add_argument("--strict", action="store_true", help="exit 2 if anything is rejected")
    add_options(ing, data_options())


def add_features_parser(sub, d) -> None:
    feat = sub.add_parser(
        "features",
        help="run the features stage alone (Beam)",
        description="Compute the model's input (log-mels, or 16 kHz "
        "waveforms for a waveform model such as conv1d) with "
        "Apache Beam. --data is an ingest output folder, or a "
        "dataset root (then it is ingested into OUT/waveforms "
        "first).",
    )
    feat.add_argument("--data", required=True, metavar="DIR")
    feat.add_argument("--out", required=True, metavar="DIR")
    add_option(
        feat,
        option_named("--model"),
        "the model the features are for (its input kind); default: the default model",
    )
    add_option(feat, SET_OPTION, "any configuration value, as for run")
    add_option(feat, option_named("--augment"), "as for run")
    add_beam_options(feat)


def cmd_demo_data(args) -> int:
    from urbansound.demo_data import write_demo_dataset
    from urbansound.outputs import claim_folder

    # a folder of someone else's (a real dataset's CSV!) is never written over
    claim_folder(args.dir, "demo-data", what="DIR")

    rows = write_demo_dataset(
        args.dir, folds=tuple(args.folds), clips_per_class=args.clips_per_class, seed=args.seed
    )
    print(f"wrote {len(rows)} clips to {args.dir}")
    return EXIT_OK


def cmd_ingest(args) -> int:
    from urbansound.ingest import ingest
    from urbansound.layouts import detect_layout

    config = config_from_args(args, demo=False)
    if config.data.layout == "auto":
        config = config.override(**{"data.layout": detect_layout(args.data)})
    result = ingest(args.data, args.out, config=config, strict=args.strict, progress=True)
    split = result.split
    if split.get("method") == "grouped":
        print(
            f"{result.layout}: {len(result.class_names)} classes; folds made by a grouped split "
            f"(seed {split['seed']}): {split['groups']} recording groups, per fold "
            f"{split['groups_per_fold']}"
        )
    else:
        print(f"{result.layout}: {len(result.class_names)} classes")
    for r in result.rejections[:20]:
        print(f"  rejected {r.file}: {r.reason}")
    if len(result.rejections) > 20:
        print(f"  ... {len(result.rejections) - 20} more in {result.report_path}")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    print(result.summary_line())
    return EXIT_OK


def cmd_features(args) -> int:
    remote = "://" in args.out
    out = args.out if remote else Path(args.out).resolve()
    config = config_from_args(args, demo=False)
    if not config.augment.cache_dir and config.augment.all_deformations():
        config = (
            config.override(**{"augment.cache_dir": f"{args.out.rstrip('/')}/cache/deformations"})
            if remote
            else with_deformation_cache(config, out)
        )
    beam_options = beam_args(args)
    if not remote:  # refused before the log or anything else is written there
        from urbansound.beam_features import LOG_FILE, claim_features_folder
        from urbansound.outputs import record

        claim_features_folder(out, args.data)
        record(out, [LOG_FILE])
    log_path = Path("urbansound-features.log").resolve() if remote else out / "features.log"
    if not args.verbose:
        print(f"full log: {log_path}  (-v shows it here)")
    with chatter_to(log_path, args.verbose) as say:
        from urbansound.beam_features import default_beam_args
        from urbansound.components.progress import progress_line
        from urbansound.stages import features_from

        interactive = sys.stdout.isatty()
        manifest, seconds = features_from(
            args.data,
            str(out),
            config=config,
            beam_args=beam_options or default_beam_args(),
            waveforms=Path(args.out) / "waveforms",
            digest_folder=Path(args.out) / CONTENT_DIGESTS,
            say=say,
            progress=lambda stage: progress_line(stage, say=say, interactive=interactive),
        )
        for warning in manifest["warnings"]:
            say(f"warning: {warning}")
        total = sum(sum(v.values()) for v in manifest["folds"].values())
        say(
            f"{total} {manifest['input_kind']} examples in {args.out} "
            f"({seconds:.1f} s, {sum(manifest['shards'].values())} shards, "
            f"{manifest['workers']} worker processes): {manifest['folds']}"
        )
    return EXIT_OK


COMMANDS = {
    "demo-data": Command(add_demo_data_parser, cmd_demo_data),
    "ingest": Command(add_ingest_parser, cmd_ingest),
    "features": Command(add_features_parser, cmd_features),
}
