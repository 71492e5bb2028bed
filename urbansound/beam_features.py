"""Stage 2, augment + features: an Apache Beam pipeline from waveforms to model inputs.

Reads ingest's ``fold<k>*.tfrecord`` files, computes the model input of every clip
(and of each configured muda deformation of it) with the one front end
:func:`urbansound.features.model_input`, and writes the fold's examples in shards
plus a ``manifest.json`` and a ``report.json``.

**Shards.**  Each fold's clips are cut into ``ceil(clips / clips_per_shard)`` shards
(a shard is every n-th record of one input file); a shard is one Beam element, so
workers split a fold between them, and each shard becomes one output file,
``fold<k>-SSSSS-of-NNNNN.tfrecord`` (``fold<k>.tfrecord`` when the fold is a single
shard), written under a temporary name and renamed: a retried shard replaces its file,
never duplicates it.  Beside it the worker writes the shard's summary (examples by
deformation, dropped examples, cache hits), from which the manifest is made; so the
counts are exact on every runner, with or without Beam metrics.

**Runners.**  The pipeline is ``Create(shards) | ParDo(ShardToFeatures)``: no ``Read``
primitive, no file sink, no side input and a single leaf.  That is what Beam 2.77's
Dask runner can run (it translates ``Read`` to nothing, drops what ``finish_bundle``
emits, so Beam's own file sinks write empty files, computes only the last leaf of a
pipeline and has no metrics), and it runs unchanged on the FnApiRunner (one process
or several), Dataflow, Flink or Spark.  The runner is always named (Beam >= 2.68's
DirectRunner first tries to download the Prism binary, which fails offline); see
:func:`default_beam_args` and :func:`dask_beam_args`.

**Storage.**  Every path goes through Beam's ``FileSystems``, so ``waveform_dir`` and
``out_dir`` may be local folders or ``gs://`` / ``s3://`` locations (with Beam's GCP or
AWS extras installed).

Only finite model inputs are written.  An example whose input cannot be computed or
is not finite is dropped, counted and reported (``report.json``, and
``manifest.json``'s ``rejected``): training statistics must never see NaN or inf.
When a clip's original audio is dropped, its deformed copies are dropped too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import threading
import uuid
from collections import Counter

import apache_beam as beam

from urbansound.config import Config
from urbansound.deformations import deformations_for
from urbansound.features import input_shape as features_input_shape
from urbansound.manifest import MANIFEST, IngestError, manifest_class_names
from urbansound.outputs import claim_folder, record, remove_recorded
from urbansound.records import ORIGINAL, masked_crc, write_tfrecord

log = logging.getLogger(__name__)
REPORT = "report.json"
CACHE_NAMESPACE = "urbansound.cache"
CACHE_HITS = "hits"
CACHE_MISSES = "computed"
DEFORMATION_FAILURES = "deformation_failures"
CLIPS_PER_SHARD = 128
"""Input clips per shard (one Beam element, one output file).  128 clips of 4 s are
45 MB of waveforms in and 8 MB of log-mels out (more with deformations): small enough
for two workers to share a 900-clip fold, large enough that per-shard start-up
(muda's deformers, the cache) is noise."""
DEFORMATION_COST = 4
"""Shard slots per deformed copy.  A muda deformation (tens to hundreds of ms, external
programs included) is some 30 log-mels of work; 4 slots is enough for the study's set
to make 8-clip shards of a few seconds each, so both workers stay busy to the end."""


def clips_per_shard_for(config: Config) -> int:
    """Input clips per shard for this configuration: :data:`CLIPS_PER_SHARD`, divided by
    ``DEFORMATION_COST`` times the deformations each clip gets (at least 4 clips): 8 for
    the study's set of 4, so 100 clips in folds of 59, 35 and 6 are 14 shards, not 3."""
    n = len(config.augment.all_deformations())
    if n == 0:
        return CLIPS_PER_SHARD
    return max(4, CLIPS_PER_SHARD // (DEFORMATION_COST * n))


PARTS = ".features-parts"
"""Sub-folder of the output for shard summaries and files being written; removed at the end."""
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def default_beam_args(workers: int | None = None) -> list[str]:
    """Local Beam options: the FnApiRunner, one worker process per core."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        return ["--runner=FnApiRunner"]
    return [
        "--runner=FnApiRunner",
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
    ]


def dask_beam_args(address: str) -> list[str]:
    """Beam options for a ``dask.distributed`` scheduler at ``address``
    (``tcp://HOST:PORT``): Beam's Dask runner, named in full (the short name is refused)."""
    return [f"--runner={DASK_RUNNER}", f"--dask_client_address={address}"]


def _runner_args(beam_args: list[str]) -> list[str]:
    """``beam_args`` plus what a runner needs for shards to spread: on Dask one bag
    partition per shard (its default puts up to 128 elements, here every shard, in
    one partition, so one worker would do everything)."""
    args = list(beam_args)
    if any(
        a.startswith("--runner=") and a.split("=", 1)[1].endswith("DaskRunner") for a in args
    ) and not any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args):
        args.append("--dask_partition_size=1")
    return args


# ---------------------------------------------------------------------------
# TFRecord files through Beam's FileSystems
# ---------------------------------------------------------------------------


def read_tfrecords(path: str, *, part: int = 0, parts: int = 1):
    """Yield the records of a TFRecord file (local or a Beam filesystem URI) whose index
    ``i`` has ``i % parts == part``; the others are skipped unread.

    Raises ValueError naming the file when it is truncated or a checksum fails."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        index = 0
        while True:
            header = fh.read(12)
            if not header:
                return
            if len(header) < 12:
                raise ValueError(f"{path}: truncated TFRecord file (record {index})")
            (length,) = struct.unpack("<Q", header[:8])
            if struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]):
                raise ValueError(f"{path}: corrupt TFRecord file (record {index}: length checksum)")
            if index % parts != part:
                fh.seek(length + 4, os.SEEK_CUR)
            else:
                data, footer = fh.read(length), fh.read(4)
                if len(data) < length or len(footer) < 4:
                    raise ValueError(f"{path}: truncated TFRecord file (record {index})")
                if struct.unpack("<I", footer)[0] != masked_crc(data):
                    raise ValueError(
                        f"{path}: corrupt TFRecord file (record {index}: data checksum)"
                    )
                yield data
            index += 1


def fold_paths(directory: str, fold: int) -> list[str]:
    """Sorted shard paths of one fold (``fold<k>.tfrecord``, ``fold<k>-*.tfrecord``) in a
    folder or a Beam filesystem URI; the FileSystems counterpart of
    :func:`urbansound.records.fold_files` (``fold1*`` would also match ``fold10``)."""
    from apache_beam.io.filesystems import FileSystems

    patterns = [
        FileSystems.join(directory, f"fold{fold}.tfrecord"),
        FileSystems.join(directory, f"fold{fold}-*.tfrecord"),
    ]
    return sorted({m.path for result in FileSystems.match(patterns) for m in result.metadata_list})


def _write_bytes(path: str, data: bytes) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as fh:
        fh.write(data)


def _read_json(path: str):
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as fh:
        return json.loads(fh.read().decode("utf-8"))


def read_source_manifest(directory: str) -> dict:
    """The manifest.json ingest wrote in ``directory`` (a folder or a URI).

    Raises IngestError naming the file when there is none."""
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(directory, MANIFEST)
    if not FileSystems.exists(path):
        raise IngestError(f"{path}: not found; is {directory} the output of the previous stage?")
    return _read_json(path)


def _delete(patterns: list[str]) -> None:
    from apache_beam.io.filesystems import FileSystems

    found = [m.path for result in FileSystems.match(patterns) for m in result.metadata_list]
    if found:
        FileSystems.delete(found)


LOG_FILE = "features.log"
"""The log ``urbansound features`` keeps in its output folder."""


def claim_features_folder(out: str | os.PathLike, waveform_dir: str | os.PathLike = "") -> None:
    """Make local folder ``out`` the features stage's output, or refuse it (one line,
    nothing written): it is the folder of ingest records it reads (``waveform_dir``), or
    it holds files this stage did not write (see :mod:`urbansound.outputs`)."""
    inputs = (
        [("--data", waveform_dir)] if waveform_dir and "://" not in os.fspath(waveform_dir) else []
    )
    claim_folder(out, "features", inputs=inputs, legacy=_legacy_outputs)


def _legacy_outputs(out) -> list[str] | None:
    """The files a features run of a version without output markers wrote in ``out`` (the
    shards its manifest counts, manifest, report, log), or None when ``out`` holds
    anything else."""
    from pathlib import Path

    out = Path(out)
    names = {p.name for p in out.iterdir()}
    files = {LOG_FILE}
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and "input_kind" in manifest:
            files |= {MANIFEST, REPORT}
            for fold, n in (manifest.get("shards") or {}).items():
                files |= (
                    {f"fold{fold}.tfrecord"}
                    if int(n) == 1
                    else {f"fold{fold}-{j:05d}-of-{int(n):05d}.tfrecord" for j in range(int(n))}
                )
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    if not names <= files | {"waveforms", "cache", PARTS}:
        return None
    return sorted(names & files)


def plan_shards(
    waveform_dir: str, clips_per_fold: dict[int, int], clips_per_shard: int = CLIPS_PER_SHARD
) -> list[tuple]:
    """The work: ``(input file, part, parts, fold, output file name)`` per shard, where
    record ``i`` of the input file belongs to the shard when ``i % parts == part``.

    A fold of ``n`` clips in ``m`` input files gets ``ceil(n / m / clips_per_shard)``
    parts per file; its output files are ``fold<k>-SSSSS-of-NNNNN.tfrecord``, or
    ``fold<k>.tfrecord`` when it is one shard.

    Raises FileNotFoundError when a fold of the manifest has no input file."""
    shards = []
    for fold, n in sorted(clips_per_fold.items()):
        paths = fold_paths(waveform_dir, fold)
        if not paths:
            raise FileNotFoundError(f"{waveform_dir}: no TFRecords for fold {fold}")
        parts = max(1, math.ceil(n / len(paths) / max(1, clips_per_shard)))
        jobs = [(path, part, parts) for path in paths for part in range(parts)]
        for j, (path, part, parts_) in enumerate(jobs):
            name = (
                f"fold{fold}.tfrecord"
                if len(jobs) == 1
                else f"fold{fold}-{j:05d}-of-{len(jobs):05d}.tfrecord"
            )
            shards.append((path, part, parts_, fold, name))
    return shards


# ---------------------------------------------------------------------------
# The work: one clip, one shard
# ---------------------------------------------------------------------------


def _one_blas_thread() -> None:
    """Limit numpy's BLAS to one thread in this worker process.

    Every worker process is one core's worth of work; OpenBLAS would start a thread per
    core in each of them, and with two workers on two cores the mel projection's matrix
    products then fight over the cores: the Beam stage took 18.8 s instead of 5.0 s on
    the real dev tree (1,881 clips, 2 worker processes)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class ClipToLogMels:
    """Serialized waveform example → serialized model-input examples (original,
    test-time windows, deformations): the per-clip work of :class:`ShardToFeatures`
    (:meth:`setup` once per worker, then :meth:`outputs` per clip).

    A deformation that fails on a clip is counted and logged, and that copy is
    skipped.  An example whose input cannot be computed or is not finite is not
    emitted: it is counted (``features/rejected``) and described as a rejection, a
    JSON object ``{"file", "fold", "deformation", "reason"}``; when that is the
    original, the clip's deformations are skipped too.
    ``tally`` counts cache hits, computed copies and failed deformations (plain
    numbers: the runner may have no metrics).
    """

    def __init__(self, config_json: str, deform_folds: list[int] | None = None):
        self._config_json = config_json
        # only clips of these folds are deformed (None: every fold); see folds_to_augment
        self._deform_folds = None if deform_folds is None else frozenset(deform_folds)
        self.deformation_failures = beam.metrics.Metrics.counter("features", DEFORMATION_FAILURES)
        self.clips = beam.metrics.Metrics.counter("features", "clips")
        self.rejected = beam.metrics.Metrics.counter("features", "rejected")
        self.cache_hits = beam.metrics.Metrics.counter(CACHE_NAMESPACE, CACHE_HITS)
        self.cache_misses = beam.metrics.Metrics.counter(CACHE_NAMESPACE, CACHE_MISSES)
        self.tally: Counter[str] = Counter()
        self._driver_pid = os.getpid()

    def setup(self):
        # Heavy imports and muda deformers are built once per worker, not per element.
        from urbansound import augment, features, records

        if os.getpid() != self._driver_pid:
            _one_blas_thread()

        self._config = Config.from_json(self._config_json)
        self._features = features
        self._records = records
        self._augment = augment
        a = self._config.augment
        self._deformers = {
            name: augment.make_deformer(
                name, noise_dir=a.noise_dir, sample_rate=self._config.audio.sample_rate
            )
            for name in a.all_deformations()
        }
        self._cache = None
        if a.cache_dir and a.all_deformations():
            from urbansound.deformation_cache import DeformationCache, cache_context

            self._cache = DeformationCache(a.cache_dir, cache_context(self._config))

    def _logmel(self, rec, y, deformation: str, values=None):
        """(serialized model-input example, None, the input), or (None, the rejection as
        JSON, None).

        The model input is a log-mel or a waveform, as the configured model declares;
        ``values``: the input already computed (a cache hit), else computed from ``y``."""
        import numpy as np

        try:
            logmel = self._features.model_input(y, self._config) if values is None else values
            # model_input already guarantees this; checked again because a
            # single NaN here becomes NaN statistics for every fold that trains on it
            if not np.all(np.isfinite(logmel)):
                raise ValueError(f"{self._config.input_kind} input has NaN or infinite values")
        except ValueError as exc:  # FeatureError, or a waveform too short or empty
            self.rejected.inc()
            log.warning(
                "%s%s: %s; example dropped",
                rec.file_name,
                f" ({deformation})" if deformation else "",
                exc,
            )
            return (
                None,
                json.dumps(
                    {
                        "file": rec.file_name,
                        "fold": rec.fold,
                        "deformation": deformation or "original",
                        "reason": str(exc),
                    }
                ),
                None,
            )
        return (
            self._records.encode_features(
                logmel,
                kind=self._config.input_kind,
                label=rec.label,
                fold=rec.fold,
                file_name=rec.file_name,
                deformation=deformation,
                salience=rec.salience,
                sample_rate=self._config.features.waveform_rate,
            ),
            None,
            logmel,
        )

    def _later_windows(self, rec):
        """(start in seconds, samples) of each window after the first of a clip longer than
        ``audio.clip_seconds``, at hop ``features.window_hop_s`` (none when it is 0): the
        windows predict would classify, for test-time averaging."""
        from urbansound.windows import window_starts

        a, hop_s = self._config.audio, self._config.features.window_hop_s
        if hop_s <= 0 or len(rec.waveform) <= a.clip_samples:
            return []
        hop = max(1, int(round(hop_s * a.sample_rate)))
        return [
            (int(start) / a.sample_rate, rec.waveform[start : start + a.clip_samples])
            for start in window_starts(len(rec.waveform), window=a.clip_samples, hop=hop)[1:]
        ]

    def outputs(self, serialized: bytes):
        """Yield ``(what, example, rejection)`` for each output of one clip: ``what`` is
        what the manifest counts it as (``"original"``, ``"windows"`` or the
        deformation), then the serialized example and None, or None and the rejection
        as JSON."""
        rec = self._records.decode_waveform(serialized)
        self.clips.inc()
        example, rejection, _ = self._logmel(rec, rec.waveform, ORIGINAL)
        yield "original", example, rejection
        # without its original, a clip's copies are left out too
        for start_s, window in self._later_windows(rec) if example is not None else ():
            example_w, rejection, _ = self._logmel(rec, window, self._records.window_name(start_s))
            yield "windows", example_w, rejection
        a = self._config.augment
        augmented = example is not None and (
            self._deform_folds is None or rec.fold in self._deform_folds
        )
        for name in (
            deformations_for(rec.class_name, a.deformations, a.per_class) if augmented else ()
        ):
            cache = self._cache  # key is None exactly when there is no cache
            key = (
                cache.key(rec.waveform, rec.sample_rate, name, rec.file_name)
                if cache is not None
                else None
            )
            cached = cache.get(key) if cache is not None and key is not None else None
            if cached is not None:
                self.cache_hits.inc()
                self.tally[CACHE_HITS] += 1
                example, rejection, _ = self._logmel(rec, None, name, values=cached)
            else:
                try:
                    y = self._augment.deform(
                        rec.waveform,
                        rec.sample_rate,
                        self._deformers[name],
                        name=name,
                        key=rec.file_name,
                    )
                except self._augment.AugmentError as exc:
                    self.deformation_failures.inc()
                    self.tally[DEFORMATION_FAILURES] += 1
                    log.warning("%s: %s; copy skipped", rec.file_name, exc)
                    continue
                example, rejection, values = self._logmel(rec, y, name)
                if cache is not None and key is not None:
                    self.cache_misses.inc()
                    self.tally[CACHE_MISSES] += 1
                    if values is not None:
                        cache.put(key, values)
            yield name, example, rejection


class ShardToFeatures(beam.DoFn):
    """One shard ``(input file, part, parts, fold, output name)`` → its output file in
    ``out_dir`` and its summary ``<out_dir>/.features-parts/<output name>.json``:
    ``{"shard", "fold", "clips", "examples": {what: n}, "rejected": [...],
    "tally": {...}, "worker": pid}``.  Emits the output name."""

    def __init__(self, config_json: str, deform_folds: list[int] | None, out_dir: str):
        self._clip = ClipToLogMels(config_json, deform_folds)
        self._out = out_dir

    def setup(self):
        self._clip.setup()

    def process(self, shard):
        from apache_beam.io.filesystems import FileSystems

        source, part, parts, fold, name = shard
        clip = self._clip
        clip.tally = Counter()
        examples: Counter[str] = Counter()
        rejected, clips = [], 0
        final = FileSystems.join(self._out, name)
        temporary = FileSystems.join(self._out, PARTS, f"{name}.{uuid.uuid4().hex}.tmp")
        try:
            with FileSystems.create(temporary) as fh:
                for raw in read_tfrecords(source, part=part, parts=parts):
                    clips += 1
                    for what, example, rejection in clip.outputs(raw):
                        if example is None:
                            rejected.append(json.loads(rejection))
                        else:
                            write_tfrecord(fh, example)
                            examples[what] += 1
            FileSystems.rename([temporary], [final])
        except BaseException:
            try:
                FileSystems.delete([temporary])
            except Exception:
                pass
            raise
        summary = {
            "shard": name,
            "fold": fold,
            "clips": clips,
            "examples": dict(examples),
            "rejected": rejected,
            "tally": dict(clip.tally),
            "worker": os.getpid(),
        }
        _write_bytes(
            FileSystems.join(self._out, PARTS, f"{name}.json"),
            json.dumps(summary, ensure_ascii=False).encode("utf-8"),
        )
        yield name


# ---------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------


def run_features(
    waveform_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: Config = Config(),
    beam_args: list[str] | None = None,
    deform_folds: list[int] | None = None,
    clips_per_shard: int | None = None,
    progress=None,
) -> dict:
    """Run the features pipeline over every fold ingest wrote.

    Parameters
    ----------
    waveform_dir : ingest's output (a folder, or a ``gs://`` / ``s3://`` location).
    out_dir : where the fold shards, ``manifest.json`` and ``report.json`` go (likewise).
    beam_args : Beam pipeline options; default :func:`default_beam_args`; for Dask
        :func:`dask_beam_args`.
    deform_folds : folds whose clips get the configured deformations (None: all);
        :func:`urbansound.folds.folds_to_augment` gives the folds that train.
    clips_per_shard : input clips per shard (default :func:`clips_per_shard_for`).
    progress : called as ``progress(clips_done, clips_total)`` from a watcher thread
        each time shards finish (None: not watched).

    Returns
    -------
    manifest : ``{"folds": {"<k>": {"original": n, "<deformation>": m}},
        "deformations": [...], "rejected": [{"file", "fold", "deformation",
        "reason"}], "warnings": [...], "shards": {"<k>": n}, "workers": n, ...}``;
        ``folds`` counts written examples only; ``workers`` is the number of
        worker processes that wrote shards.
    """
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    waveform_dir, out = os.fspath(waveform_dir), os.fspath(out_dir)
    local = "://" not in out
    source = read_source_manifest(waveform_dir)
    if local:  # before anything is written: out must not be the records it reads
        claim_features_folder(out, waveform_dir)
    clips_per_fold = {int(k): int(n) for k, n in source["folds"].items()}
    folds = sorted(clips_per_fold)
    shards = plan_shards(
        waveform_dir, clips_per_fold, clips_per_shard or clips_per_shard_for(config)
    )
    parts_dir = FileSystems.join(out, PARTS)
    for folder in (out, parts_dir):
        if not FileSystems.exists(folder):
            FileSystems.mkdirs(folder)
    if local:  # only the files an earlier run recorded, never by pattern
        remove_recorded(out, keep=(LOG_FILE,))
        record(out, [s[4] for s in shards] + [MANIFEST, REPORT])
        _delete([FileSystems.join(parts_dir, "*")])  # our own scratch folder
    else:  # an object store: no marker; the fold shards of an earlier run
        _delete(
            [
                FileSystems.join(out, "fold*.tfrecord"),
                FileSystems.join(parts_dir, "*"),
                FileSystems.join(out, REPORT),
            ]
        )
    options = PipelineOptions(
        _runner_args(beam_args if beam_args is not None else default_beam_args())
    )
    pipeline = beam.Pipeline(options=options)
    (
        pipeline
        | "Shards" >> beam.Create(shards)
        | "Features" >> beam.ParDo(ShardToFeatures(config.to_json(), deform_folds, out))
    )
    watcher = _Watcher(parts_dir, sum(clips_per_fold.values()), progress) if progress else None
    result = None
    try:
        result = pipeline.run()
        result.wait_until_finish()
    finally:
        if watcher is not None:
            watcher.stop()
        client = getattr(result, "client", None)
        if client is not None:  # the Dask runner's: leave the user's cluster clean
            client.close()
    summaries = _read_summaries(parts_dir, shards)
    _delete([FileSystems.join(parts_dir, "*")])
    try:
        FileSystems.delete([parts_dir])
    except Exception:
        pass
    if watcher is not None:
        watcher.finish(sum(s["clips"] for s in summaries))
    counts: dict[str, Counter] = {str(f): Counter() for f in folds}
    tally: Counter[str] = Counter()
    dropped = []
    for s in summaries:
        counts[str(s["fold"])].update(s["examples"])
        tally.update(s["tally"])
        dropped += s["rejected"]
    dropped.sort(key=lambda d: (d["fold"], d["file"], d["deformation"]))
    report_path = FileSystems.join(out, REPORT)
    cached = config.augment.cache_dir and config.augment.all_deformations()
    warnings = (
        [
            f"{len(dropped)} example(s) dropped: their log-mel is not finite or cannot "
            f"be computed (first: {dropped[0]['file']}, {dropped[0]['deformation']}: "
            f"{dropped[0]['reason']}; see {report_path})"
        ]
        if dropped
        else []
    )
    manifest = {
        "folds": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "deformations": list(config.augment.all_deformations()),
        "deformed_folds": sorted(deform_folds) if deform_folds is not None else folds,
        "input_kind": config.input_kind,
        "input_shape": list(features_input_shape(config)),
        "n_mels": config.features.n_mels,
        "n_frames": config.features.n_frames,
        "class_names": list(manifest_class_names(source)),  # label order, from the data
        "dataset_hash": source.get("dataset_hash"),
        "config_fingerprint": config.fingerprint(),
        # deformed copies read from the cache vs computed (and stored) in this run
        "deformation_cache": (
            {
                "dir": config.augment.cache_dir,
                CACHE_HITS: tally[CACHE_HITS],
                CACHE_MISSES: tally[CACHE_MISSES],
            }
            if cached
            else None
        ),
        "deformation_failures": tally[DEFORMATION_FAILURES],
        "shards": {str(f): sum(1 for s in shards if s[3] == f) for f in folds},
        "workers": len({s["worker"] for s in summaries}),
        "rejected": dropped,
        "warnings": warnings,
    }
    for warning in warnings:
        log.warning("%s", warning)
    _write_bytes(report_path, json.dumps(dropped, indent=2, ensure_ascii=False).encode("utf-8"))
    _write_bytes(
        FileSystems.join(out, MANIFEST),
        json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"),
    )
    return manifest


def _read_summaries(parts_dir: str, shards: list[tuple]) -> list[dict]:
    """Every shard's summary, in shard order.

    Raises RuntimeError naming the missing shards: a runner that finished without
    running them (e.g. a runner that skips part of a pipeline) must not yield a
    manifest that looks complete."""
    from apache_beam.io.filesystems import FileSystems

    summaries, missing = [], []
    for shard in shards:
        path = FileSystems.join(parts_dir, f"{shard[4]}.json")
        if FileSystems.exists(path):
            summaries.append(_read_json(path))
        else:
            missing.append(shard[4])
    if missing:
        raise RuntimeError(
            f"the Beam runner finished but {len(missing)} of {len(shards)} "
            f"shard(s) were not written (first: {missing[0]})"
        )
    return summaries


class _Watcher:
    """Calls ``progress(clips_done, total)`` from a thread as shard summaries appear."""

    def __init__(self, parts_dir: str, total: int, progress, interval_s: float = 1.0):
        self.total, self._parts, self._progress = total, parts_dir, progress
        self._interval, self._done = interval_s, 0
        self._seen: set[str] = set()
        self._said: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        from apache_beam.io.filesystems import FileSystems

        while not self._stop.wait(self._interval):
            try:
                found = FileSystems.match([FileSystems.join(self._parts, "*.json")])[0]
                new = [m.path for m in found.metadata_list if m.path not in self._seen]
                for path in new:
                    self._done += int(_read_json(path)["clips"])
                    self._seen.add(path)
            except Exception:
                continue
            if new:
                self._say(self._done)

    def _say(self, done: int) -> None:
        if done != self._said:
            self._said = done
            self._progress(done, self.total)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def finish(self, done: int) -> None:
        """The final count, unless the thread already said it."""
        self._say(done)
