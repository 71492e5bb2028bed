"""Stage 2, augment + features: an Apache Beam pipeline from waveforms to log-mels.

Reads ingest's ``fold<k>.tfrecord`` files, computes the log-mel of every clip
(and of each configured muda deformation of it) with the one feature function
:func:`urbansound.features.waveform_to_logmel`, and writes ``fold<k>.tfrecord``
files of log-mel examples plus a ``manifest.json``.

Only finite log-mels are written.  An example whose log-mel cannot be computed
or is not finite is dropped, counted and reported (``report.json``, and
``manifest.json``'s ``rejected``): training statistics must never see NaN or inf.
When a clip's original audio is dropped, its deformed copies are dropped too.

The runner is always named: ``--runner=FnApiRunner`` locally (the engine behind
the DirectRunner; Beam >= 2.68's DirectRunner first tries to download the Prism
binary, which fails offline), or any distributed runner
(Dataflow, Flink, Spark, ``apache_beam.runners.dask.dask_runner.DaskRunner``)
through ``beam_args``.
"""
from __future__ import annotations

import glob
import json
import logging
import os
from collections import Counter
from pathlib import Path

import apache_beam as beam

from urbansound.config import Config
from urbansound.features import input_shape as features_input_shape
from urbansound.ingest import MANIFEST, manifest_class_names, read_manifest
from urbansound.records import ORIGINAL, fold_files

log = logging.getLogger(__name__)
COUNTER_NAMESPACE = "urbansound.features"
REJECTED = "rejected"
"""Tag of :class:`ClipToLogMels`' second output: one JSON line per dropped example."""
REPORT = "report.json"
CACHE_NAMESPACE = "urbansound.cache"
CACHE_HITS = "hits"
CACHE_MISSES = "computed"
_REJECTED_SHARDS = "rejected-examples"  # temporary text files, merged into REPORT


def default_beam_args(workers: int | None = None) -> list[str]:
    """Local Beam options: the FnApiRunner, one worker process per core."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        return ["--runner=FnApiRunner"]
    return ["--runner=FnApiRunner", f"--direct_num_workers={workers}",
            "--direct_running_mode=multi_processing"]


class ClipToLogMels(beam.DoFn):
    """Serialized waveform example → serialized log-mel examples (original + deformations).

    A deformation that fails on a clip is counted and logged, and that copy is
    skipped.  An example whose log-mel cannot be computed or is not finite is not
    emitted: it is counted (``features/rejected``) and described on the
    :data:`REJECTED` output as a JSON object ``{"file", "fold", "deformation",
    "reason"}``; when that is the original, the clip's deformations are skipped too.
    """

    def __init__(self, config_json: str, deform_folds: list[int] | None = None):
        self._config_json = config_json
        # only clips of these folds are deformed (None: every fold); see folds_to_augment
        self._deform_folds = None if deform_folds is None else frozenset(deform_folds)
        self.deformation_failures = beam.metrics.Metrics.counter("features", "deformation_failures")
        self.clips = beam.metrics.Metrics.counter("features", "clips")
        self.rejected = beam.metrics.Metrics.counter("features", "rejected")
        self.cache_hits = beam.metrics.Metrics.counter(CACHE_NAMESPACE, CACHE_HITS)
        self.cache_misses = beam.metrics.Metrics.counter(CACHE_NAMESPACE, CACHE_MISSES)

    def setup(self):
        # Heavy imports and muda deformers are built once per worker, not per element.
        from urbansound import augment, features, records

        self._config = Config.from_json(self._config_json)
        self._features = features
        self._records = records
        self._augment = augment
        a = self._config.augment
        self._deformers = {name: augment.make_deformer(name, noise_dir=a.noise_dir,
                                                       sample_rate=self._config.audio.sample_rate)
                           for name in a.all_deformations()}
        self._cache = None
        if a.cache_dir and a.all_deformations():
            from urbansound.deformation_cache import DeformationCache, cache_context

            self._cache = DeformationCache(a.cache_dir, cache_context(self._config))

    def _count(self, fold: int, deformation: str) -> None:
        # one counter per (fold, deformation): the manifest's counts, with no second pass
        beam.metrics.Metrics.counter(COUNTER_NAMESPACE,
                                     f"fold{fold}/{deformation or 'original'}").inc()

    def _logmel(self, rec, y, deformation: str, count_as: str | None = None, values=None):
        """(serialized model-input example, None, the input), or (None, the rejection as
        JSON, None).

        The model input is a log-mel or a waveform, as the configured model declares;
        ``values``: the input already computed (a cache hit), else computed from ``y``."""
        import numpy as np

        try:
            logmel = (self._features.model_input(y, self._config) if values is None
                      else values)
            # model_input already guarantees this; checked again because a
            # single NaN here becomes NaN statistics for every fold that trains on it
            if not np.all(np.isfinite(logmel)):
                raise ValueError(f"{self._config.input_kind} input has NaN or infinite values")
        except ValueError as exc:  # FeatureError, or a waveform too short or empty
            self.rejected.inc()
            log.warning("%s%s: %s; example dropped", rec.file_name,
                        f" ({deformation})" if deformation else "", exc)
            return None, json.dumps({"file": rec.file_name, "fold": rec.fold,
                                     "deformation": deformation or "original",
                                     "reason": str(exc)}), None
        self._count(rec.fold, deformation if count_as is None else count_as)
        return self._records.encode_features(
            logmel, kind=self._config.input_kind, label=rec.label, fold=rec.fold,
            file_name=rec.file_name, deformation=deformation, salience=rec.salience,
            sample_rate=self._config.features.waveform_rate), None, logmel

    def _later_windows(self, rec):
        """(start in seconds, samples) of each window after the first of a clip longer than
        ``audio.clip_seconds``, at hop ``features.window_hop_s`` (none when it is 0): the
        windows predict would classify, for test-time averaging."""
        from urbansound.predict import window_starts

        a, hop_s = self._config.audio, self._config.features.window_hop_s
        if hop_s <= 0 or len(rec.waveform) <= a.clip_samples:
            return []
        hop = max(1, int(round(hop_s * a.sample_rate)))
        return [(int(start) / a.sample_rate, rec.waveform[start:start + a.clip_samples])
                for start in window_starts(len(rec.waveform), window=a.clip_samples,
                                           hop=hop)[1:]]

    def process(self, serialized: bytes):
        rec = self._records.decode_waveform(serialized)
        self.clips.inc()
        example, rejection, _ = self._logmel(rec, rec.waveform, ORIGINAL)
        if example is None:
            yield beam.pvalue.TaggedOutput(REJECTED, rejection)
        else:
            yield example
        # without its original, a clip's copies are left out too
        # (no early return: Beam warns about yield and return in one process method)
        for start_s, window in (self._later_windows(rec) if example is not None else ()):
            example_w, rejection, _ = self._logmel(rec, window,
                                                   self._records.window_name(start_s),
                                                   count_as="windows")
            yield example_w if example_w is not None else \
                beam.pvalue.TaggedOutput(REJECTED, rejection)
        a = self._config.augment
        augmented = example is not None and (self._deform_folds is None
                                             or rec.fold in self._deform_folds)
        for name in (self._augment.deformations_for(rec.class_name, a.deformations, a.per_class)
                     if augmented else ()):
            key = (self._cache.key(rec.waveform, rec.sample_rate, name, rec.file_name)
                   if self._cache is not None else None)
            cached = self._cache.get(key) if key is not None else None
            if cached is not None:
                self.cache_hits.inc()
                example, rejection, _ = self._logmel(rec, None, name, values=cached)
            else:
                try:
                    y = self._augment.deform(rec.waveform, rec.sample_rate,
                                             self._deformers[name], name=name, key=rec.file_name)
                except self._augment.AugmentError as exc:
                    self.deformation_failures.inc()
                    log.warning("%s: %s; copy skipped", rec.file_name, exc)
                    continue
                example, rejection, values = self._logmel(rec, y, name)
                if key is not None:
                    self.cache_misses.inc()
                    if values is not None:
                        self._cache.put(key, values)
            yield example if example is not None else \
                beam.pvalue.TaggedOutput(REJECTED, rejection)


class ExtractLogMels(beam.PTransform):
    """PCollection[bytes waveform examples] → outputs ``logmels`` (bytes log-mel
    examples, all finite) and :data:`REJECTED` (JSON lines of dropped examples)."""

    def __init__(self, config: Config, deform_folds: list[int] | None = None):
        super().__init__()
        self._config_json = config.to_json()
        self._deform_folds = deform_folds

    def expand(self, waveforms):
        return waveforms | "LogMel" >> beam.ParDo(
            ClipToLogMels(self._config_json, self._deform_folds)).with_outputs(
            REJECTED, main="logmels")


def run_features(waveform_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                 config: Config = Config(), beam_args: list[str] | None = None,
                 deform_folds: list[int] | None = None) -> dict:
    """Run the features pipeline over every fold ingest wrote.

    Parameters
    ----------
    waveform_dir : ingest's output directory.
    out_dir : where ``fold<k>.tfrecord`` log-mel files and ``manifest.json`` go.
    beam_args : Beam pipeline options; default :func:`default_beam_args`.
    deform_folds : folds whose clips get the configured deformations (None: all);
        :func:`urbansound.training.folds_to_augment` gives the folds that train.

    Returns
    -------
    manifest : ``{"folds": {"<k>": {"original": n, "<deformation>": m}},
        "deformations": [...], "rejected": [{"file", "fold", "deformation",
        "reason"}], "warnings": [...], ...}``; ``folds`` counts written examples only.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    source = read_manifest(waveform_dir)
    folds = sorted(int(k) for k in source["folds"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("fold*.tfrecord"), *out.glob(f"{_REJECTED_SHARDS}*"), out / REPORT]:
        stale.unlink(missing_ok=True)
    options = PipelineOptions(beam_args if beam_args is not None else default_beam_args())
    pipeline = beam.Pipeline(options=options)
    rejected = []
    for fold in folds:
        extracted = (pipeline
                     | f"ReadFold{fold}" >> beam.io.ReadFromTFRecord(
                         _fold_pattern(waveform_dir, fold))
                     | f"ExtractFold{fold}" >> ExtractLogMels(config, deform_folds))
        extracted.logmels | f"WriteFold{fold}" >> beam.io.WriteToTFRecord(
            str(out / f"fold{fold}"), file_name_suffix=".tfrecord", num_shards=1,
            shard_name_template="")
        rejected.append(extracted[REJECTED])
    (rejected | "AllRejected" >> beam.Flatten()
     | "WriteRejected" >> beam.io.WriteToText(str(out / _REJECTED_SHARDS),
                                              file_name_suffix=".jsonl"))
    result = pipeline.run()
    result.wait_until_finish()
    dropped = _read_rejected(out)
    counts = _counts_from_metrics(result, folds)
    if counts is None:  # a runner without metrics support: count the written files
        counts = {str(f): _count_examples(out, f) for f in folds}
    manifest = {
        "folds": counts,
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
        "deformation_cache": ({"dir": config.augment.cache_dir, **_cache_counts(result)}
                              if config.augment.cache_dir and config.augment.all_deformations()
                              else None),
        "rejected": dropped,
        "warnings": [f"{len(dropped)} example(s) dropped: their log-mel is not finite or cannot "
                     f"be computed (first: {dropped[0]['file']}, {dropped[0]['deformation']}: "
                     f"{dropped[0]['reason']}; see {out / REPORT})"] if dropped else [],
    }
    for warning in manifest["warnings"]:
        log.warning("%s", warning)
    (out / REPORT).write_text(json.dumps(dropped, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                encoding="utf-8")
    return manifest


def _read_rejected(out: Path) -> list[dict]:
    """The dropped examples the pipeline wrote as JSON lines, sorted; the files are removed."""
    dropped = []
    for path in sorted(glob.glob(os.path.join(os.fspath(out), f"{_REJECTED_SHARDS}*"))):
        with open(path, encoding="utf-8") as fh:
            dropped += [json.loads(line) for line in fh if line.strip()]
        os.unlink(path)
    return sorted(dropped, key=lambda d: (d["fold"], d["file"], d["deformation"]))


def _fold_pattern(directory, fold: int) -> str:
    """File pattern of one fold's shards (``fold1*`` would also match ``fold10``)."""
    paths = fold_files(directory, fold)
    if not paths:
        raise FileNotFoundError(f"{directory}: no TFRecords for fold {fold}")
    return paths[0] if len(paths) == 1 else os.path.join(os.fspath(directory), f"fold{fold}-*.tfrecord")


def _cache_counts(result) -> dict[str, int | None]:
    """``{"hits": n, "computed": m}`` from the cache counters (None: the runner has no
    metrics)."""
    from apache_beam.metrics.metric import MetricsFilter

    counts: dict[str, int | None] = {CACHE_HITS: 0, CACHE_MISSES: 0}
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(CACHE_NAMESPACE))
    except Exception:  # some runners do not implement metrics
        return {CACHE_HITS: None, CACHE_MISSES: None}
    for counter in found.get("counters", []):
        value = counter.committed if counter.committed is not None else counter.attempted
        # one counter per step (a DoFn per fold): sum them
        counts[counter.key.metric.name] = (counts.get(counter.key.metric.name) or 0) + int(value or 0)
    return counts


def _counts_from_metrics(result, folds: list[int]) -> dict[str, dict[str, int]] | None:
    """``{"<fold>": {"original": n, "<deformation>": m}}`` from the pipeline's counters."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE))
    except Exception:  # some runners do not implement metrics
        return None
    counts: dict[str, dict[str, int]] = {str(f): {} for f in folds}
    for counter in found.get("counters", []):
        fold, _, deformation = counter.key.metric.name.partition("/")
        value = counter.committed if counter.committed is not None else counter.attempted
        counts.setdefault(fold[len("fold"):], {})[deformation] = int(value)
    if sum(sum(v.values()) for v in counts.values()) == 0:
        return None
    return {k: dict(sorted(v.items())) for k, v in counts.items()}


def _count_examples(directory: Path, fold: int) -> dict[str, int]:
    from urbansound.records import decode_features, iter_records

    counts: Counter[str] = Counter()
    for raw in iter_records(fold_files(directory, fold)):
        counts[decode_features(raw).deformation or "original"] += 1
    return dict(sorted(counts.items()))
