"""Turn a user's mistake inside a component into one clear line and exit code 2.

On a cluster the pod log then ends with ``urbansound <stage>: error: <file>: <reason>``
instead of a traceback; internal errors keep their traceback (exit code 1).  The local
CLI finds that line in the run's log and exits with code 2 too.
"""
import contextlib
import errno
import sys

USER_ERROR_EXIT = 2
# a full, read-only or forbidden output location is the user's to fix, not a bug
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


@contextlib.contextmanager
def user_errors(stage: str):
    from urbansound.errors import USER_ERRORS

    try:
        yield
    except USER_ERRORS as exc:
        print(f"urbansound {stage}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        print(f"urbansound {stage}: error: cannot write {exc.filename or 'output'}: "
              f"{exc.strerror}",
              file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
