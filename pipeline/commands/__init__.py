"""The ``urbansound`` commands, one module per command or family; each module's
``COMMANDS`` maps a command's name to its :class:`~urbansound.pipeline.commands.options.Command`
(``add_parser``, ``run``).  Options that set configuration values come from the one table
in :mod:`urbansound.pipeline.commands.options`."""

from __future__ import annotations

from urbansound.pipeline.commands import (
    cluster,
    compare,
    model,
    registry,
    report,
    run,
    stages,
    study,
    ui,
)

COMMANDS = {
    **run.COMMANDS,
    **study.COMMANDS,
    **stages.COMMANDS,
    **ui.COMMANDS,
    **model.COMMANDS,
    **compare.COMMANDS,
    **report.COMMANDS,
    **registry.COMMANDS,
    **cluster.COMMANDS,
}

ORDER = (
    "run",
    "study",
    "demo-data",
    "ingest",
    "features",
    "ui",
    "models",
    "compare",
    "report",
    "predict",
    "export",
    "register",
    "train-final",
    "listen",
    "compile",
    "submit",
)
"""The order ``urbansound --help`` lists them in."""
