"""KFP components a study adds to the pipeline's own (:mod:`urbansound.pipeline.study`
wires them): its MLflow run, one run per configuration, each configuration's evaluation,
a deformation ablation's policy (``study deformations``) and the comparison at the end.

In MLflow a study is a run tagged ``urbansound.kind=study``; under it one run per
configuration (``urbansound.kind=configuration``, named for it, with the configuration's
params, read by ``compare`` as a pipeline run), and under each its fold runs, as
:mod:`urbansound.components.runs` makes them for ``run``.
"""

from typing import List

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Output


def start_study_component(
    study_json: str, data_root: str, tracking_uri: str, run_key: str, job_id: str
) -> str:
    """Create (or reopen, when resumed) the study's run; return its id ("": tracking off)."""
    from urbansound.components import runs, tracking_store

    uri = tracking_store.resolve_uri(tracking_uri)
    if not uri:
        print("MLflow tracking is off (no tracking URI given, MLFLOW_TRACKING_URI unset)")
        return ""
    run_id = runs.start_study_run(uri, run_key or job_id, study_json, data_root)
    if run_id:
        print(f"MLflow study run {run_id} at {uri}")
    return run_id


def start_configuration_component(
    config_json: str,
    name: str,
    slug: str,
    data_root: str,
    tracking_uri: str,
    run_key: str,
    job_id: str,
    study_run_id: str,
) -> str:
    """Create (or reopen) one configuration's run under the study's; return its id.  A
    configuration that finished earlier keeps its run (and its tasks come from the cache)."""
    from urbansound.components import runs, tracking_store
    from urbansound.config import Config

    uri = tracking_store.resolve_uri(tracking_uri)
    if not uri or not study_run_id:
        return ""
    run_id = runs.start_configuration_run(
        uri,
        f"{run_key or job_id}/{slug}",
        study_run_id,
        name,
        Config.from_json(config_json),
        data_root,
    )
    if run_id:
        print(f"MLflow run {run_id} of configuration {name!r}")
    return run_id


def evaluate_configuration_component(
    fold_results: Input[List[Artifact]],
    waveforms: Input[Dataset],
    config_json: str,
    name: str,
    model: str,
    augmentation: str,
    tracking_uri: str,
    parent_run_id: str,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> str:
    """Evaluate one configuration as ``run`` evaluates a pipeline run, close its MLflow run
    (FINISHED) and return its row for the comparison: name, model, augmentation, run id,
    fold accuracies, per-class accuracy, and the validation folds' counts per class with
    where they come from (a deformation ablation's policy reads only those), as JSON in
    URL-safe base64 (kfp 2.17's local runner breaks a JSON text inside a list parameter:
    its quotes end the list's)."""
    import base64
    import json
    from pathlib import Path

    from urbansound.ablation import pooled_counts
    from urbansound.components import runs, tracking_store
    from urbansound.components.evaluate import evaluate_and_log
    from urbansound.training import FoldResult

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
    uri = tracking_store.resolve_uri(tracking_uri)
    if uri and parent_run_id:
        runs.end_run(uri, parent_run_id, "FINISHED")
    row = {
        "name": name,
        "model": model,
        "augmentation": augmentation,
        "run_id": parent_run_id,
        "folds": summary["folds"],
        "per_class": {k: v for k, v in (summary.get("per_class") or {}).items() if v is not None},
    }
    results = sorted(
        (FoldResult.from_json(Path(a.path).read_text()) for a in fold_results),
        key=lambda r: r.test_fold,
    )
    if results:
        class_names = results[0].class_names
        row["class_names"] = class_names
        row["validation_counts"] = pooled_counts(
            ((r.validation_y_true, r.validation_y_pred) for r in results), class_names
        )
        row["validation_sources"] = [
            {
                "configuration": name,
                "test_fold": r.test_fold,
                "validation_fold": r.validation_fold,
                "train_folds": r.train_folds,
                "n_validation": len(r.validation_y_true),
            }
            for r in results
        ]
    return base64.urlsafe_b64encode(json.dumps(row).encode()).decode()


def deformation_policy_component(
    rows: List[str],
    ablation_json: str,
    tracking_uri: str,
    study_run_id: str,
    ablation: Output[Artifact],
) -> str:
    """One model's deformation ablation (:mod:`urbansound.ablation`): from the validation
    counts of its configurations' rows (no augmentation first, then one per family, in
    the ablation's order) the recall deltas per class and family, the table, the heatmap
    and the per-class policy, written to ``ablation`` and logged on the study's run;
    returns the configuration the policy trains with (its ``augment.per_class`` filled
    in), as JSON.  Test folds are never read: the rows' test accuracies are not used."""
    import base64
    import json

    from urbansound.ablation import write_ablation
    from urbansound.components import runs, tracking_store
    from urbansound.config import Config
    from urbansound.study import Ablation

    spec = Ablation.from_dict(json.loads(ablation_json))
    loaded = [json.loads(base64.urlsafe_b64decode(r)) for r in rows]
    families = [f for f, _ in spec.families]
    if len(loaded) != 1 + len(families) or any("validation_counts" not in r for r in loaded):
        raise ValueError("the ablation needs its baseline's and every family's validation counts")
    class_names = loaded[0]["class_names"]
    record = write_ablation(
        ablation.path,
        model=spec.model,
        class_names=class_names,
        baseline=loaded[0]["validation_counts"],
        families={f: r["validation_counts"] for f, r in zip(families, loaded[1:])},
        sources=[s for r in loaded for s in r["validation_sources"]],
        margin=spec.margin,
    )
    config = Config.from_json(spec.policy.config.to_json())
    if not config.data.class_names:
        config = config.override(**{"data.class_names": class_names})
    config = config.override(**{"augment.per_class": record["per_class"]})
    print(f"per-class policy of {spec.model} ({record['rule']}):")
    for name, chosen in record["policy"].items():
        print(f"  {name}: {', '.join(chosen) or 'none'}")
    ablation.metadata.update({"model": spec.model, "policy": record["policy"]})
    uri = tracking_store.resolve_uri(tracking_uri)
    if uri and study_run_id:
        runs.log_study_folder(uri, study_run_id, ablation.path, f"ablation-{spec.model}")
    return config.to_json()


def compare_study_component(
    rows: List[str],
    waveforms: Input[Dataset],
    data_root: str,
    tracking_uri: str,
    study_run_id: str,
    comparison: Output[Artifact],
    ablations_json: str = "",
) -> str:
    """The study's Table 1 (mean / median / std per configuration, the study's own figures
    under it), the box plot of fold accuracies and the per-class page, written to
    ``comparison`` and logged on the study's run with the ingest report; returns the table.
    ``ablations_json``: a deformation ablation's ``[{"model", "names": [no augmentation,
    all deformations, per-class policy]}]``, whose test accuracies are also written side
    by side (``policy_test_accuracy.txt``)."""
    import base64
    import json
    import os
    from pathlib import Path

    from urbansound.comparison import (
        BOXPLOT_FILE,
        HTML_FILE,
        ROWS_FILE,
        TABLE_FILE,
        RunAccuracies,
        comparison_rows,
        format_comparison,
        per_class_page,
        plot_fold_boxes,
    )
    from urbansound.components import runs, tracking_store

    loaded = [json.loads(base64.urlsafe_b64decode(r)) for r in rows]
    accuracies = [
        RunAccuracies(
            run_id=r["run_id"] or r["name"],
            model=r["model"],
            augmentation=r["augmentation"],
            fold_accuracies={int(k): float(v) for k, v in r["folds"].items()},
            name=r["name"],
            per_class=r["per_class"],
        )
        for r in loaded
    ]
    # the configurations' names as the rows' labels (the table's and the plot's)
    named = [
        RunAccuracies(a.run_id, a.name, "none", a.fold_accuracies, a.name, a.extra, a.per_class)
        for a in accuracies
    ]
    table_rows = comparison_rows(named)
    for row in table_rows:
        original = next(a for a in accuracies if a.run_id == row["run_id"])
        row.update(model=original.model, augmentation=original.augmentation)
    table = format_comparison(table_rows)
    print(table)
    folder = Path(comparison.path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TABLE_FILE).write_text(table + "\n")
    if ablations_json:
        from urbansound.ablation import TEST_FILE, format_policy_test

        text = "\n\n".join(
            format_policy_test(table_rows, a["model"], a["names"])
            for a in json.loads(ablations_json)
        )
        print(text)
        (folder / TEST_FILE).write_text(text + "\n")
    (folder / ROWS_FILE).write_text(json.dumps(table_rows, indent=2))
    plot_fold_boxes(named, folder / BOXPLOT_FILE, title="Test-fold accuracy per configuration")
    (folder / HTML_FILE).write_text(per_class_page(named), encoding="utf-8")
    comparison.metadata.update({"configurations": [r["name"] for r in loaded]})
    uri = tracking_store.resolve_uri(tracking_uri)
    if uri and study_run_id:
        meta = waveforms.metadata
        runs.log_ingest(
            uri,
            study_run_id,
            meta.get("dataset_hash", ""),
            int(meta.get("accepted", 0)),
            int(meta.get("rejected", 0)),
            os.path.join(waveforms.path, "report.json"),
            data_root=data_root,
        )
        runs.log_study_comparison(uri, study_run_id, str(folder))
    return table
