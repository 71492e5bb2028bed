"""What a path is, in words: the true reason a path that is not a regular file cannot be
read as one.

A character device (``/dev/zero``), a FIFO or a socket reports size 0, so a check of the
size alone calls it an "empty file"; ``Path.is_file()`` is False for it, so a check of
that alone calls it "no such file".  Everything here uses ``os.stat`` only: a FIFO is
never opened (opening one for reading blocks until a writer comes).  A leaf module.
"""

from __future__ import annotations

import os
import stat

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """``st_mode`` in words: "a regular file", "a folder", "a character device",
    "a block device", "a FIFO", "a socket" or "a special file"."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def not_regular(mode: int) -> str | None:
    """``"not a regular file (a FIFO)"`` and the like for anything but a regular file or a
    folder (the caller words a folder itself); None for those two."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"not a regular file ({kind_of(mode)})"


def regular_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` (links followed) cannot be read as a regular file, or None: "no such
    file", "no such file (a broken link)", "is a folder, not a file", "not a regular file
    (a character device)", or the system's reason it cannot be looked at."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file (a broken link)" if os.path.islink(path) else "no such file"
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return not_regular(mode)


def keras_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a Keras 3 ``.keras`` file, or None: not a regular file (see
    :func:`regular_file_problem`), or not a zip archive (which every ``.keras`` file is:
    without this check Keras calls a text file named ``model.keras`` "not found")."""
    import zipfile

    problem = regular_file_problem(path)
    if problem:
        return problem
    try:
        if not zipfile.is_zipfile(path):
            return "not a Keras model file (not a zip archive)"
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    return None
