"""Turn a user's mistake inside a component into one clear line and exit code 2.

On a cluster the pod log then ends with ``urbansound <stage>: error: <file>: <reason>``
instead of a traceback; internal errors keep their traceback (exit code 1).  The local
CLI finds that line in the run's log and exits with code 2 too.

A full, read-only or forbidden output location is the user's to fix, not a bug:
whatever library raised it (Python's ``OSError``, TensorFlow's
``ResourceExhaustedError``, sqlite's "database or disk is full", Beam's wrapped
worker errors), it becomes one line naming the path and the reason.
"""

import contextlib
import errno
import os
import re
import sys

USER_ERROR_EXIT = 2
# a full, read-only or forbidden output location is the user's to fix, not a bug
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}
# the same conditions as other libraries word them (TensorFlow, sqlite, Beam's wrapped errors)
_STORAGE_TEXT = re.compile(
    r"(no space left on device|disk quota exceeded|read-only file system|"
    r"database or disk is full|attempt to write a readonly database)",
    re.IGNORECASE,
)
# TensorFlow: "<path>; No space left on device"; Python: "[Errno 28] ...: '<path>'"
_PATH_BEFORE = re.compile(r"(/[^\s;:'\"]+)\s*;\s*(?:no space|disk quota|read-only)", re.IGNORECASE)
_PATH_QUOTED = re.compile(r"'(/[^']+)'")


def _chain(exc: BaseException):
    item: BaseException | None = exc
    seen: set[int] = set()
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        yield item
        item = item.__cause__ or item.__context__


def storage_error(exc: BaseException, default_path: str = "") -> str | None:
    """``"<path>: <reason>"`` if ``exc`` (or what caused it) is a full, read-only or
    forbidden location; None otherwise."""
    for item in _chain(exc):
        if isinstance(item, OSError) and item.errno in STORAGE_ERRNOS:
            path = item.filename or default_path or "output"
            return f"{path}: {item.strerror or os.strerror(item.errno)}"
        text = str(item)
        found = _STORAGE_TEXT.search(text)
        if found:
            reason = found.group(1)
            if reason.lower() == "database or disk is full":
                reason = "no space left on device (database or disk is full)"
            path = _PATH_BEFORE.search(text) or _PATH_QUOTED.search(text)
            where = path.group(1) if path else (default_path or "output")
            return f"{where}: {reason[0].upper() + reason[1:]}"
    return None


@contextlib.contextmanager
def user_errors(stage: str):
    from urbansound.errors import USER_ERRORS

    try:
        yield
    except USER_ERRORS as exc:
        print(f"urbansound {stage}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
    except Exception as exc:
        described = storage_error(exc)
        if described is None:
            raise
        print(f"urbansound {stage}: error: cannot write {described}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
