"""Where a command's output goes: TensorFlow's, Beam's and MLflow's start-up chatter to a
per-user log unless ``-v``, the command's own lines to the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path


@contextlib.contextmanager
def chatter_to(log_path: Path, verbose: bool):
    """Send file descriptors 1 and 2 (this process, Beam's worker processes, TensorFlow's
    C++ logging) to ``log_path`` unless ``verbose``; yields a function that prints to the
    terminal (a line that rewrites itself when it ends with ``\r``)."""

    def say_to(stream):
        def say(text: str) -> None:
            stream.write(text if text.endswith("\r") else text + "\n")
            stream.flush()

        return say

    if verbose:
        yield say_to(sys.stdout)
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log, _fds_to(log) as saved:
        with os.fdopen(os.dup(saved[0]), "w") as terminal:
            yield say_to(terminal)


@contextlib.contextmanager
def _fds_to(log):
    """While inside, file descriptors 1 and 2 write to the open file ``log``; yields
    copies of the two original descriptors (the terminal), closed on the way out."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield saved
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


CHATTER_LOG = "{command}.log"
"""The file name, in :func:`chatter_log_dir`, where ``predict``, ``export``, ``listen``,
``register`` and ``train-final`` put TensorFlow's, absl's, Beam's and MLflow's start-up
output unless ``-v``."""


CHATTER_LOG_BYTES = 5 * 2**20
"""A log past this size is moved to ``<name>.1`` (replacing the older one) when opened."""


def chatter_log_dir() -> Path:
    """``$XDG_STATE_HOME/urbansound/logs`` (default ``~/.local/state/urbansound/logs``):
    a per-user folder, never the working folder, which holds the user's own files."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "urbansound" / "logs"


def chatter_log(command: str) -> Path:
    return chatter_log_dir() / CHATTER_LOG.format(command=command)


def _stream_on_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: a capture
        return False


_TERMINAL_STDERR: list = []
"""The terminal's stderr while :func:`libraries_to_log` holds fd 2 (innermost last)."""


def terminal_stderr():
    """Where a command's own error and status lines go: the terminal's stderr, also while
    :func:`libraries_to_log` sends fd 2 (and ``sys.stderr``) to the log."""
    return _TERMINAL_STDERR[-1] if _TERMINAL_STDERR else sys.stderr


@contextlib.contextmanager
def libraries_to_log(log_path: Path, command: str = ""):
    """While inside: file descriptors 1 and 2 go to ``log_path``, and so does
    ``sys.stderr`` (TensorFlow's C++ logging, absl, MLflow's logger and progress bars,
    Python warnings, Beam's workers); ``sys.stdout`` writes to the terminal through a copy
    of the original descriptor, line by line (``listen`` streams), and
    :func:`terminal_stderr` is the terminal's stderr.  A ``sys.stdout``/``sys.stderr`` that
    is not fd 1/2 (a test's capture) is left as it is."""
    import io
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if log_path.exists() and log_path.stat().st_size > CHATTER_LOG_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
        log = open(log_path, "ab", buffering=0)
    except OSError:  # an unwritable home: the command must still run
        log = open(Path(tempfile.gettempdir()) / f"urbansound-{log_path.name}", "ab", buffering=0)
    log.write(
        f"\n==== urbansound {command or log_path.stem}, pid {os.getpid()}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode()
    )

    def terminal(stream, fd: int):
        return io.TextIOWrapper(
            io.FileIO(os.dup(fd), "w"),
            encoding=stream.encoding,
            errors=stream.errors,
            line_buffering=True,
            write_through=True,
        )

    original = sys.stdout
    with log, _fds_to(log) as saved:
        if _stream_on_fd(sys.stdout, 1):
            sys.stdout = terminal(original, saved[0])
        _TERMINAL_STDERR.append(
            terminal(sys.stderr, saved[1]) if _stream_on_fd(sys.stderr, 2) else sys.stderr
        )
        try:
            yield
        finally:
            made = [
                stream
                for stream in (sys.stdout, _TERMINAL_STDERR.pop())
                if isinstance(stream, io.TextIOWrapper)
                and stream is not original
                and stream is not sys.stderr
            ]
            sys.stdout = original
            for stream in made:
                stream.close()


def quiet_libraries(command: str):
    """Decorator of a command that loads TensorFlow or MLflow: their start-up output goes
    to :data:`CHATTER_LOG` unless ``-v`` (see :func:`libraries_to_log`)."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def run(args) -> int:
            if args.verbose:
                return fn(args)
            log_path = chatter_log(command)
            with libraries_to_log(log_path, command):
                return fn(args)

        return run

    return wrap
