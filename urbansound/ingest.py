"""Stage 1, ingest: check the CSV against the audio, decode every clip, write TFRecords by fold.

Output directory::

    fold<k>.tfrecord   decoded clips of fold k (schema in :mod:`urbansound.records`)
    manifest.json      counts per fold and class, class names (label order), layout, how
                       folds were made, sample rate, dataset fingerprint
    report.json        every rejected row or file with its reason (also report.csv)

Bad clips are reported and skipped; ``strict=True`` turns any rejection into an
:class:`IngestError` after the report is written, so it can still be read.  A
failed ingest (strict, or no usable clip) leaves only report.json/report.csv:
no fold records and no manifest, so a later stage cannot mistake it for a good one.

Only the dataset folder is read and only ``out_dir`` is written.
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from urbansound.audio import AudioError, load_audio
from urbansound.config import CLASS_NAMES, Config
from urbansound.content_hash import DigestStats, content_digests
from urbansound.dataset import dataset_fingerprint
from urbansound.layouts import scan
from urbansound.listing import Clip, Rejection
from urbansound.manifest import MANIFEST, IngestError
from urbansound.outputs import claim_folder, record, remove_recorded
from urbansound.records import encode_waveform, write_tfrecord

REPORT = "report.json"
REPORT_CSV = "report.csv"

MOSTLY_REJECTED = 0.5
"""When more than this share of the CSV rows is rejected, ingest warns loudly: it
still succeeds, but the run is not the dataset the user thinks it is."""


@dataclass
class IngestResult:
    """What ingest wrote: accepted counts per fold, rejections, fingerprint, and
    how many CSV rows were read (non-blank, header excluded)."""

    out_dir: str
    counts: dict[int, int]
    rejections: list[Rejection]
    dataset_hash: str
    class_counts: dict[int, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rows_read: int = 0
    class_names: tuple[str, ...] = CLASS_NAMES  # label order
    layout: str = "urbansound8k"
    unit: str = "CSV rows"  # what rows_read counts
    split: dict = field(default_factory=dict)  # how folds were made (folder-per-class layout)
    digest_stats: DigestStats = field(default_factory=DigestStats)  # clips hashed / remembered

    @property
    def folds(self) -> list[int]:
        return sorted(f for f, n in self.counts.items() if n > 0)

    @property
    def accepted(self) -> int:
        return sum(self.counts.values())

    @property
    def report_path(self) -> str:
        return os.path.join(self.out_dir, REPORT)

    def summary_line(self) -> str:
        return (
            f"{self.accepted} clips accepted (of {self.rows_read} {self.unit}) in folds "
            f"{self.folds}, {len(self.rejections)} rejected (report: {self.report_path})"
        )


def _decode(job: tuple[str, int, dict]) -> tuple[bytes | None, str | None]:
    """Worker: decode one file and serialise it as ingest's record; return
    ``(record, None)`` or ``(None, the rejection reason)``."""
    path, sample_rate, fields = job
    try:
        y = load_audio(path, sample_rate=sample_rate)
    except AudioError as exc:
        return None, exc.reason
    try:
        return encode_waveform(y, sample_rate=sample_rate, **fields), None
    except ValueError as exc:  # list_clips checks every field; this only guards
        return None, f"cannot be written to the records ({exc})"


def ingest(
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: Config = Config(),
    strict: bool = False,
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
    digest_cache: str | os.PathLike | None = None,
) -> IngestResult:
    """Decode a dataset into per-fold TFRecords.

    Parameters
    ----------
    data_root : the dataset in one of the layouts of :mod:`urbansound.layouts` (the
        UrbanSound8K folder with ``metadata/UrbanSound8K.csv`` and ``audio/fold*/``, ESC-50,
        a folder per class, a CSV), as ``config.data`` says (default: detected).
    out_dir : created if missing; a new or empty folder, or an earlier ingest output: the
        files that ingest wrote there (its marker lists them) are replaced, nothing else
        is touched; a folder holding anything else is refused (:mod:`urbansound.outputs`).
    config : ``config.audio.sample_rate`` is the rate every clip is resampled to;
        ``config.data`` the layout, folds and class names.
    strict : raise :class:`IngestError` if anything was rejected.
    workers : decoding threads (default: CPU count); 1 decodes in the calling thread.
    progress : True: a progress bar on stderr; a callable: called as ``progress(done, total)``
        after each clip.
    digest_cache : a file remembering the clips' content digests between calls (see
        :mod:`urbansound.content_hash`; None: every clip is hashed).  The manifest's
        ``dataset_hash`` covers every accepted clip's bytes.

    Raises
    ------
    DatasetError
        the CSV is missing or malformed.
    OutputError
        ``out_dir`` is the dataset, or holds files ingest did not write.
    IngestError
        no clip could be used, the dataset has only one class, or ``strict`` and
        something was rejected.
    """
    listing = scan(data_root, config.data)
    clips, rejections = listing.clips, listing.rejections
    out = Path(out_dir)
    _check_out_dir(out, Path(listing.root or data_root), listing.layout)
    _check_classes(clips, data_root)
    ensure_writable_dir(out)
    # a folder of someone else's files is refused; in ours, only what we wrote is replaced
    claim_folder(out, "ingest", inputs=[("--data", data_root)], legacy=_legacy_outputs)
    remove_recorded(out)
    record(
        out,
        [f"fold{f}.tfrecord" for f in sorted({c.fold for c in clips})]
        + [MANIFEST, REPORT, REPORT_CSV],
    )
    sample_rate = config.audio.sample_rate
    counts: Counter[int] = Counter()
    class_counts: dict[int, Counter[str]] = {}
    writers = {}
    accepted: list[Clip] = []
    workers = workers or os.cpu_count() or 1
    # hashed before decoding (in threads): the decoder then reads from the page cache; a
    # caller that fingerprinted the tree just now passes its cache, and nothing is read twice
    digests, digest_stats = content_digests([c.path for c in clips], cache_file=digest_cache)
    try:
        decoded = _decode_all(clips, sample_rate, workers)
        if progress is True:
            from tqdm import tqdm

            decoded = tqdm(decoded, total=len(clips), desc="ingest", unit="clip")
        report = progress if callable(progress) else None
        for done, (clip, (example, reason)) in enumerate(zip(clips, decoded), start=1):
            if report is not None:
                report(done, len(clips))
            if example is None:
                rejections.append(Rejection(file=clip.relative, reason=reason, fold=clip.fold))
                continue
            if clip.fold not in writers:
                writers[clip.fold] = _RecordFile(out / f"fold{clip.fold}.tfrecord")
            writers[clip.fold].write(example)
            accepted.append(clip)
            counts[clip.fold] += 1
            class_counts.setdefault(clip.fold, Counter())[clip.class_name] += 1
    finally:
        for writer in writers.values():
            writer.close()
    class_counts_sorted = {k: dict(sorted(v.items())) for k, v in sorted(class_counts.items())}
    result = IngestResult(
        out_dir=str(out),
        counts=dict(sorted(counts.items())),
        rejections=rejections,
        dataset_hash=dataset_fingerprint(accepted, digests=digests),
        class_counts=class_counts_sorted,
        rows_read=listing.rows_read,
        class_names=tuple(listing.class_names),
        layout=listing.layout,
        unit=listing.unit,
        split=dict(listing.split),
        digest_stats=digest_stats,
    )
    result.warnings = (
        _mostly_rejected(result)
        + list(listing.warnings)
        + _class_gaps(class_counts_sorted, result.class_names)
    )
    failure = None
    if result.accepted == 0:
        what = (
            f"{len(rejections)} row(s) or file(s) rejected"
            if rejections
            else "the metadata CSV has no rows"
            if listing.unit == "CSV rows"
            else "the dataset lists no files"
        )
        failure = IngestError(f"{data_root}: no usable clip ({what}; see {result.report_path})")
    elif len({c.class_name for c in accepted}) < 2:
        failure = IngestError(
            f"{data_root}: only one class ({accepted[0].class_name!r}) among "
            f"the {result.accepted} clips accepted ({len(rejections)} "
            f"rejected; see {result.report_path}); a classifier needs at "
            f"least 2 classes"
        )
    elif strict and rejections:
        failure = IngestError(
            f"strict mode: {len(rejections)} row(s) or file(s) rejected, first: "
            f"{rejections[0].file}: {rejections[0].reason} "
            f"(see {result.report_path})"
        )
    _write_report(result, config, manifest=failure is None)
    if failure is not None:
        remove_recorded(out, keep=(REPORT, REPORT_CSV))
        raise failure
    return result


class _RecordFile:
    """One fold's TFRecord file; a failed write or close (a full disk) is an OSError that
    names the file, whatever the layer that noticed it."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = self._named(lambda: open(path, "wb"))

    def _named(self, call):
        try:
            return call()
        except OSError as exc:
            if exc.filename:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc

    def write(self, record: bytes) -> None:
        self._named(lambda: write_tfrecord(self._fh, record))

    def close(self) -> None:
        self._named(self._fh.close)


def _decode_all(clips: list[Clip], sample_rate: int, workers: int):
    """``(record, reason)`` per clip, in the clips' order (see :func:`_decode`)."""
    jobs = [
        (
            c.path,
            sample_rate,
            {
                "label": c.class_id,
                "fold": c.fold,
                "fs_id": c.fs_id,
                "salience": c.salience,
                "file_name": c.file_name,
                "class_name": c.class_name,
            },
        )
        for c in clips
    ]
    if workers <= 1 or len(jobs) < 32:
        yield from map(_decode, jobs)
        return
    # Threads, not processes: libsndfile, soxr and numpy release the GIL, and on the
    # full-size dataset (8,732 clips) a pool of two forked processes was no faster
    # (45.4 s against 44.8 s) while it has to stay clear of a parent holding threads.
    with futures.ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_decode, jobs)


def _check_out_dir(out: Path, data_root: Path, layout: str = "urbansound8k") -> None:
    """The output folder must not be inside the dataset's audio or metadata folders
    (its files would become "files with no row" or replace dataset files); in the
    other layouts not inside the dataset folder at all (it would become a class folder,
    or files of the dataset)."""
    real = out.resolve()
    if layout != "urbansound8k":
        inner = data_root.resolve()
        if real == inner or inner in real.parents:
            raise IngestError(
                f"{out}: output folder is inside the dataset folder; choose a "
                f"folder outside {data_root}"
            )
        return
    for part in ("audio", "metadata"):
        inner = (data_root / part).resolve()
        if real == inner or inner in real.parents:
            raise IngestError(
                f"{out}: output folder is inside the dataset's {part}/ folder; "
                f"choose a folder outside {data_root / part}"
            )


def _legacy_outputs(out: Path) -> list[str] | None:
    """The files an ingest of a version without output markers wrote in ``out`` (its
    manifest's folds, the manifest and the reports), or None when ``out`` holds anything
    else: then it is not ours (:func:`urbansound.outputs.claim_folder`)."""
    names = {p.name for p in out.iterdir()}
    ours = {REPORT, REPORT_CSV}
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and "dataset_hash" in manifest:
            ours |= {MANIFEST} | {f"fold{k}.tfrecord" for k in manifest.get("folds", {})}
    except (OSError, ValueError):
        pass
    return sorted(names) if names <= ours else None


def _check_classes(clips: list[Clip], data_root) -> None:
    """At least two classes among the listed clips: with one, every prediction is right
    and a run would report 100 % accuracy for a classifier that learnt nothing."""
    classes = sorted({c.class_name for c in clips})
    if len(classes) == 1:
        raise IngestError(
            f"{data_root}: only one class ({classes[0]!r}) in the dataset; a "
            f"classifier needs at least 2 classes (its accuracy would be 100 % "
            f"whatever it learnt)"
        )


def _mostly_rejected(result: IngestResult) -> list[str]:
    """The loud warning when more than :data:`MOSTLY_REJECTED` of the CSV rows did not
    become clips (empty when ingest fails anyway: nothing accepted)."""
    rows, accepted = result.rows_read, result.accepted
    if accepted == 0 or rows == 0 or rows - accepted <= MOSTLY_REJECTED * rows:
        return []
    return [
        f"MOST OF THE DATASET WAS REJECTED: only {accepted} of {rows} {result.unit} became "
        f"clips ({rows - accepted} rejected, {(rows - accepted) / rows:.0%}); "
        f"every reason is in {result.report_path}"
    ]


def _class_gaps(
    class_counts: dict[int, dict[str, int]], class_names: tuple[str, ...] = CLASS_NAMES
) -> list[str]:
    """One warning per fold that lacks a class present in another fold, and one for
    classes with no clip at all (when some fold has clips)."""
    if not class_counts:
        return []
    present = {c for counts in class_counts.values() for c in counts}
    warnings = []
    for fold, counts in class_counts.items():
        gaps = [c for c in class_names if c in present and c not in counts]
        if gaps:
            warnings.append(f"fold {fold} has no clips of class(es) {', '.join(gaps)}")
    absent = [c for c in class_names if c not in present]
    if absent:
        warnings.append(f"no fold has clips of class(es) {', '.join(absent)}")
    return warnings


def ensure_writable_dir(path: str | os.PathLike) -> None:
    """Create ``path`` if needed and check a file can be written in it.

    Raises
    ------
    IngestError
        naming the path and the operating system's reason.
    """
    import tempfile

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a new, unique name: a fixed one could be a file of the user's, deleted here
        fd, probe = tempfile.mkstemp(prefix=".urbansound-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise IngestError(f"{path}: cannot write output here ({exc.strerror or exc})") from None


def _write_report(result: IngestResult, config: Config, *, manifest: bool = True) -> None:
    """report.json and report.csv (always), then manifest.json (last: it marks a
    complete ingest).  Names are printable already; ``backslashreplace`` only guards."""
    out = Path(result.out_dir)
    try:
        with open(out / REPORT, "w", encoding="utf-8", errors="backslashreplace") as fh:
            json.dump([r.to_dict() for r in result.rejections], fh, indent=2, ensure_ascii=False)
        with open(
            out / REPORT_CSV, "w", newline="", encoding="utf-8", errors="backslashreplace"
        ) as fh:
            writer = csv.DictWriter(fh, fieldnames=["file", "fold", "reason"])
            writer.writeheader()
            for r in result.rejections:
                writer.writerow({"file": r.file, "fold": r.fold, "reason": r.reason})
        if manifest:
            document = {
                "folds": {str(k): n for k, n in result.counts.items()},
                "class_counts": {str(k): v for k, v in result.class_counts.items()},
                "class_names": list(result.class_names),
                "classes": list(result.class_names),  # the same, under its earlier name
                "layout": result.layout,
                "split": result.split,
                "sample_rate": config.audio.sample_rate,
                "dataset_hash": result.dataset_hash,
                "rows_read": result.rows_read,
                "accepted": result.accepted,
                "rejected": len(result.rejections),
                "warnings": result.warnings,
            }
            (out / MANIFEST).write_text(
                json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8"
            )
    except OSError as exc:
        raise IngestError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
