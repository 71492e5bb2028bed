"""What a dataset listing is made of, and the checks every layout shares (a leaf).

:class:`Clip` (one usable audio file with its label and fold), :class:`Rejection` (a
row or file that cannot be used, and why), :class:`Listing` (what a layout found),
:class:`DatasetError` (the dataset as a whole cannot be read), and the checks and
readers the layouts of :mod:`urbansound.layouts` share: the CSV reader that rejects
one bad row alone (:func:`read_table`), confinement to the dataset folder
(:func:`check_file`), and names made safe for one-line messages (:func:`printable`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from urbansound.config import CLASS_NAMES

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,40}")
_DECIMAL_TEXT = re.compile(r"[+-]?[0-9]{0,40}\.[0-9]{0,40}")
INT64_MAX = 2**63 - 1


class DatasetError(Exception):
    """The dataset as a whole cannot be used (the message says why and where)."""


@dataclass(frozen=True)
class Clip:
    """One accepted row or file.  In the UrbanSound8K layout a file inside
    ``audio/fold<fold>/``; in the others (:mod:`urbansound.layouts`) ``file_name`` is the
    path relative to the dataset folder, ``fs_id`` a number standing for its recording
    group, salience 0 when the dataset does not say."""

    file_name: str
    path: str
    fold: int
    class_id: int
    class_name: str
    fs_id: int
    salience: int
    rel_path: str = ""  # as shown in reports; empty: audio/fold<fold>/<file_name>

    @property
    def relative(self) -> str:
        """The file's path relative to the dataset folder, as reports show it."""
        return self.rel_path or f"audio/fold{self.fold}/{self.file_name}"


@dataclass(frozen=True)
class Rejection:
    """A row or file left out of the run, and why."""

    file: str
    reason: str
    fold: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    line: int  # CSV line where the row starts (the header is line 1)
    values: dict


def missing_csv(csv_path: Path, message: str, what: str = "metadata CSV") -> DatasetError:
    """The error for a CSV path that is not a regular file: ``message`` (e.g. "metadata
    CSV not found ...") when nothing is there, else what is there instead (a folder, a
    device, a FIFO: never called "not found", never opened)."""
    from urbansound.files import regular_file_problem

    problem = regular_file_problem(csv_path)
    if problem and not problem.startswith("no such file"):
        return DatasetError(f"{csv_path}: {what}: {problem}")
    return DatasetError(f"{csv_path}: {message}")


def check_root(root: Path) -> None:
    """Raise :class:`DatasetError` unless ``root`` is a folder."""
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"{root}: dataset folder {what}")


def read_table(
    csv_path: Path,
    *,
    root: Path | None,
    required: tuple[str, ...],
    name_column: str,
    what: str = "metadata CSV",
) -> tuple[list[str], list[Row], list[Rejection]]:
    """Parse any metadata CSV as :func:`read_rows` does (the same row-level checks and
    messages): ``required`` columns must be present once; ``name_column`` names the
    file in a rejection.  ``root``: the CSV must not be a link leading outside it
    (None: a CSV the user named, read wherever it is)."""
    if not csv_path.is_file():
        raise missing_csv(csv_path, f"{what} not found", what)
    if root is not None and not is_inside(csv_path.resolve(), root.resolve()):
        raise DatasetError(
            f"{csv_path}: the {what} is a link that leads outside the dataset folder"
        )
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{csv_path}: cannot read ({exc.strerror or exc})") from None
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():
        raise DatasetError(f"{csv_path}: empty file (expected a header line {','.join(required)})")
    records = _split_records(raw)
    header_record = records.pop(0)
    problem = header_record.problem()
    if problem is None and not header_record.fields:
        problem = "no fields"
    if problem is not None:
        if problem.startswith(("not UTF-8", "contains NUL")):
            raise DatasetError(
                f"{csv_path}: {problem}; the header line {header_record.line} "
                f"cannot be read (re-save the CSV as UTF-8 text)"
            )
        raise DatasetError(
            f"{csv_path}: cannot parse the header (CSV line {header_record.line}: {problem})"
        )
    header = [c.strip() for c in header_record.fields]
    missing = [c for c in required if c not in header]
    if missing:
        hints = [
            f"{c!r} for {h!r}"
            for c in missing
            for h in header
            if h.lower().replace("_", "") == c.lower().replace("_", "") and h != c
        ]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        separators = [sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]]
        if separators:
            hint = (
                f" (the header is one field: are the columns separated by {separators[0]!r} "
                f"instead of commas?)"
            )
        raise DatasetError(
            f"{csv_path}: missing column(s) {missing}; found "
            f"{[shorten(h) for h in header][:20]}{hint}"
        )
    repeated = sorted({c for c in required if header.count(c) > 1})
    if repeated:
        raise DatasetError(f"{csv_path}: column(s) {repeated} appear more than once")
    name_index = header.index(name_column)
    rows: list[Row] = []
    bad: list[Rejection] = []
    for record in records:
        fields, line = record.fields, record.line
        problem, name = record.problem(), ""
        if problem is None and len(fields) != len(header):
            # the fields parsed: its file name is worth showing
            problem = f"{len(fields)} fields, the header has {len(header)}"
            name = fields[name_index].strip() if len(fields) > name_index else ""
        if problem is None and [f.strip().lstrip("\ufeff") for f in fields] == header:
            problem = "repeats the header line"
        if problem is not None:
            bad.append(
                Rejection(
                    file=shorten(printable(name)) or f"CSV line {line}",
                    reason=f"CSV line {line}: {problem}",
                )
            )
            continue
        rows.append(Row(line=line, values=dict(zip(header, fields))))
    return header, rows, bad


@dataclass
class _Record:
    """One CSV row as split from the file: its first line, its text and fields."""

    line: int  # the file's line where the row starts (1-based)
    offset: int  # byte offset of that line in the file
    text: str  # decoded with surrogateescape: undecodable bytes survive as \udc80..\udcff
    fields: list[str]
    error: str | None = None  # why it could not be split or parsed

    def problem(self) -> str | None:
        """Why this row cannot be used as text, or None."""
        if self.error is not None:
            return self.error
        bad = _SURROGATE.search(self.text)
        if bad is not None:
            byte = ord(bad.group()) - 0xDC00
            offset = self.offset + len(self.text[: bad.start()].encode("utf-8", "surrogateescape"))
            return f"not UTF-8 text (byte 0x{byte:02x} at byte offset {offset})"
        if "\0" in self.text:
            return "contains NUL bytes"
        return None


_LINE_END = re.compile(rb"\r\n|\r|\n")
_SURROGATE = re.compile("[\udc80-\udcff]")
_START, _FIELD, _QUOTED, _QUOTE_SEEN = range(4)


def _split_records(raw: bytes) -> list[_Record]:
    """Split the CSV into rows: non-blank records, each with its first line number.

    A quoted field may run over several lines (the csv module's default
    dialect).  A quote is taken as stray when it is never closed, or when the
    lines it joins make a record whose field count differs from the first
    record's (the header's), or when a line between its opening and closing
    lines is a complete row by itself: its own line becomes a record with
    ``error`` set and the following lines are split afresh, so one bad quote
    costs one row.
    """
    base = 3 if raw.startswith(b"\xef\xbb\xbf") else 0  # UTF-8 byte-order mark
    lines, offsets, pos = [], [], base
    for match in _LINE_END.finditer(raw, base):
        lines.append(raw[pos : match.end()].decode("utf-8", "surrogateescape"))
        offsets.append(pos)
        pos = match.end()
    if pos < len(raw):
        lines.append(raw[pos:].decode("utf-8", "surrogateescape"))
        offsets.append(pos)
    records: list[_Record] = []
    width = None  # field count of the header, once read
    i = 0
    while i < len(lines):
        j = i
        inside = _quote_open_after(lines[i], False)
        while inside and j + 1 < len(lines):
            j += 1
            inside = _quote_open_after(lines[j], True)
        if inside:  # open at the end of the file: only this line is lost
            j = i
        text = "".join(lines[i : j + 1])
        record = _Record(line=i + 1, offset=offsets[i], text=text, fields=[])
        try:
            record.fields = _parse_fields(text)
        except csv.Error as exc:
            # the csv module's only complaint here is a field over its size limit
            record.error = f"cannot be parsed as CSV ({exc})"
        if inside:
            record.error = 'a quote (") opened on this line is never closed'
        elif (
            j > i
            and width is not None
            and (
                record.error
                or len(record.fields) != width
                or any(_row_width(lines[k]) == width for k in range(i + 1, j))
            )
        ):
            # A quoted field may hold a line break, but not whole rows: the quote is stray.
            record.error = (
                f'a quote (") opened on this line is closed only on line {j + 1}; '
                f"this line is rejected alone and the lines after it are read as "
                f"rows of their own"
            )
            record.text, record.fields, j = lines[i], [], i
        if record.error is None and not any(f.strip() for f in record.fields):
            i = j + 1
            continue  # blank line (or only commas)
        if width is None:
            width = len(record.fields)
        records.append(record)
        i = j + 1
    if not records:
        records.append(_Record(line=1, offset=base, text="", fields=[]))
    return records


def _quote_open_after(line: str, inside: bool) -> bool:
    """Whether a quoted field is still open at the end of ``line``, given whether one
    was open at its start.  Follows the csv module's default dialect: a quote opens a
    field only at the field's start, ``""`` inside quotes is a literal quote, and a
    quote elsewhere is an ordinary character."""
    if '"' not in line:
        return inside
    state = _QUOTED if inside else _START
    for ch in line:
        if state == _START:
            state = _QUOTED if ch == '"' else _START if ch == "," else _FIELD
        elif state == _FIELD:
            if ch == ",":
                state = _START
        elif state == _QUOTED:
            if ch == '"':
                state = _QUOTE_SEEN
        else:  # a quote inside a quoted field: escaped ("") or the field's end
            state = _QUOTED if ch == '"' else _START if ch == "," else _FIELD
    return state == _QUOTED


def _row_width(line: str) -> int | None:
    """The field count of ``line`` read alone as a row, or None when it cannot be one."""
    if _quote_open_after(line, False):
        return None
    try:
        return len(_parse_fields(line))
    except csv.Error:
        return None


def _parse_fields(text: str) -> list[str]:
    """The fields of one record's text (possibly several lines inside quotes)."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0] if rows else []


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a one-line message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Listing:
    """What :func:`scan_dataset` (or a layout of :mod:`urbansound.layouts`) found:
    accepted clips, rejections, and how many non-blank CSV rows were read (accepted
    or not; the header is not counted) — files listed, for a layout without a CSV.

    class_names : the classes in label order (``Clip.class_id`` indexes it).
    layout : the layout read; root : the dataset folder (paths are confined to it).
    unit : what ``rows_read`` counts, for messages.  split : how folds were made
    (the folder-per-class layout), for the manifest.  warnings : dataset-level notes.
    """

    clips: list[Clip]
    rejections: list[Rejection]
    rows_read: int
    class_names: tuple[str, ...] = CLASS_NAMES
    layout: str = "urbansound8k"
    root: str = ""
    unit: str = "CSV rows"
    split: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def check_file(
    path: Path, root_real: Path, *, within: Path | None = None, within_name: str = ""
) -> str | None:
    """Why the audio file ``path`` cannot be used, or None: missing, a link leading
    outside the dataset folder (``root_real``, resolved) or outside ``within`` (a
    subfolder it must stay in, shown as ``within_name``), a broken link, not a regular
    file.  Nothing outside the dataset folder is opened."""
    try:
        if not (path.exists() or path.is_symlink()):
            return "audio file not found"
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loop, permission
        # Python 3.11's resolve() reports a loop as a RuntimeError, which has no strerror
        return f"cannot resolve path ({getattr(exc, 'strerror', None) or exc})"
    if not is_inside(real, root_real):
        return "file is a link that leads outside the dataset folder"
    if within is not None and not is_inside(real, within.resolve()):
        return f"file is a link that leads outside {within_name} (to {real.parent.name}/)"
    if not real.exists():
        return "audio file not found (broken link)"
    if not real.is_file():
        from urbansound.files import kind_of

        return f"not a regular file ({kind_of(real.stat().st_mode)})"
    return None


def plain_relative_path(text: str) -> str | None:
    """Why ``text`` is not a plain relative path inside a folder (``a/b.wav``), or None:
    empty, absolute, a ``..`` or ``.`` part, a backslash, control characters."""
    parts = text.split("/")
    if (
        not text
        or os.path.isabs(text)
        or "\\" in text
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in text)
    ):
        return f"path {show_value(text)} is not a plain relative path inside the dataset folder"
    return None


def as_int(value) -> int | None:
    """``value`` as an integer, or None.  Digits with an optional sign (``"3"``,
    ``" +3 "``) or a plain decimal with an integral value (``"3.0"``); not an
    exponent (``"1e30"``), ``nan``/``inf``, or more than 40 characters.  Digits are
    read exactly, never through a float (which would round ``2**53 + 1``)."""
    text = str(value).strip()
    if _INT_TEXT.fullmatch(text):
        return int(text)
    if _DECIMAL_TEXT.fullmatch(text):
        whole, _, fraction = text.partition(".")
        if not fraction.strip("0") and whole.lstrip("+-"):
            return int(whole)
    return None


def show_value(value) -> str:
    """A CSV value quoted for a one-line message (long values cut short)."""
    return repr(shorten(str(value)))


def is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def not_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(name: str) -> str:
    """``name`` safe for a one-line message, JSON and UTF-8 files: bytes that were
    not UTF-8 (surrogate escapes) become ``\\xNN``, control characters ``\\n``,
    ``\\x00``..."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace") if not_utf8(name) else name
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        text = "".join(
            ch.encode("unicode_escape").decode("ascii") if ord(ch) < 32 or ord(ch) == 127 else ch
            for ch in text
        )
    return text
