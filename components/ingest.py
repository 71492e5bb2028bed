"""KFP component: ingest (CSV ↔ audio check, decode, TFRecords by fold)."""

from typing import List

from kfp.dsl import Dataset, Output


def ingest_component(
    data_root: str,
    config_json: str,
    test_folds: List[int],
    strict: bool,
    tracking_uri: str,
    parent_run_id: str,
    dataset_fingerprint: str,
    digest_cache: str,
    waveforms: Output[Dataset],
) -> List[int]:
    """Decode ``data_root`` (in the layout ``config_json``'s ``data`` section names, or the
    one detected) into ``waveforms``; return the test folds to train.  The class names,
    read from the data, are in ``waveforms``' manifest.json and metadata.

    ``test_folds`` empty means every fold present.  A requested test fold with
    no clips is an error.  ``dataset_fingerprint`` (the caller's, of the listing and the files'
    contents) only keys the cache; the fingerprint of what was decoded is in ``waveforms.metadata``.
    ``digest_cache`` is the file where the caller remembered the clips' content digests
    while fingerprinting (a path this task can read: the local runner's), so that ingest
    does not hash them again; empty (a cluster) means every clip is hashed here.
    (A single return value: kfp 2.17's local runner cannot fan out ParallelFor
    over one field of a NamedTuple output.)
    """
    from urbansound.components import runs, tracking_store
    from urbansound.components.errors import user_errors
    from urbansound.components.progress import progress_line
    from urbansound.config import Config
    from urbansound.folds import min_folds
    from urbansound.ingest import ingest
    from urbansound.manifest import IngestError

    config = Config.from_json(config_json)
    with user_errors("ingest"):
        result = ingest(
            data_root,
            waveforms.path,
            config=config,
            strict=strict,
            progress=progress_line("ingest"),
            digest_cache=digest_cache or None,
        )
        present = result.folds
        test_folds = [int(f) for f in test_folds]  # JSON numbers arrive as floats locally
        missing = [f for f in test_folds if f not in present]
        if missing:
            raise IngestError(
                f"{data_root}: test fold(s) {missing} have no usable clips; "
                f"folds present: {present}"
            )
        if len(present) < min_folds(config.train.validation):
            raise IngestError(
                f"{data_root}: need at least {min_folds(config.train.validation)} "
                f"folds with usable clips; folds present: {present}"
            )
        chosen = sorted(test_folds) if test_folds else present
        stats = result.digest_stats
        print(
            f"content digests: {stats.hashed} clips hashed, {stats.cached} remembered"
            + (" (the caller's cache)" if digest_cache else "")
        )
        for warning in result.warnings:
            print(f"warning: {warning}")
        print(
            f"layout {result.layout}: {len(result.class_names)} classes"
            + (f"; folds made by a grouped split: {result.split}" if result.split else "")
        )
        print(result.summary_line())
    waveforms.metadata.update(
        {
            "folds": present,
            "accepted": result.accepted,
            "rejected": len(result.rejections),
            "dataset_hash": result.dataset_hash,
            "layout": result.layout,
            "class_names": list(result.class_names),
        }
    )
    uri = tracking_store.resolve_uri(tracking_uri)
    if uri and parent_run_id:
        runs.log_ingest(
            uri,
            parent_run_id,
            result.dataset_hash,
            result.accepted,
            len(result.rejections),
            result.report_path,
            data_root=data_root,
        )
    return chosen
