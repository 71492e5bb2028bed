"""``urbansound report``: a pipeline run's error analysis as one self-contained HTML page."""

from __future__ import annotations

from urbansound.pipeline.commands.options import EXIT_OK, STORE_HELP, Command, add_tracking_uri
from urbansound.pipeline.commands.output import quiet_libraries


def add_parser(sub, d) -> None:
    p = sub.add_parser(
        "report",
        help="a pipeline run's error analysis: one HTML page you can listen to",
        description="Write the error analysis of a pipeline run as one self-contained HTML "
        "page (works offline): fold accuracies, confusion matrix, per-class precision / "
        "recall / F1, accuracy by salience, a reliability diagram with the expected "
        "calibration error, and the 30 most confident mistakes with a player of each clip "
        "and its log-mel. It is the run's logged report.html; a run without one (or "
        "--rebuild) is built again from its predictions.csv and summary.json, with the "
        "audio read from the run's data folder where it is on this machine.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="a pipeline (parent) run id")
    p.add_argument(
        "-o",
        "--out",
        metavar="FILE",
        help="where the page is written (default ./report-<first 8 characters of RUN_ID>.html); "
        "an existing file is replaced only when it is a page urbansound wrote",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="build the page again from the run's predictions.csv and summary.json even "
        "when it has a report.html (audio from its data folder)",
    )
    add_tracking_uri(p, STORE_HELP)


@quiet_libraries("report")
def cmd_report(args) -> int:
    """Exit 0 with the page's path printed; 2 (one line) for an output that is not ours,
    no store, an unknown run, a fold run or a run without predictions."""
    from urbansound.pipeline.report import write_report

    written = write_report(
        args.run_id, tracking_uri=args.tracking_uri, out=args.out, rebuild=args.rebuild
    )
    print(f"report: {written.path} ({written.source})")
    return EXIT_OK


COMMANDS = {"report": Command(add_parser, cmd_report)}
