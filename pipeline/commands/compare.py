"""``urbansound compare``: pipeline runs side by side, the study's Table 1 and a box plot."""

from __future__ import annotations

from urbansound.pipeline.commands.options import (
    EXIT_OK,
    STORE_DEFAULT_HELP,
    Command,
    add_tracking_uri,
)


def add_parser(sub, d) -> None:
    cmp = sub.add_parser(
        "compare",
        help="compare pipeline runs: the study's Table 1 and a box plot",
        description="Read pipeline runs from MLflow and print mean / median / std of their "
        "test-fold accuracies, one row per run (model × augmentation), next to "
        "the study's figures; write the box plot of fold accuracies. Both are "
        "logged to MLflow as a run tagged urbansound.kind=comparison.",
    )
    cmp.add_argument(
        "run_ids",
        nargs="*",
        metavar="RUN_ID",
        help="pipeline (parent) run ids; default: every run of --experiment",
    )
    cmp.add_argument("--experiment", default="urbansound", help="default urbansound")
    add_tracking_uri(cmp, STORE_DEFAULT_HELP)
    cmp.add_argument(
        "--out",
        default="urbansound-compare",
        metavar="DIR",
        help="where the table and box plot are written (default ./urbansound-compare)",
    )
    cmp.add_argument(
        "--html",
        metavar="FILE",
        help="also write the runs' per-class accuracies side by side as one self-contained "
        "HTML page (an existing file is replaced only when urbansound wrote it)",
    )
    cmp.add_argument("--no-log", action="store_true", help="do not log the comparison to MLflow")


def cmd_compare(args) -> int:
    from urbansound.pipeline.compare import compare
    from urbansound.pipeline.local_runner import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(".")
    table, plot, logged = compare(
        uri,
        args.run_ids or None,
        experiment=args.experiment,
        out_dir=args.out,
        log=not args.no_log,
        html=args.html,
    )
    print(table)
    print(f"\nbox plot: {plot}")
    if args.html:
        print(f"per-class accuracy: {args.html}")
    if logged:
        print(f"logged to MLflow as run {logged} (tag urbansound.kind=comparison)")
    return EXIT_OK


COMMANDS = {"compare": Command(add_parser, cmd_compare)}
