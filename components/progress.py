"""Progress lines for long stages: ``<stage>: done/total clips (rate clips/s)``."""

from __future__ import annotations

import time
from typing import Callable


def progress_line(
    label: str,
    *,
    say: Callable[[str], None] | None = None,
    interactive: bool = False,
    every_s: float = 10.0,
    after_s: float = 0.0,
) -> Callable[[int, int], None]:
    """``progress(done, total)`` printing ``<label>: done/total clips (r clips/s)``: rewritten
    in place on a terminal (``interactive``), else a line at most every ``every_s`` seconds
    and one at the end.  ``say`` defaults to ``print`` with a flush, so a task's line
    reaches the local runner's console as it happens.  Nothing at all before ``after_s``
    seconds have passed since it was made (a step that is usually instant stays quiet)."""
    say = say or (lambda line: print(line, flush=True))
    started, last = time.time(), [0.0]

    def progress(done: int, total: int) -> None:
        now = time.time()
        if now - started < after_s:
            return
        if not interactive and done < total and now - last[0] < every_s:
            return
        last[0] = now
        rate = done / max(now - started, 1e-9)
        say(
            f"{label}: {done}/{total} clips ({rate:.1f} clips/s)"
            + ("\r" if interactive and done < total else "")
        )

    return progress
