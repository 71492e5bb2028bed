"""KFP component: gather every fold's result into mean / median / std and confusion matrices."""

from typing import List

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Output


def evaluate_component(
    fold_results: Input[List[Artifact]],
    waveforms: Input[Dataset],
    config_json: str,
    tracking_uri: str,
    parent_run_id: str,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> float:
    """Write summary.json, confusion_matrix.json/.png, curves, predictions.csv and
    report.html (the most confident mistakes play their clips from ``waveforms``, ingest's
    decoded clips); return the mean accuracy."""
    from urbansound.components.evaluate import evaluate_and_log

    summary = evaluate_and_log(
        fold_results,
        waveforms,
        config_json,
        tracking_uri,
        parent_run_id,
        evaluation,
        metrics,
        classification,
    )
    return summary["mean"]


def evaluate_and_log(
    fold_results,
    waveforms,
    config_json,
    tracking_uri,
    parent_run_id,
    evaluation,
    metrics,
    classification,
) -> dict:
    """What :func:`evaluate_component` does (also a study's configuration's evaluation,
    :mod:`urbansound.components.study`): the summary of the fold results, written to
    ``evaluation``, KFP metrics and the parent run; returns the summary."""
    import json
    import os
    from pathlib import Path

    from urbansound.components import runs, tracking_store
    from urbansound.components.kfp_files import write_metric_files
    from urbansound.config import Config
    from urbansound.evaluation import CONFUSION_FILE, evaluate_folds, format_summary
    from urbansound.report import records_audio
    from urbansound.training import FoldResult

    results = sorted(
        (FoldResult.from_json(Path(a.path).read_text()) for a in fold_results),
        key=lambda r: r.test_fold,
    )
    ingested = waveforms.metadata
    summary = evaluate_folds(
        results,
        evaluation.path,
        ingest={
            "accepted": int(ingested.get("accepted", 0)),
            "rejected": int(ingested.get("rejected", 0)),
            "report": os.path.join(waveforms.path, "report.json"),
            "dataset_hash": ingested.get("dataset_hash", ""),
        },
        audio=records_audio(waveforms.path),
        features=Config.from_json(config_json).features,
    )
    print(format_summary(summary))
    for key in ("mean", "median", "std"):
        metrics.log_metric(f"accuracy_{key}", summary[key])
    for fold, acc in summary["folds"].items():
        metrics.log_metric(f"accuracy_fold{fold}", acc)
    confusion = json.loads(Path(evaluation.path, CONFUSION_FILE).read_text())
    classification.log_confusion_matrix(confusion["classes"], confusion["counts"])
    write_metric_files(metrics, classification)
    evaluation.metadata.update(
        {
            "mean": summary["mean"],
            "median": summary["median"],
            "std": summary["std"],
            "folds": summary["folds"],
        }
    )
    uri = tracking_store.resolve_uri(tracking_uri)
    if uri and parent_run_id:
        runs.log_summary(uri, parent_run_id, summary, evaluation.path)
    return summary
