"""The ``urbansound`` command line: run the pipeline, or one stage, or compile/submit it.

Each command lives in :mod:`urbansound.pipeline.commands`; this module builds the parser from them
and dispatches.

Exit codes: 0 success; 2 bad input or configuration (one line says which file
and why); 1 internal error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap

from urbansound.pipeline.commands.options import EXIT_INTERRUPTED, EXIT_USER


def build_parser() -> argparse.ArgumentParser:
    from urbansound.config import Config
    from urbansound.pipeline.commands import COMMANDS, ORDER

    d = Config()
    parser = argparse.ArgumentParser(
        prog="urbansound",
        description="UrbanSound8K classification as a Kubeflow pipeline: ingest → log-mel "
        "features (Apache Beam) → one Keras CNN per official test fold → "
        "evaluation, tracked in MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              urbansound run                                  # built-in demo data, a few minutes
              urbansound run --data ~/UrbanSound8K --folds 1,2 --epochs 5
              urbansound compile -o pipeline.yaml             # for a Kubeflow cluster
              urbansound ui                                   # MLflow UI on 127.0.0.1:5000
            """),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show INFO logs, and TensorFlow's and MLflow's start-up messages "
        "(predict, export, listen, register and train-final otherwise "
        "write them to ~/.local/state/urbansound/logs/COMMAND.log)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ORDER:
        COMMANDS[name].add_parser(sub, d)
    return parser


def main(argv: list[str] | None = None) -> int:
    from urbansound.pipeline.commands import COMMANDS

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from urbansound.errors import USER_ERRORS

    try:
        return COMMANDS[args.command].run(args)
    except USER_ERRORS as exc:
        print(f"urbansound {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(
            f"urbansound {args.command}: interrupted; open MLflow runs marked KILLED. "
            f"The same command resumes from the finished tasks.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
