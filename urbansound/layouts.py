"""Dataset layouts: where the clips, their classes and their folds come from.

Every layout produces the same :class:`urbansound.listing.Listing` that ingest reads
(accepted :class:`~urbansound.listing.Clip` objects, one
:class:`~urbansound.listing.Rejection` per row or file that cannot be used, the class
names in label order), so decoding, rejections with reasons, the confinement of every
path to the dataset folder and strict mode are the same for all of them.

``urbansound8k``
    ``metadata/UrbanSound8K.csv`` + ``audio/fold<k>/`` (:func:`urbansound.dataset.scan_dataset`);
    the ten classes of :data:`urbansound.config.CLASS_NAMES`.
``esc50``
    ``meta/esc50.csv`` (``filename, fold, target, category``; ``src_file``, ``esc10``,
    ``take`` optional) + ``audio/<filename>``; classes ordered by ``target`` (labels are
    0..n-1 in that order); clips are 5 s (:data:`LAYOUT_SETTINGS`).
``folders``
    ``ROOT/<class>/<file>``, a folder per class (classes sorted by name; hidden entries
    and files directly in ROOT are not read; a folder inside a class folder is reported).
    Folds come from ``data.folds_from`` (a CSV ``file,fold``) or from a seeded split into
    ``data.n_folds`` folds **grouped by recording** (:func:`group_key`,
    :func:`grouped_folds`): files of one recording never land in two folds.
``csv``
    a CSV with columns ``path, label, fold`` and optional ``group``, ``salience``; paths
    relative to the CSV's folder, which is the dataset folder; classes sorted by name.
    Audio files the CSV does not name are not looked for.

Folds are 1..10 in every layout (``--folds`` takes those).  Nothing outside the dataset
folder is opened, except the ``folds_from`` CSV the user names.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from urbansound.config import ALL_FOLDS, CLASS_NAMES, DEFAULT_GROUP_PATTERN, DataConfig
from urbansound.dataset import scan_dataset
from urbansound.listing import (
    INT64_MAX,
    Clip,
    DatasetError,
    Listing,
    Rejection,
    as_int,
    check_file,
    check_root,
    is_inside,
    missing_csv,
    not_utf8,
    plain_relative_path,
    printable,
    read_table,
    shorten,
    show_value,
)
from urbansound.messages import names_excerpt

ESC50_CSV = Path("meta") / "esc50.csv"
ESC50_COLUMNS = ("filename", "fold", "target", "category")
CSV_COLUMNS = ("path", "label", "fold")
FOLDS_FROM_COLUMNS = ("file", "fold")

LAYOUT_SETTINGS: dict[str, dict[str, float]] = {"esc50": {"audio.clip_seconds": 5.0}}
"""Configuration a layout brings (ESC-50's clips are 5 s): applied by the command line
unless the user set the key (:func:`layout_overrides`)."""


def detect_layout(data: str | os.PathLike) -> str:
    """The layout of the dataset at ``data``: a CSV file → ``csv``;
    ``metadata/UrbanSound8K.csv`` or ``audio/fold*/`` → ``urbansound8k``;
    ``meta/esc50.csv`` → ``esc50``; one ``*.csv`` at the top whose header has ``path`` and
    ``label`` → ``csv``; sub-folders → ``folders``.

    Raises
    ------
    DatasetError
        ``data`` is missing, or none of these fits (the message lists them).
    """
    data = Path(data)
    if data.is_file() and data.suffix.lower() == ".csv":
        return "csv"
    check_root(data)
    if (data / "metadata" / "UrbanSound8K.csv").exists() or any(
        p.is_dir() for p in (data / "audio").glob("fold*")
    ):
        return "urbansound8k"
    if (data / ESC50_CSV).exists():
        return "esc50"
    if _generic_csv(data) is not None:
        return "csv"
    if any(p.is_dir() and not p.name.startswith(".") for p in _entries(data)):
        return "folders"
    raise DatasetError(
        f"{data}: cannot tell the dataset's layout: expected metadata/UrbanSound8K.csv "
        f"(UrbanSound8K), meta/esc50.csv (ESC-50), a CSV with columns path,label,fold, or a "
        f"folder per class; name one with --layout"
    )


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _generic_csv(folder: Path) -> Path | None:
    """The one top-level ``*.csv`` of ``folder`` whose header names ``path`` and ``label``."""
    found = []
    for p in _entries(folder):
        if p.suffix.lower() == ".csv" and p.is_file():
            try:
                with open(p, encoding="utf-8", errors="replace") as fh:
                    header = [c.strip().lstrip("\ufeff") for c in fh.readline().split(",")]
            except OSError:
                continue
            if "path" in header and "label" in header:
                found.append(p)
    return found[0] if len(found) == 1 else None


def scan(data: str | os.PathLike, config: DataConfig | None = None) -> Listing:
    """List the dataset at ``data`` in the layout ``config.layout`` names (``auto``:
    :func:`detect_layout`).  See the module's docstring for each layout.

    Returns
    -------
    Listing : clips sorted by (fold, file name), rejections, class names, layout, root.

    Raises
    ------
    DatasetError
        the dataset as a whole cannot be read (missing folder or CSV, missing columns,
        ``class_names`` given for UrbanSound8K that are not its ten).
    """
    config = config or DataConfig()
    layout = detect_layout(data) if config.layout == "auto" else config.layout
    if layout == "urbansound8k":
        if config.class_names and tuple(config.class_names) != CLASS_NAMES:
            raise DatasetError(
                f"{data}: data.class_names {names_excerpt(config.class_names)} "
                f"are not UrbanSound8K's ten classes in classID order"
            )
        return scan_dataset(data)
    if layout == "esc50":
        return scan_esc50(data, config)
    if layout == "folders":
        return scan_folders(data, config)
    if layout == "csv":
        return scan_csv(data, config)
    raise DatasetError(f"unknown layout {layout!r}")


def list_clips(root: str | os.PathLike, data=None) -> tuple[list[Clip], list[Rejection]]:
    """The clips and rejections of the dataset at ``root``, in the layout ``data``
    (a :class:`urbansound.config.DataConfig`; default: detected) names."""
    listing = scan(root, data)
    return listing.clips, listing.rejections


def frames_for(config, clip_seconds: float) -> int:
    """Log-mel frames a clip of ``clip_seconds`` gives under ``config`` (``center=False``)."""
    samples = int(round(config.audio.sample_rate * clip_seconds))
    return 1 + (samples - config.features.n_fft) // config.features.hop_length


def apply_layout(config, layout: str, given: AbstractSet[str] = frozenset()):
    """``config`` with ``data.layout`` set and the settings the layout brings
    (:data:`LAYOUT_SETTINGS`) except the keys in ``given`` (set by the user).  A clip
    length comes with the log-mel frames it gives (``features.n_frames``: 214 for 5 s at
    the defaults) unless ``given`` has them, so the model sees the whole clip."""
    settings = {k: v for k, v in LAYOUT_SETTINGS.get(layout, {}).items() if k not in given}
    if "audio.clip_seconds" in settings and "features.n_frames" not in given:
        settings["features.n_frames"] = frames_for(config, settings["audio.clip_seconds"])
    return config.override(**{"data.layout": layout, **settings})


# -- recordings and the grouped split ----------------------------------------------------


def group_key(stem: str, pattern: str = DEFAULT_GROUP_PATTERN) -> str | None:
    """The recording key of a file-name stem: ``pattern``'s first group (or whole match)
    at the start of ``stem``; None when it does not match or matches nothing.

    >>> group_key("100032-3-0-0")
    '100032'
    """
    match = re.match(pattern, stem)
    if match is None:
        return None
    key = match.group(1) if match.re.groups else match.group(0)
    return key or None


def group_number(key: str) -> int:
    """A 64-bit ``fs_id`` standing for a group key: the key itself when it is a whole
    number that fits, else 60 bits of its SHA-256."""
    if re.fullmatch(r"[0-9]{1,19}", key) and int(key) <= INT64_MAX:
        return int(key)
    return int(hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:15], 16)


def grouped_folds(groups: dict[str, Counter], n_folds: int, seed: int) -> dict[str, int]:
    """Folds 1..``n_folds`` for recording groups, every group whole in one fold.

    ``groups`` maps a group key to its clips per class.  The groups are shuffled with
    ``seed``, then placed largest first, each into the fold with the fewest clips of the
    group's main class (then the fewest clips, then the lowest number), so classes and
    sizes spread evenly.  The same groups and seed give the same folds.
    """
    import numpy as np

    keys = sorted(groups)
    order = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    order.sort(key=lambda k: -sum(groups[k].values()))  # stable: the shuffle breaks ties
    totals = [0] * n_folds
    per_class: list[Counter] = [Counter() for _ in range(n_folds)]
    folds = {}
    for key in order:
        main = min(groups[key].items(), key=lambda kv: (-kv[1], kv[0]))[0]
        best = min(range(n_folds), key=lambda f: (per_class[f][main], totals[f], f))
        folds[key] = best + 1
        totals[best] += sum(groups[key].values())
        per_class[best].update(groups[key])
    return folds


# -- shared row handling --------------------------------------------------------------------


@dataclass
class _Entry:
    """A usable file before class ids are known."""

    rel: str
    path: Path
    fold: int | None
    class_name: str
    group: str
    salience: int = 0


def _fold(text) -> int | None:
    fold = as_int(text)
    return fold if fold in ALL_FOLDS else None


def _finish(
    root: Path,
    layout: str,
    entries: list[_Entry],
    rejections: list[Rejection],
    rows_read: int,
    config: DataConfig,
    *,
    order: list[str],
    unit: str,
    split: dict | None = None,
    warnings: list[str] | None = None,
) -> Listing:
    """Class ids from ``config.class_names`` (given) or ``order``; clips; leak warnings."""
    names = tuple(config.class_names) or tuple(order)
    index = {name: i for i, name in enumerate(names)}
    clips = []
    for e in entries:
        assert e.fold is not None  # every layout gives each entry its fold before _finish
        if e.class_name not in index:
            rejections.append(
                Rejection(
                    file=printable(e.rel),
                    fold=e.fold,
                    reason=f"class {show_value(e.class_name)} is not one of data.class_names",
                )
            )
            continue
        clips.append(
            Clip(
                file_name=e.rel,
                path=str(e.path),
                fold=e.fold,
                class_id=index[e.class_name],
                class_name=e.class_name,
                fs_id=group_number(e.group),
                salience=e.salience,
                rel_path=printable(e.rel),
            )
        )
    warnings = list(warnings or [])
    folds_of: dict[str, set[int]] = defaultdict(set)
    for e in entries:
        assert e.fold is not None
        folds_of[e.group].add(e.fold)
    split_groups = sorted(g for g, f in folds_of.items() if len(f) > 1)
    if split_groups:
        warnings.append(
            f"{len(split_groups)} recording group(s) appear in more than one fold "
            f"(first: {shorten(printable(split_groups[0]))!r} in folds "
            f"{sorted(folds_of[split_groups[0]])}): their clips can be in training "
            f"and test at once"
        )
    clips.sort(key=lambda c: (c.fold, c.file_name))
    return Listing(
        clips=clips,
        rejections=rejections,
        rows_read=rows_read,
        class_names=names,
        layout=layout,
        root=str(root),
        unit=unit,
        split=split or {},
        warnings=warnings,
    )


def _file_problem(
    root: Path, rel: str, within: Path | None = None, within_name: str = ""
) -> str | None:
    return check_file(root / rel, root.resolve(), within=within, within_name=within_name)


def _plain_name(name: str) -> str | None:
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or os.path.isabs(name)
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
    ):
        return f"file name {show_value(name)} is not a plain file name"
    return None


# -- ESC-50 -----------------------------------------------------------------------------------


def scan_esc50(root: str | os.PathLike, config: DataConfig = DataConfig()) -> Listing:
    """The ESC-50 layout: ``meta/esc50.csv`` rows checked against ``audio/``.

    A row is rejected when it cannot be parsed, its fold is not 1..10, its target is not a
    whole number >= 0, its category is empty or disagrees with an earlier row's for the
    same target (or the category has another target), its file name is not plain, the
    file is missing or leads outside ``audio/``, or it repeats a row.  Files in ``audio/``
    that no row names are rejected too.  The recording group is ``src_file`` when the CSV
    has it, else :func:`group_key` of the file name.
    """
    root = Path(root)
    check_root(root)
    csv_path = root / ESC50_CSV
    if not csv_path.is_file():
        raise missing_csv(
            csv_path,
            "metadata CSV not found (expected the ESC-50 layout: meta/esc50.csv and audio/)",
        )
    _header, rows, rejections = read_table(
        csv_path, root=root, required=ESC50_COLUMNS, name_column="filename"
    )
    rows_read = len(rows) + len(rejections)
    audio = root / "audio"
    target_of: dict[str, tuple[int, int]] = {}  # category -> (target, line)
    category_of: dict[int, tuple[str, int]] = {}
    entries: list[_Entry] = []
    seen: dict[str, int] = {}  # file name -> CSV line
    named: set[str] = set()
    for row in rows:
        v = row.values
        name = v["filename"].strip()
        named.add(name)
        shown = f"audio/{shorten(printable(name), 250)}"
        fold = _fold(v["fold"])
        target = as_int(v["target"])
        category = v["category"].strip()
        reason = None
        if fold is None:
            reason = f"fold {show_value(v['fold'])} is not one of 1..10"
        elif target is None or not 0 <= target <= INT64_MAX:
            reason = f"target {show_value(v['target'])} is not a whole number >= 0"
        elif not category:
            reason = "category is empty"
        elif target in category_of and category_of[target][0] != category:
            reason = (
                f"category {show_value(category)} disagrees with target {target} "
                f"({category_of[target][0]!r} on CSV line {category_of[target][1]})"
            )
        elif category in target_of and target_of[category][0] != target:
            reason = (
                f"target {target} disagrees with category {category!r} (target "
                f"{target_of[category][0]} on CSV line {target_of[category][1]})"
            )
        else:
            reason = _plain_name(name)
        if reason is None and name in seen:
            reason = f"duplicate row (CSV line {row.line} repeats line {seen[name]})"
        if reason is None:
            reason = _file_problem(root, f"audio/{name}", within=audio, within_name="audio/")
        if reason is not None:
            rejections.append(Rejection(file=shown, reason=reason, fold=fold))
            continue
        assert target is not None  # a row without one has a reason
        seen[name] = row.line
        category_of.setdefault(target, (category, row.line))
        target_of.setdefault(category, (target, row.line))
        source = v.get("src_file", "").strip()
        group = source or group_key(Path(name).stem, config.group_pattern) or Path(name).stem
        entries.append(
            _Entry(
                rel=f"audio/{name}", path=audio / name, fold=fold, class_name=category, group=group
            )
        )
    rejections += _unnamed_files(root, audio, named, "audio/")
    order = [category_of[t][0] for t in sorted(category_of)]
    return _finish(
        root, "esc50", entries, rejections, rows_read, config, order=order, unit="CSV rows"
    )


def _unnamed_files(root: Path, folder: Path, named: set[str], shown: str) -> list[Rejection]:
    """Files in ``folder`` that no row names (hidden ones skipped)."""
    if not folder.is_dir():
        return []
    if not is_inside(folder.resolve(), root.resolve()):
        return [
            Rejection(
                file=shown,
                reason="folder is a link that leads outside the dataset folder; it is not read",
            )
        ]
    out = []
    for path in _entries(folder):
        if path.name.startswith(".") or path.name in named:
            continue
        if path.is_file() or path.is_symlink():
            reason = "no metadata row names this file"
            if not_utf8(path.name):
                reason += " (its name is not valid UTF-8)"
            out.append(Rejection(file=f"{shown}{printable(path.name)}", reason=reason))
    return out


# -- a folder per class ----------------------------------------------------------------------


def scan_folders(root: str | os.PathLike, config: DataConfig = DataConfig()) -> Listing:
    """The folder-per-class layout: every non-hidden file of ``ROOT/<class>/``.

    Folds come from ``config.folds_from`` or, without it, :func:`grouped_folds` over the
    recording groups (:func:`group_key` of each file's stem with ``config.group_pattern``;
    a file whose name the pattern does not match is rejected).  Rejected: a class folder
    that is a link leading outside the dataset folder, a folder inside a class folder,
    a file that is a link leading outside its class folder, a file with no row in the
    ``folds_from`` CSV (and a row naming no file, or an unusable fold).
    """
    root = Path(root)
    check_root(root)
    root_real = root.resolve()
    rejections: list[Rejection] = []
    found: list[_Entry] = []
    class_dirs = [p for p in _entries(root) if not p.name.startswith(".") and p.is_dir()]
    if not class_dirs:
        raise DatasetError(f"{root}: no class folders (expected ROOT/<class>/<audio file>)")
    for class_dir in class_dirs:
        cls = class_dir.name
        if not_utf8(cls):  # the class name goes into the records and manifest.json as text
            rejections.append(
                Rejection(
                    file=printable(cls) + "/",
                    reason="folder name is not valid UTF-8 (rename it); its files are not read",
                )
            )
            continue
        if not is_inside(class_dir.resolve(), root_real):
            rejections.append(
                Rejection(
                    file=printable(cls) + "/",
                    reason="folder is a link that leads outside the dataset "
                    "folder; its files are not read",
                )
            )
            continue
        try:
            files = sorted(class_dir.iterdir())
        except OSError as exc:
            rejections.append(
                Rejection(
                    file=printable(cls) + "/", reason=f"cannot list folder ({exc.strerror or exc})"
                )
            )
            continue
        for path in files:
            if path.name.startswith("."):
                continue
            rel = f"{cls}/{path.name}"
            if not_utf8(path.name):
                rejections.append(
                    Rejection(
                        file=printable(rel), reason="file name is not valid UTF-8 (rename it)"
                    )
                )
                continue
            if path.is_dir() and not path.is_symlink():
                rejections.append(
                    Rejection(
                        file=printable(rel) + "/",
                        reason="a folder inside a class folder is not read "
                        "(expected ROOT/<class>/<file>)",
                    )
                )
                continue
            reason = _file_problem(root, rel, within=class_dir, within_name=f"{cls}/")
            if reason is not None:
                rejections.append(Rejection(file=printable(rel), reason=reason))
                continue
            found.append(_Entry(rel=rel, path=path, fold=None, class_name=cls, group=""))
    rows_read = len(found) + len(rejections)
    entries = []
    for e in found:
        key = group_key(Path(e.rel).stem, config.group_pattern)
        if key is None:
            rejections.append(
                Rejection(
                    file=printable(e.rel),
                    reason=(
                        f"file name does not match the group pattern {config.group_pattern!r} "
                        f"(data.group_pattern / --group-pattern): its recording is unknown"
                    ),
                )
            )
            continue
        e.group = key
        entries.append(e)
    warnings: list[str] = []
    if config.folds_from:
        entries = _folds_from_csv(Path(config.folds_from), entries, rejections)
        split: dict[str, object] = {"method": "folds_from", "folds_from": config.folds_from}
    else:
        groups: dict[str, Counter] = defaultdict(Counter)
        for e in entries:
            groups[e.group][e.class_name] += 1
        folds = grouped_folds(groups, config.n_folds, config.split_seed)
        for e in entries:
            e.fold = folds[e.group]
        split = {
            "method": "grouped",
            "n_folds": config.n_folds,
            "seed": config.split_seed,
            "group_pattern": config.group_pattern,
            "groups": len(groups),
            "groups_per_fold": dict(sorted(Counter(folds.values()).items())),
        }
        per_class = defaultdict(set)
        for key, counts in groups.items():
            for cls in counts:
                per_class[cls].add(key)
        few = sorted(c for c, keys in per_class.items() if len(keys) < config.n_folds)
        if few:
            warnings.append(
                f"class(es) {', '.join(few[:5])}{' ...' if len(few) > 5 else ''} "
                f"have fewer recording groups than the {config.n_folds} folds "
                f"(group pattern {config.group_pattern!r}): some folds will have "
                f"none of their clips"
            )
    order = sorted({e.class_name for e in found})
    return _finish(
        root,
        "folders",
        entries,
        rejections,
        rows_read,
        config,
        order=order,
        unit="files",
        split=split,
        warnings=warnings,
    )


def _folds_from_csv(
    csv_path: Path, entries: list[_Entry], rejections: list[Rejection]
) -> list[_Entry]:
    """Folds of the folder-per-class files from a ``file,fold`` CSV: ``file`` is the path
    relative to the dataset folder (``dog/1.wav``) or a bare file name that is unique."""
    _, rows, bad = read_table(
        csv_path,
        root=None,
        required=FOLDS_FROM_COLUMNS,
        name_column="file",
        what="folds CSV (--folds-from)",
    )
    rejections += [Rejection(file=r.file, reason=f"{csv_path.name}: {r.reason}") for r in bad]
    by_rel = {e.rel: e for e in entries}
    by_name: dict[str, list[_Entry]] = defaultdict(list)
    for e in entries:
        by_name[Path(e.rel).name].append(e)
    where = f"{csv_path.name} line"
    assigned: dict[str, int] = {}
    for row in rows:
        file, fold = row.values["file"].strip(), _fold(row.values["fold"])
        entry = by_rel.get(file)
        if entry is None and len(by_name.get(file, [])) == 1:
            entry = by_name[file][0]
        if entry is None:
            unmatched = (
                f"named on {where} {row.line}, but this file name is in several class "
                f"folders (write <class>/<file>)"
                if by_name.get(file)
                else f"named on {where} {row.line}: no such usable file in a class folder"
            )
            rejections.append(
                Rejection(file=shorten(printable(file), 250), reason=unmatched, fold=fold)
            )
            continue
        reason: str | None = None
        if fold is None:
            reason = (
                f"{where} {row.line}: fold {show_value(row.values['fold'])} is not one of 1..10"
            )
        elif entry.rel in assigned:
            reason = f"{where} {row.line}: a second fold for this file (line {assigned[entry.rel]})"
        if entry.rel not in assigned:
            assigned[entry.rel] = row.line
        if reason is not None:
            rejections.append(Rejection(file=printable(entry.rel), reason=reason, fold=fold))
            entry.fold = -1  # a bad fold or two folds: the file is not used
            continue
        entry.fold = fold
    kept = []
    for e in entries:
        if e.fold is None:
            rejections.append(
                Rejection(file=printable(e.rel), reason=f"no fold for this file in {csv_path}")
            )
        elif e.fold > 0:
            kept.append(e)
    return kept


# -- a generic CSV ------------------------------------------------------------------------------


def scan_csv(data: str | os.PathLike, config: DataConfig = DataConfig()) -> Listing:
    """The generic CSV layout: ``data`` is the CSV, or a folder holding exactly one top-level
    CSV whose header names ``path`` and ``label``.

    Columns ``path, label, fold`` (required), ``group``, ``salience`` (optional: 1
    foreground, 2 background, empty unknown).  A row is rejected when it cannot be parsed,
    its path is not a plain relative path (absolute, ``..``) or leads (through links)
    outside the CSV's folder, its file is missing, its label is empty, its fold is not
    1..10, its salience not 1 or 2, or it repeats a path.  Without ``group`` a row's
    recording group is :func:`group_key` of its file name (for the leak warning only).
    """
    data = Path(data)
    if data.is_dir():
        csv_path = _generic_csv(data)
        if csv_path is None:
            raise DatasetError(
                f"{data}: expected one CSV with columns path,label,fold at the top "
                f"of the folder (or give the CSV itself as --data)"
            )
    else:
        csv_path = data
        if not csv_path.is_file():
            raise missing_csv(csv_path, "dataset CSV does not exist", "dataset CSV")
    root = csv_path.parent
    _header, rows, rejections = read_table(
        csv_path, root=root, required=CSV_COLUMNS, name_column="path"
    )
    rows_read = len(rows) + len(rejections)
    entries: list[_Entry] = []
    seen: dict[str, int] = {}  # path -> CSV line
    for row in rows:
        v = row.values
        rel = v["path"].strip()
        fold = _fold(v["fold"])
        label = v["label"].strip()
        salience_text = v.get("salience", "").strip()
        salience = as_int(salience_text) if salience_text else 0
        reason = plain_relative_path(rel)
        if reason is None and not label:
            reason = "label is empty"
        if reason is None and fold is None:
            reason = f"fold {show_value(v['fold'])} is not one of 1..10"
        if reason is None and salience not in (0, 1, 2):
            reason = f"salience {show_value(salience_text)} is not 1 (foreground) or 2 (background)"
        if reason is None and rel in seen:
            reason = f"duplicate row (CSV line {row.line} repeats line {seen[rel]})"
        if reason is None:
            reason = _file_problem(root, rel)
        if reason is not None:
            rejections.append(
                Rejection(file=shorten(printable(rel), 250), reason=reason, fold=fold)
            )
            continue
        assert salience is not None  # a row without one has a reason
        seen[rel] = row.line
        group = (
            v.get("group", "").strip()
            or group_key(Path(rel).stem, config.group_pattern)
            or Path(rel).stem
        )
        entries.append(
            _Entry(
                rel=rel,
                path=root / rel,
                fold=fold,
                class_name=label,
                group=group,
                salience=salience,
            )
        )
    order = sorted({e.class_name for e in entries})
    return _finish(
        root, "csv", entries, rejections, rows_read, config, order=order, unit="CSV rows"
    )
