"""The UrbanSound8K layout: read the metadata CSV and check every row against the audio.

A dataset root holds ``metadata/UrbanSound8K.csv`` and ``audio/fold<k>/<file>``.
:func:`list_clips` turns it into accepted :class:`Clip` objects plus a list of
:class:`Rejection` (file, reason) for every row or file that cannot be used, so
one bad row never stops a run.  Problems with the dataset as a whole (no CSV,
columns missing, nothing usable) raise :class:`DatasetError`.
"""
from __future__ import annotations

import hashlib
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

    Raises
    ------
    DatasetError
        root missing, CSV missing or unreadable, required columns absent.
    """
    import pandas as pd

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    csv_path = root / CSV_RELATIVE_PATH
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: metadata CSV not found (expected the UrbanSound8K layout: "
                           f"metadata/UrbanSound8K.csv and audio/fold1..fold10/)")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{csv_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except Exception as exc:  # pandas raises several parser error types
        raise DatasetError(f"{csv_path}: cannot parse CSV ({exc})") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{csv_path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def list_clips(root: str | os.PathLike) -> tuple[list[Clip], list[Rejection]]:
    """Check every CSV row and every audio file; return accepted clips and rejections.

    A row is rejected when its fold is not 1..10, its classID is not 0..9 or
    disagrees with its class name or with the classID in its file name, its file
    name is not a plain name (``../``, absolute paths), its file is missing or a
    link leading outside the dataset, or it repeats an earlier row.  Files under
    ``audio/fold*/`` that no row names are rejected too ("no metadata row").

    Returns
    -------
    clips : accepted rows, sorted by (fold, file name).
    rejections : one per rejected row or file.
    """
    root = Path(root)
    frame = read_metadata(root)
    audio_root = (root / "audio").resolve()
    clips: list[Clip] = []
    rejections: list[Rejection] = []
    seen: set[str] = set()
    for row in frame.to_dict("records"):
        name = str(row["slice_file_name"]).strip()
        clip_or_reason = _check_row(row, name, root, audio_root, seen)
        if isinstance(clip_or_reason, Clip):
            clips.append(clip_or_reason)
            seen.add(name)
        else:
            fold = _as_int(row.get("fold"))
            rejections.append(Rejection(file=_display_path(name, fold), reason=clip_or_reason,
                                        fold=fold))
    listed = {(c.fold, c.file_name) for c in clips} | {
        (r.fold, Path(r.file).name) for r in rejections if r.fold is not None}
    for fold_dir in sorted(root.joinpath("audio").glob("fold*")):
        fold = _as_int(fold_dir.name[len("fold"):])
        if not fold_dir.is_dir() or fold is None:
            continue
        for path in sorted(fold_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and (fold, path.name) not in listed:
                rejections.append(Rejection(file=f"audio/{fold_dir.name}/{path.name}",
                                            reason="no metadata row names this file", fold=fold))
    clips.sort(key=lambda c: (c.fold, c.file_name))
    return clips, rejections


def _check_row(row: dict, name: str, root: Path, audio_root: Path, seen: set[str]) -> Clip | str:
    fold = _as_int(row["fold"])
    if fold is None or fold not in ALL_FOLDS:
        return f"fold {row['fold']!r} is not one of 1..10"
    class_id = _as_int(row["classID"])
    if class_id is None or not 0 <= class_id < len(CLASS_NAMES):
        return f"classID {row['classID']!r} is not one of 0..9"
    class_name = str(row["class"]).strip()
    if class_name != CLASS_NAMES[class_id]:
        return (f"class {class_name!r} disagrees with classID {class_id} "
                f"({CLASS_NAMES[class_id]!r})")
    if not name or name in (".", "..") or "/" in name or "\\" in name or os.path.isabs(name):
        return f"file name {name!r} is not a plain file name"
    match = _NAME_PATTERN.match(name)
    if match and int(match.group(2)) != class_id:
        return f"file name encodes classID {int(match.group(2))} but the row says {class_id}"
    if name in seen:
        return "duplicate row (file already listed)"
    path = root / "audio" / f"fold{fold}" / name
    if not path.exists():
        return "audio file not found"
    real = path.resolve()
    if audio_root not in real.parents:
        return "file is a link that leads outside the dataset folder"
    if not real.is_file():
        return "not a regular file"
    return Clip(file_name=name, path=str(path), fold=fold, class_id=class_id,
                class_name=class_name, fs_id=_as_int(row["fsID"]) or 0,
                salience=_as_int(row["salience"]) or 0)


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
    return f"audio/fold{fold}/{name}" if fold is not None else name
