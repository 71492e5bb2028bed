"""The UrbanSound8K layout: read the metadata CSV and check every row against the audio.

A dataset root holds ``metadata/UrbanSound8K.csv`` and ``audio/fold<k>/<file>``.
:func:`list_clips` turns it into accepted :class:`Clip` objects plus a list of
:class:`Rejection` (file, reason) for every row or file that cannot be used, so
one bad row never stops a run.  Problems with the dataset as a whole (no CSV,
columns missing, nothing usable) raise :class:`DatasetError`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from urbansound.config import ALL_FOLDS, CLASS_NAMES

CSV_RELATIVE_PATH = Path("metadata") / "UrbanSound8K.csv"
REQUIRED_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
# fsID-classID-occurrenceID-sliceID.wav, the dataset's own naming rule
_NAME_PATTERN = re.compile(r"^(\d+)-(\d+)-(\d+)-(\d+)\.[A-Za-z0-9]+$")


class DatasetError(Exception):
    """The dataset as a whole cannot be used (the message says why and where)."""


@dataclass(frozen=True)
class Clip:
    """One accepted row: a file inside ``audio/fold<fold>/``."""

    file_name: str
    path: str
    fold: int
    class_id: int
    class_name: str
    fs_id: int
    salience: int


@dataclass(frozen=True)
class Rejection:
    """A row or file left out of the run, and why."""

    file: str
    reason: str
    fold: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def read_metadata(root: str | os.PathLike):
    """Read ``metadata/UrbanSound8K.csv`` as a DataFrame of strings.

    Rows whose field count does not match the header are left out here
    (:func:`list_clips` reports them).

    Raises
    ------
    DatasetError
        see :func:`read_rows`.
    """
    import pandas as pd

    header, rows, _ = read_rows(root)
    return pd.DataFrame([r.values for r in rows], columns=header, dtype=str)


@dataclass(frozen=True)
class _Row:
    line: int  # CSV line where the row starts (the header is line 1)
    values: dict


def read_rows(root: str | os.PathLike) -> tuple[list[str], list[_Row], list[Rejection]]:
    """Parse the metadata CSV: its header, its well-formed rows, and one
    :class:`Rejection` per row with the wrong number of fields.

    The CSV must be UTF-8 (a leading byte-order mark is allowed).  It is not
    decoded with a fallback such as latin-1: file names would come out altered
    and every such row would then fail as "audio file not found" for no
    visible reason, so invalid bytes are an error naming the byte offset.

    Raises
    ------
    DatasetError
        root missing; CSV missing, unreadable, a link leading outside the
        dataset folder, empty, not UTF-8 or not CSV; required columns absent
        or repeated.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"{root}: dataset folder {what}")
    csv_path = root / CSV_RELATIVE_PATH
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: metadata CSV not found (expected the UrbanSound8K layout: "
                           f"metadata/UrbanSound8K.csv and audio/fold1..fold10/)")
    if not _inside(csv_path.resolve(), root.resolve()):
        raise DatasetError(f"{csv_path}: the metadata CSV is a link that leads outside the "
                           f"dataset folder")
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{csv_path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DatasetError(f"{csv_path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte offset "
                           f"{exc.start}, line {line}); re-save the CSV as UTF-8") from None
    if not text.strip():
        raise DatasetError(f"{csv_path}: empty file (expected a header line "
                           f"{','.join(REQUIRED_COLUMNS)})")
    if "\0" in text:
        raise DatasetError(f"{csv_path}: contains NUL bytes; not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [c.strip() for c in next(reader)]
        records = []
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            records.append((line, fields))
    except csv.Error as exc:
        raise DatasetError(f"{csv_path}: cannot parse CSV (line {reader.line_num}: {exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hints = [f"{c!r} for {h!r}" for c in missing for h in header
                 if h.lower().replace("_", "") == c.lower().replace("_", "") and h != c]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise DatasetError(f"{csv_path}: missing column(s) {missing}; found {header}{hint}")
    repeated = sorted({c for c in REQUIRED_COLUMNS if header.count(c) > 1})
    if repeated:
        raise DatasetError(f"{csv_path}: column(s) {repeated} appear more than once")
    rows: list[_Row] = []
    bad: list[Rejection] = []
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # blank line
        if len(fields) != len(header):
            name = fields[header.index("slice_file_name")].strip() \
                if len(fields) > header.index("slice_file_name") else ""
            bad.append(Rejection(file=printable(name) or f"CSV line {line}",
                                 reason=f"CSV line {line}: {len(fields)} fields, the header has "
                                        f"{len(header)}"))
            continue
        rows.append(_Row(line=line, values=dict(zip(header, fields))))
    return header, rows, bad


def list_clips(root: str | os.PathLike) -> tuple[list[Clip], list[Rejection]]:
    """Check every CSV row and every audio file; return accepted clips and rejections.

    A row is rejected when it has the wrong number of fields, its fold is not
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

    Returns
    -------
    clips : accepted rows, sorted by (fold, file name).
    rejections : one per rejected row or file.
    """
    root = Path(root)
    _, rows, rejections = read_rows(root)
    root_real = root.resolve()
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    named: set[tuple[int | None, str]] = set()
    for row in rows:
        name = str(row.values["slice_file_name"]).strip()
        fold = _as_int(row.values.get("fold"))
        named.add((fold, name))
        clip_or_reason = _check_row(row, name, root, root_real, seen)
        if isinstance(clip_or_reason, Clip):
            clips.append(clip_or_reason)
            seen[name] = row.line
        else:
            rejections.append(Rejection(file=_display_path(name, fold), reason=clip_or_reason,
                                        fold=fold))
    audio_dir = root / "audio"
    fold_dirs = []
    if not _inside(audio_dir.resolve(), root_real):
        rejections.append(Rejection(file="audio/", reason="folder is a link that leads outside "
                                                          "the dataset folder; it is not read"))
    elif audio_dir.is_dir():
        fold_dirs = sorted(audio_dir.glob("fold*"))
    for fold_dir in fold_dirs:
        fold = _as_int(fold_dir.name[len("fold"):])
        if fold is None or not fold_dir.is_dir():
            continue
        shown = f"audio/{printable(fold_dir.name)}"
        if not _inside(fold_dir.resolve(), root_real):
            rejections.append(Rejection(file=shown + "/", fold=fold,
                                        reason="folder is a link that leads outside the dataset "
                                               "folder; its files are not read"))
            continue
        try:
            entries = sorted(fold_dir.iterdir())
        except OSError as exc:
            rejections.append(Rejection(file=shown + "/", fold=fold,
                                        reason=f"cannot list folder ({exc.strerror or exc})"))
            continue
        for path in entries:
            if path.name.startswith(".") or (fold, path.name) in named:
                continue
            if path.is_file() or path.is_symlink():
                reason = "no metadata row names this file"
                if _not_utf8(path.name):
                    reason += " (its name is not valid UTF-8)"
                rejections.append(Rejection(file=f"{shown}/{printable(path.name)}",
                                            reason=reason, fold=fold))
    clips.sort(key=lambda c: (c.fold, c.file_name))
    return clips, rejections


def _check_row(row: _Row, name: str, root: Path, root_real: Path,
               seen: dict[str, int]) -> Clip | str:
    values = row.values
    fold = _as_int(values["fold"])
    if fold is None or fold not in ALL_FOLDS:
        return f"fold {values['fold']!r} is not one of 1..10"
    class_id = _as_int(values["classID"])
    if class_id is None or not 0 <= class_id < len(CLASS_NAMES):
        return f"classID {values['classID']!r} is not one of 0..9"
    class_name = str(values["class"]).strip()
    if class_name != CLASS_NAMES[class_id]:
        return (f"class {class_name!r} disagrees with classID {class_id} "
                f"({CLASS_NAMES[class_id]!r})")
    if (not name or name in (".", "..") or "/" in name or "\\" in name or os.path.isabs(name)
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)):
        return f"file name {name!r} is not a plain file name"
    match = _NAME_PATTERN.match(name)
    if match and int(match.group(2)) != class_id:
        return f"file name encodes classID {int(match.group(2))} but the row says {class_id}"
    if name in seen:
        return f"duplicate row (CSV line {row.line} repeats line {seen[name]})"
    path = root / "audio" / f"fold{fold}" / name
    try:
        if not (path.exists() or path.is_symlink()):
            return "audio file not found"
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loop, permission
        return f"cannot resolve path ({exc})"
    if not _inside(real, root_real):
        return "file is a link that leads outside the dataset folder"
    fold_real = (root / "audio" / f"fold{fold}").resolve()
    if not _inside(real, fold_real):
        # a link into another fold would put one recording in two folds
        return f"file is a link that leads outside audio/fold{fold} (to {real.parent.name}/)"
    if not real.exists():
        return "audio file not found (broken link)"
    if not real.is_file():
        return "not a regular file"
    return Clip(file_name=name, path=str(path), fold=fold, class_id=class_id,
                class_name=class_name, fs_id=_as_int(values["fsID"]) or 0,
                salience=_as_int(values["salience"]) or 0)


def dataset_fingerprint(clips: list[Clip]) -> str:
    """SHA-256 (16 hex digits) of the accepted listing: fold, name, class, size in bytes."""
    digest = hashlib.sha256()
    for c in sorted(clips, key=lambda c: (c.fold, c.file_name)):
        size = os.stat(c.path).st_size
        digest.update(f"{c.fold}\t{c.file_name}\t{c.class_id}\t{size}\n".encode())
    return digest.hexdigest()[:16]


def _as_int(value) -> int | None:
    try:
        text = str(value).strip()
        number = float(text)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _display_path(name: str, fold: int | None) -> str:
    shown = printable(name)
    return f"audio/fold{fold}/{shown}" if fold is not None else shown


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _not_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(name: str) -> str:
    """``name`` safe for a one-line message, JSON and UTF-8 files: bytes that were
    not UTF-8 (surrogate escapes) become ``\\xNN``, control characters ``\\n``,
    ``\\x00``..."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace") if _not_utf8(name) else name
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        text = "".join(ch.encode("unicode_escape").decode("ascii")
                       if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    return text
