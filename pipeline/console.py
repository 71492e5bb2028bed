"""Keep the terminal readable during a local run: the full log goes to a file.

kfp's local runner echoes every task's executor input and output JSON; on a
terminal that buries what a person wants to see.  :class:`ConsoleLog` sends
file descriptors 1 and 2 (this process and every task subprocess) through a pipe
that one thread reads: every line goes to the log file and to a short in-memory
tail, and only the lines that tell progress are echoed (tasks starting and
finishing, cache hits, epochs, warnings and errors).  A log file that cannot be
written (a full disk) never blocks or loses the run: the error lines and the
tail are still known, and the log says where it stopped.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from pathlib import Path
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHE_HIT = re.compile(r"Task '?([^' ]+)'? cache hit")
_EPOCH = re.compile(r"^\s*Epoch (\d+)/(\d+)")
_EPOCH_METRICS = re.compile(r"accuracy: ([\d.]+).*val_accuracy: ([\d.]+)")
_IMPORTANT = re.compile(
    r"(clips accepted|^\s*(ingest|features): \d+/\d+ clips \(|^\s*warning: |"
    r"^\s*urbansound \w+|^\s*\w*(Error|Exception): |"
    r"MLflow parent run|^\s*test fold \d+:)"
)
_USER_ERROR = re.compile(r"urbansound [\w ]+: error: .*")
_STORAGE = re.compile(
    r"(no space left on device|disk quota exceeded|read-only file system|"
    r"database or disk is full)",
    re.IGNORECASE,
)
_NOISE = re.compile(r"(cuInit|apitools|absl::InitializeLog|cudart_stub)")


class ConsoleLog:
    """Context manager: full output to ``log_path``, a digest to the terminal."""

    def __init__(self, log_path: str | os.PathLike, *, echo_all: bool = False, keep: int = 500):
        self.log_path = Path(log_path)
        self.echo_all = echo_all
        self.log_error: str | None = None  # why the log file stopped, if it did
        self._tail: collections.deque[str] = collections.deque(maxlen=keep)
        self._user_errors: list[str] = []
        self._storage_lines: list[str] = []
        self._said: set[str] = set()
        self._file: TextIO | None = None

    def __enter__(self):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.log_path, "a", buffering=1, errors="replace")
            self._file.write(
                f"\n==== urbansound run, pid {os.getpid()}, "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} ====\n"
            )
        except OSError as exc:
            self._log_failed(exc)
        read_fd, write_fd = os.pipe()
        self._saved = os.dup(1), os.dup(2)
        self._terminal = os.fdopen(os.dup(self._saved[0]), "w", buffering=1)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._reader = os.fdopen(read_fd, "rb", buffering=0)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)  # closes this process's ends of the pipe
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        # EOF once every writer is gone (a stray grandchild could hold the pipe: don't wait)
        self._thread.join(timeout=10)
        self._terminal.close()
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._log_failed(exc)
        return False

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines of output (to show after a failure)."""
        return "\n".join(list(self._tail)[-n:])

    def user_error(self) -> str | None:
        """The last ``urbansound <stage>: error: ...`` line a task printed, if any."""
        return self._user_errors[-1] if self._user_errors else None

    def storage_error(self) -> str | None:
        """The first line that says a disk is full or read-only, if any."""
        return self._storage_lines[0] if self._storage_lines else None

    def _log_failed(self, exc: OSError) -> None:
        if self.log_error is None:
            self.log_error = f"{self.log_path}: {exc.strerror or exc}"
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _write_log(self, line: str) -> None:
        if self._file is None:
            return
        try:
            self._file.write(line + "\n")
        except OSError as exc:
            self._log_failed(exc)

    def _follow(self) -> None:
        started: dict[str, float] = {}
        epoch = ""
        for raw in iter(self._reader.readline, b""):
            line = _ANSI.sub("", raw.decode(errors="replace").rstrip("\n"))
            self._write_log(line)
            self._tail.append(line)
            if m := _USER_ERROR.search(line):
                self._user_errors.append(m.group(0).strip())
            if _STORAGE.search(line):
                self._storage_lines.append(line.strip())
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
                self._say(
                    f"    epoch {epoch}  accuracy {float(m.group(1)):.3f}  "
                    f"val_accuracy {float(m.group(2)):.3f}"
                )
                epoch = ""
            elif _IMPORTANT.search(line) and not _NOISE.search(line):
                text = "    " + line.strip()
                if text not in self._said:  # the same warning from several tasks: once
                    self._said.add(text)
                    self._say(text)
        self._reader.close()

    def _say(self, text: str) -> None:
        try:
            self._terminal.write(text + "\n")
        except (OSError, ValueError):
            pass
