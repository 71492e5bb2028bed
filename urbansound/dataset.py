"""The UrbanSound8K layout: read the metadata CSV and check every row against the audio.

A dataset root holds ``metadata/UrbanSound8K.csv`` and ``audio/fold<k>/<file>``.
:func:`scan_dataset` turns it into accepted :class:`Clip` objects plus a list of
:class:`Rejection` (file, reason) for every row or file that cannot be used, so
one bad row never stops a run.  Problems with the dataset as a whole (no CSV,
columns missing, nothing usable) raise :class:`DatasetError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path

from urbansound.config import ALL_FOLDS, CLASS_NAMES
from urbansound.listing import (
    INT64_MAX,
    Clip,
    Listing,
    Rejection,
    Row,
    as_int,
    check_file,
    check_root,
    is_inside,
    missing_csv,
    not_utf8,
    printable,
    read_table,
    shorten,
    show_value,
)

CSV_RELATIVE_PATH = Path("metadata") / "UrbanSound8K.csv"
REQUIRED_COLUMNS = (
    "slice_file_name",
    "fsID",
    "start",
    "end",
    "salience",
    "fold",
    "classID",
    "class",
)
# fsID-classID-occurrenceID-sliceID.wav, the dataset's own naming rule
_NAME_PATTERN = re.compile(r"^([0-9]+)-([0-9]+)-([0-9]+)-([0-9]+)\.[A-Za-z0-9]+$")


def read_rows(root: str | os.PathLike) -> tuple[list[str], list[Row], list[Rejection]]:
    """Parse the metadata CSV: its header, its well-formed rows, and one
    :class:`Rejection` per row that cannot be parsed.

    The file is split into rows by this module, not by :mod:`csv` alone, so that
    one bad row is rejected alone (naming its line) and the rows after it are
    still read: a row with the wrong number of fields, a field longer than the
    csv module's limit (131,072 characters), a NUL byte, bytes that are not
    UTF-8, or a stray quote (never closed, or closed only after whole rows:
    the lines after it are then read as rows of their own, not swallowed into
    one).  Line ends may be LF, CRLF or CR; a leading byte-order mark is
    allowed; blank lines are skipped.

    The CSV must be UTF-8.  It is not decoded with a fallback such as latin-1:
    file names would come out altered and every such row would then fail as
    "audio file not found" for no visible reason, so a row holding invalid
    bytes is rejected with the byte and its offset.

    Raises
    ------
    DatasetError
        root missing; CSV missing, unreadable, a link leading outside the
        dataset folder, or empty; the header line not UTF-8, holding NUL bytes
        or not parseable as CSV (the message names the line); required columns
        absent or repeated.
    """
    root = Path(root)
    check_root(root)
    csv_path = root / CSV_RELATIVE_PATH
    if not csv_path.is_file():
        raise missing_csv(
            csv_path,
            "metadata CSV not found (expected the UrbanSound8K layout: "
            "metadata/UrbanSound8K.csv and audio/fold1..fold10/)",
        )
    return read_table(csv_path, root=root, required=REQUIRED_COLUMNS, name_column="slice_file_name")


def scan_dataset(root: str | os.PathLike) -> Listing:
    """Check every CSV row and every audio file; return accepted clips and rejections.

    A row is rejected when it cannot be parsed (see :func:`read_rows`), its fold is not
    1..10, its classID is not 0..9 or disagrees with its class name or with the
    classID in its file name, its file name is not a plain name (``../``,
    absolute paths, control characters), its file is missing, not a regular
    file or a link leading outside the dataset folder, or it repeats an
    earlier row.  Files under ``audio/fold*/`` that no row names are rejected
    too ("no metadata row"); a ``fold*`` folder that is a link leading outside
    the dataset folder is reported and never listed.  Nothing outside the
    dataset folder is opened or listed.

    File names in rejections are printable: bytes that are not UTF-8 and
    control characters are shown as backslash escapes.

    A row is also rejected when a field does not fit its type: fsID a whole
    number in 0..2**63-1, salience 1 or 2, start and end finite times >= 0 with
    start <= end (fold and classID as above; numbers are read exactly, never
    through a float; surrounding whitespace is ignored).

    Returns
    -------
    Listing : clips (accepted rows, sorted by (fold, file name)), rejections (one
        per rejected row or file), rows_read.
    """
    root = Path(root)
    _, rows, rejections = read_rows(root)
    rows_read = len(rows) + len(rejections)
    root_real = root.resolve()
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    named: set[tuple[int | None, str]] = set()
    for row in rows:
        name = str(row.values["slice_file_name"]).strip()
        fold = as_int(row.values.get("fold"))
        if fold is not None and abs(fold) > INT64_MAX:
            fold = None  # the report's fold is a 64-bit integer or null
        named.add((fold, name))
        clip_or_reason = _check_row(row, name, root, root_real, seen)
        if isinstance(clip_or_reason, Clip):
            clips.append(clip_or_reason)
            seen[name] = row.line
        else:
            rejections.append(
                Rejection(file=_display_path(name, fold), reason=clip_or_reason, fold=fold)
            )
    audio_dir = root / "audio"
    fold_dirs = []
    if not is_inside(audio_dir.resolve(), root_real):
        rejections.append(
            Rejection(
                file="audio/",
                reason="folder is a link that leads outside the dataset folder; it is not read",
            )
        )
    elif audio_dir.is_dir():
        fold_dirs = sorted(audio_dir.glob("fold*"))
    for fold_dir in fold_dirs:
        fold = as_int(fold_dir.name[len("fold") :])
        if fold is None or not fold_dir.is_dir():
            continue
        shown = f"audio/{printable(fold_dir.name)}"
        if not is_inside(fold_dir.resolve(), root_real):
            rejections.append(
                Rejection(
                    file=shown + "/",
                    fold=fold,
                    reason="folder is a link that leads outside the dataset "
                    "folder; its files are not read",
                )
            )
            continue
        try:
            entries = sorted(fold_dir.iterdir())
        except OSError as exc:
            rejections.append(
                Rejection(
                    file=shown + "/",
                    fold=fold,
                    reason=f"cannot list folder ({exc.strerror or exc})",
                )
            )
            continue
        for path in entries:
            if path.name.startswith(".") or (fold, path.name) in named:
                continue
            if path.is_file() or path.is_symlink():
                reason = "no metadata row names this file"
                if not_utf8(path.name):
                    reason += " (its name is not valid UTF-8)"
                rejections.append(
                    Rejection(file=f"{shown}/{printable(path.name)}", reason=reason, fold=fold)
                )
    clips.sort(key=lambda c: (c.fold, c.file_name))
    return Listing(clips=clips, rejections=rejections, rows_read=rows_read, root=str(root))


def _check_row(
    row: Row, name: str, root: Path, root_real: Path, seen: dict[str, int]
) -> Clip | str:
    values = row.values
    fold = as_int(values["fold"])
    if fold is None or fold not in ALL_FOLDS:
        return f"fold {show_value(values['fold'])} is not one of 1..10"
    class_id = as_int(values["classID"])
    if class_id is None or not 0 <= class_id < len(CLASS_NAMES):
        return f"classID {show_value(values['classID'])} is not one of 0..9"
    class_name = str(values["class"]).strip()
    if class_name != CLASS_NAMES[class_id]:
        return (
            f"class {show_value(class_name)} disagrees with classID {class_id} "
            f"({CLASS_NAMES[class_id]!r})"
        )
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or os.path.isabs(name)
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
    ):
        return f"file name {show_value(name)} is not a plain file name"
    match = _NAME_PATTERN.match(name)
    if match and as_int(match.group(2)) != class_id:
        return f"file name encodes classID {shorten(match.group(2))} but the row says {class_id}"
    fs_id = as_int(values["fsID"])
    if fs_id is None or not 0 <= fs_id <= INT64_MAX:
        # written as a 64-bit integer into the TFRecords
        return f"fsID {show_value(values['fsID'])} is not a whole number in 0..{INT64_MAX}"
    salience = as_int(values["salience"])
    if salience not in (1, 2):
        return f"salience {show_value(values['salience'])} is not 1 (foreground) or 2 (background)"
    times: dict[str, float] = {}
    for key in ("start", "end"):
        seconds = _as_seconds(values[key])
        if seconds is None:
            return (
                f"{key} {show_value(values[key])} is not a time in seconds (a finite number >= 0)"
            )
        times[key] = seconds
    if times["end"] < times["start"]:
        return f"end {times['end']:g} s is before start {times['start']:g} s"
    if name in seen:
        return f"duplicate row (CSV line {row.line} repeats line {seen[name]})"
    path = root / "audio" / f"fold{fold}" / name
    # a link into another fold would put one recording in two folds
    problem = check_file(
        path, root_real, within=root / "audio" / f"fold{fold}", within_name=f"audio/fold{fold}"
    )
    if problem is not None:
        return problem
    return Clip(
        file_name=name,
        path=str(path),
        fold=fold,
        class_id=class_id,
        class_name=class_name,
        fs_id=fs_id,
        salience=salience,
    )


def dataset_fingerprint(
    clips: list[Clip],
    *,
    digests: dict[str, str] | None = None,
    cache_file: str | os.PathLike | None = None,
    progress=None,
) -> str:
    """SHA-256 (16 hex digits) of the accepted listing: each clip's fold, path, class,
    recording, salience and the SHA-256 of its bytes, so that a clip rewritten with
    other sound (at the same size, with its old mtime put back) changes it.

    ``digests`` : ``{clip.path: digest}`` already computed (ingest hashes before it
    decodes); else they are computed here by :func:`urbansound.content_hash.content_digests`,
    remembered in ``cache_file`` (None: no cache) and reported to ``progress(done, total)``.
    """
    if digests is None:
        from urbansound.content_hash import content_digests

        digests, _ = content_digests(
            [c.path for c in clips], cache_file=cache_file, progress=progress
        )
    digest = hashlib.sha256()
    for c in sorted(clips, key=lambda c: (c.fold, c.relative)):
        fields = (
            c.fold,
            c.relative,
            c.class_id,
            c.class_name,
            c.fs_id,
            c.salience,
            digests[c.path],
        )
        # JSON per clip: no name can run into the next field
        digest.update(json.dumps(fields, ensure_ascii=True).encode() + b"\n")
    return digest.hexdigest()[:16]


def _as_seconds(value) -> float | None:
    """``value`` as a finite number >= 0 (a time in seconds), or None."""
    text = str(value).strip()
    if len(text) > 40:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _display_path(name: str, fold: int | None) -> str:
    shown = shorten(printable(name), 250)
    return f"audio/fold{fold}/{shown}" if fold is not None else shown
