"""Keep the terminal readable during a local run: the full log goes to a file.

kfp's local runner echoes every task's executor input and output JSON; on a
terminal that buries what a person wants to see.  :class:`ConsoleLog` sends
file descriptors 1 and 2 (this process and every task subprocess) to a log file
and echoes only the lines that tell progress: tasks starting and finishing,
cache hits, epochs, and errors.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHE_HIT = re.compile(r"Task '?([^' ]+)'? cache hit")
_EPOCH = re.compile(r"^\s*Epoch (\d+)/(\d+)")
_EPOCH_METRICS = re.compile(r"accuracy: ([\d.]+).*val_accuracy: ([\d.]+)")
_IMPORTANT = re.compile(r"(clips accepted|^\s*warning: |^\s*urbansound \w+|^\s*\w*(Error|Exception): |"
                        r"MLflow parent run|^\s*test fold \d+:)")
_USER_ERROR = re.compile(r"urbansound [\w ]+: error: .*")
_NOISE = re.compile(r"(cuInit|apitools|absl::InitializeLog|cudart_stub)")


class ConsoleLog:
    """Context manager: full output to ``log_path``, a digest to the terminal."""

    def __init__(self, log_path: str | os.PathLike, *, echo_all: bool = False):
        self.log_path = Path(log_path)
        self.echo_all = echo_all
        self._stop = threading.Event()

    def __enter__(self):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.log_path, "a", buffering=1)
        self._saved = os.dup(1), os.dup(2)
        self._terminal = os.fdopen(os.dup(self._saved[0]), "w", buffering=1)
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.3)  # let the follower read the last lines
        self._stop.set()
        self._thread.join(timeout=5)
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._terminal.close()
        self._file.close()
        return False

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the log (to show after a failure)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(_ANSI.sub("", line) for line in lines[-n:])

    def user_error(self) -> str | None:
        """The last ``urbansound <stage>: error: ...`` line a task printed, if any."""
        found = None
        for line in self.log_path.read_text(errors="replace").splitlines():
            if m := _USER_ERROR.search(_ANSI.sub("", line)):
                found = m.group(0).strip()
        return found

    def _follow(self) -> None:
        started: dict[str, float] = {}
        epoch = ""
        with open(self.log_path, errors="replace") as fh:
            fh.seek(0, os.SEEK_END)
            while True:
                line = fh.readline()
                if not line:
                    if self._stop.is_set():
                        return
                    time.sleep(0.1)
                    continue
                line = _ANSI.sub("", line.rstrip("\n"))
                if self.echo_all:
                    self._say(line)
                    continue
                if m := _TASK_START.search(line):
                    started[m.group(1)] = time.time()
                    self._say(f"▶ {m.group(1)}")
                elif m := _TASK_END.search(line):
                    took = time.time() - started.get(m.group(1), time.time())
                    mark = "✓" if m.group(2) == "SUCCESS" else "✗"
                    self._say(f"{mark} {m.group(1)} {m.group(2).lower()} ({took:.0f} s)")
                elif m := _CACHE_HIT.search(line):
                    self._say(f"✓ {m.group(1)} from cache")
                elif m := _EPOCH.match(line):
                    epoch = f"{m.group(1)}/{m.group(2)}"
                elif epoch and (m := _EPOCH_METRICS.search(line)):
                    self._say(f"    epoch {epoch}  accuracy {float(m.group(1)):.3f}  "
                              f"val_accuracy {float(m.group(2)):.3f}")
                    epoch = ""
                elif _IMPORTANT.search(line) and not _NOISE.search(line):
                    self._say("    " + line.strip())

    def _say(self, text: str) -> None:
        try:
            self._terminal.write(text + "\n")
        except (OSError, ValueError):
            pass
