"""No command writes over its own inputs, or over (or deletes) a file it did not write.

Files: :func:`check_outputs` takes the paths a command will write and the paths it
reads, and refuses, before anything is written, an output that is one of the inputs
(compared with ``os.path.samefile`` where both exist, else by resolved path: links
followed), two outputs at one path, and an output that exists and was not written by
this tool (the caller says what "ours" looks like, e.g. a ``.tflite`` flatbuffer).

Folders: a folder a command fills (ingest's, features', run's, ...) is *ours* when it
holds :data:`MARKER`, a small JSON file written when the folder was claimed, naming the
command that writes there (``kind``) and every file it wrote or is about to write
(``files``, relative names; a name is recorded *before* its file is created, so that an
interrupted run's files are still known).  :func:`claim_folder` accepts a missing or
empty folder (and creates the marker), a folder with the same kind's marker, or one a
caller-supplied ``legacy`` function recognises (output of a version without markers);
anything else is refused with one line.  A rerun deletes only the files the marker
lists (:func:`remove_recorded`): never by pattern, so a user's ``folder_index.tfrecord``
is never mistaken for ``fold*.tfrecord``.

Every refusal is an :class:`OutputError` (a ConfigError: one line, exit code 2).
Local paths only; a leaf module (imports only :mod:`urbansound.config`'s error).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from urbansound.config import ConfigError

MARKER = ".urbansound-outputs.json"
"""The marker of a folder this tool writes: ``{"written_by": "urbansound", "kind": K,
"files": [names]}``."""

WRITTEN_BY = "urbansound"


class OutputError(ConfigError):
    """An output would overwrite an input or a file this tool did not write, or lands in
    a folder that is not ours (``str()``: one line naming the path and the reason)."""


Named = Sequence[tuple[str, "str | os.PathLike"]]
"""``(what, path)`` pairs: ``what`` names the role in the message (``"MODEL"``, ``"--out"``)."""


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are one file or folder: ``os.path.samefile`` when both
    exist (hard links, links, bind mounts), else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(
    outputs: Named,
    inputs: Named = (),
    *,
    ours: Callable[[Path], bool] | None = None,
    command: str = "urbansound",
    hint: str = "choose another output",
) -> None:
    """Refuse, before anything is written, outputs that would destroy something.

    Parameters
    ----------
    outputs : ``(what, path)`` of every file the command will write.
    inputs : ``(what, path)`` of every file or folder it reads.
    ours : ``ours(path)`` is True for an existing output this tool wrote earlier (it may be
        replaced); None: any existing output is refused.
    command : in the message ("urbansound export").
    hint : the end of the message: what the user can do.

    Raises
    ------
    OutputError
        an output is an input, two outputs are one path, or an output exists and is not ours.
    """
    output_paths = [(what, Path(p)) for what, p in outputs]
    for i, (what, path) in enumerate(output_paths):
        for other_what, other in output_paths[:i]:
            if same_path(path, other):
                raise OutputError(
                    f"{path}: {other_what} and {what} would both be written to "
                    f"this path (one would replace the other); {hint}"
                )
        for in_what, source in inputs:
            if same_path(path, source):
                raise OutputError(
                    f"{path}: is the input {in_what} ({source}); writing "
                    f"{what} there would destroy it; {hint}"
                )
        if os.path.lexists(path) and not (ours is not None and path.is_file() and ours(path)):
            raise OutputError(
                f"{path}: exists and was not written by {command}; it is left "
                f"as it is: remove it yourself or {hint}"
            )


def check_not_input(folder: str | os.PathLike, inputs: Named, *, what: str = "--out") -> None:
    """Refuse an output ``folder`` that is one of the input folders or files (links
    followed).  Whether an output may lie inside an input is the caller's rule (ingest's
    and run's own checks)."""
    real = Path(os.path.realpath(folder))
    for in_what, source in inputs:
        src = Path(os.path.realpath(source))
        if real == src:
            raise OutputError(
                f"{folder}: {what} is the input {in_what} ({source}); writing "
                f"there would replace what is read; choose another folder"
            )


# ---------------------------------------------------------------------------
# folders this tool fills
# ---------------------------------------------------------------------------


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder`` (a dict with ``kind`` and ``files``), or None: no marker,
    or a file of that name that is not ours."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("written_by") != WRITTEN_BY
        or not isinstance(data.get("files"), list)
    ):
        return None
    return data


def _write_marker(folder: Path, kind: str, files: Iterable[str]) -> None:
    document = {"written_by": WRITTEN_BY, "kind": kind, "files": sorted(set(files))}
    temporary = folder / (MARKER + ".tmp")
    try:
        temporary.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, folder / MARKER)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write output here ({exc.strerror or exc})") from None


def claim_folder(
    folder: str | os.PathLike,
    kind: str,
    *,
    inputs: Named = (),
    legacy: Callable[[Path], list[str] | None] | None = None,
    what: str = "--out",
    check_only: bool = False,
) -> list[str]:
    """Make ``folder`` the output folder of command ``kind``, or refuse it.

    Accepted: a missing folder (created), an empty one, one whose marker names ``kind``,
    or one ``legacy(folder)`` recognises (it returns the names of the files an earlier
    version wrote there: they are recorded as ours).  Refused: a folder that is one of
    ``inputs``, holds the output of another command, or holds entries this tool did not
    write.  ``check_only``: refuse or accept, but create and write nothing (a preflight
    that runs before other checks; claim for real afterwards).

    Returns
    -------
    the names (relative to ``folder``) recorded as written by this tool so far.

    Raises
    ------
    OutputError
        one line naming the folder and the reason.
    """
    folder = Path(folder)
    check_not_input(folder, inputs, what=what)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(f"{folder}: not a folder ({what} must name a folder)")
    marker = read_marker(folder) if folder.is_dir() else None
    if marker is not None:
        if marker.get("kind") != kind:
            raise OutputError(
                f"{folder}: holds the output of urbansound {marker.get('kind')}, "
                f"not of {kind}; choose another folder ({what})"
            )
        return list(marker["files"])
    try:
        entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    except OSError as exc:
        raise OutputError(f"{folder}: cannot list ({exc.strerror or exc})") from None
    entries = [e for e in entries if e not in (MARKER, MARKER + ".tmp")]
    files: list[str] = []
    if entries:
        found = legacy(folder) if legacy is not None else None
        if found is None:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise OutputError(
                f"{folder}: folder is not empty ({len(entries)} entries: {shown}) "
                f"and was not written by urbansound {kind}; nothing there is "
                f"replaced or deleted: choose a new or empty folder ({what})"
            )
        files = list(found)
    if check_only:
        return files
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write output here ({exc.strerror or exc})") from None
    _write_marker(folder, kind, files)
    return files


def record(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Add ``names`` (files about to be written in ``folder``, a claimed folder) to its
    marker, before they are written.  A name not yet recorded whose file already exists
    was not written by this tool: refused, nothing written."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        raise OutputError(
            f"{folder}: no {MARKER}: the folder was not claimed (a bug: claim_folder first)"
        )
    known = set(marker["files"])
    new = [n for n in names if n not in known]
    for name in new:
        if os.path.lexists(folder / name):
            raise OutputError(
                f"{folder / name}: exists and was not written by urbansound "
                f"{marker['kind']}; it is left as it is: remove it yourself or "
                f"choose another folder"
            )
    if new:
        _write_marker(folder, marker["kind"], known | set(new))


def remove_recorded(folder: str | os.PathLike, *, keep: Iterable[str] = ()) -> list[str]:
    """Delete the files the marker of ``folder`` lists (not those in ``keep``), and only
    them, and forget them; returns the names deleted (or already gone).  Folders are left."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        return []
    keep = set(keep)
    removed, kept = [], []
    for name in marker["files"]:
        if name in keep:
            kept.append(name)
            continue
        path = folder / name
        try:
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            removed.append(name)
        except FileNotFoundError:
            removed.append(name)
        except OSError as exc:
            _write_marker(
                folder, marker["kind"], kept + [n for n in marker["files"] if n not in removed]
            )
            raise OutputError(
                f"{path}: cannot remove previous output ({exc.strerror or exc})"
            ) from None
    _write_marker(folder, marker["kind"], kept)
    return removed
