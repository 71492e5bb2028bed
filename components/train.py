"""KFP component: train and test one model for one test fold (fanned out by ParallelFor)."""

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output


def train_component(
    features: Input[Dataset],
    test_fold: int,
    config_json: str,
    tracking_uri: str,
    parent_run_id: str,
    model: Output[Model],
    fold_result: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> float:
    """Train with ``test_fold`` held out; return its test accuracy."""
    import os
    import shutil

    from urbansound.components import fold_logging, runs, tracking_store
    from urbansound.components.errors import user_errors
    from urbansound.components.kfp_files import write_metric_files
    from urbansound.config import Config
    from urbansound.training import MODEL_FILE, RESULT_FILE, train_fold

    config = Config.from_json(config_json)
    folds = [int(f) for f in features.metadata["folds"]]
    uri = tracking_store.resolve_uri(tracking_uri)
    run_id = ""
    if uri and parent_run_id:
        run_id = runs.start_fold_run(uri, parent_run_id, test_fold, config.flat(), config=config)
    try:
        with user_errors(f"train fold {test_fold}"):
            result = train_fold(
                features.path,
                test_fold,
                folds,
                config=config,
                out_dir=model.path,
                verbose=2,
                callbacks=(
                    [fold_logging.epoch_logger(uri, run_id, len(config.train.member_seeds))]
                    if run_id
                    else []
                ),
            )
        if run_id:
            fold_logging.log_fold_result(uri, run_id, result, os.path.join(model.path, MODEL_FILE))
    except BaseException:
        if run_id:
            runs.end_run(uri, run_id, "FAILED")
        raise
    os.makedirs(os.path.dirname(fold_result.path) or ".", exist_ok=True)
    shutil.copyfile(os.path.join(model.path, RESULT_FILE), fold_result.path)
    info = {
        "test_fold": test_fold,
        "validation_fold": result.validation_fold,
        "train_folds": result.train_folds,
        "mlflow_run_id": run_id,
    }
    model.metadata.update(info | {"framework": "keras", "parameters": result.parameters})
    fold_result.metadata.update(info)
    metrics.log_metric("test_accuracy", result.test_accuracy)
    metrics.log_metric("best_epoch", result.best_epoch)
    classification.log_confusion_matrix(result.class_names, result.confusion_matrix)
    write_metric_files(metrics, classification)
    return result.test_accuracy
