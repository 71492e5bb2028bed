"""What a fold run logs: every epoch's metrics while training, then the test metrics,
the confusion matrix and curves (plots and JSON), ``fold_result.json`` and the model.

A fold run (see :mod:`urbansound.components.runs`) carries per-epoch ``loss, accuracy, val_loss,
val_accuracy`` (an ensemble's: ``member<k>/loss`` … per member), ``test_accuracy``, ``test_loss``, ``best_epoch``, tags with the split's
sizes, the artifacts ``confusion_matrix.json``/``.png``, ``curves.png``,
``fold_result.json``, ``class_names.json`` (the classes in label order), ``config.json``
(logged when the run starts), and the model logged by :mod:`urbansound.components.model_logging` (a
pyfunc that serves raw audio, carrying the Keras file and its configuration).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from urbansound.components.model_logging import log_model
from urbansound.components.runs import log_class_names
from urbansound.components.tracking_store import client, guarded, tolerant


def epoch_logger(tracking_uri: str, run_id: str, members: int = 1):
    """A Keras callback logging every epoch's metrics (loss, accuracy, val_*) to a run.

    members : models trained one after another with this callback (``train.ensemble`` or
        ``train.seeds``).  Above 1, member k's metrics are ``member<k>/loss`` and so on (k
        from 1, in training order), so each member has its own curves in MLflow instead of
        one metric whose steps restart at 0."""
    import keras
    from mlflow.entities import Metric

    class _EpochLogger(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.member = 0

        def on_train_begin(self, logs=None):
            self.member += 1

        def on_epoch_end(self, epoch, logs=None):
            import time

            prefix = f"member{self.member}/" if members > 1 else ""
            now = int(time.time() * 1000)
            metrics = [Metric(prefix + k, float(v), now, epoch) for k, v in (logs or {}).items()]
            guarded(tracking_uri, lambda: client(tracking_uri).log_batch(run_id, metrics=metrics))

    return _EpochLogger()


@tolerant(default=None)
def log_fold_result(tracking_uri: str, run_id: str, result, model_path: str) -> None:
    """Test metrics, confusion matrix, curves and the model of one fold; ends the run.

    result : :class:`urbansound.training.FoldResult`.  model_path : the fold's
    ``model.keras`` (its ``config.json`` beside it, if any, goes with the model).
    """
    from urbansound.metrics import plot_confusion_matrix, plot_history

    c = client(tracking_uri)
    c.log_metric(run_id, "test_accuracy", result.test_accuracy)
    c.log_metric(run_id, "test_loss", result.test_loss)
    c.log_metric(run_id, "best_epoch", result.best_epoch)
    for key in ("validation_fold", "n_train", "n_validation", "n_test", "parameters"):
        c.set_tag(run_id, key, str(getattr(result, key)))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "confusion_matrix.json").write_text(
            json.dumps({"classes": result.class_names, "counts": result.confusion_matrix})
        )
        plot_confusion_matrix(
            result.confusion_matrix,
            result.class_names,
            tmp / "confusion_matrix.png",
            title=f"test fold {result.test_fold}",
        )
        plot_history(result.history, tmp / "curves.png", title=f"test fold {result.test_fold}")
        (tmp / "fold_result.json").write_text(result.to_json())
        for name in (
            "confusion_matrix.json",
            "confusion_matrix.png",
            "curves.png",
            "fold_result.json",
        ):
            c.log_artifact(run_id, str(tmp / name))
    log_class_names(c, run_id, result.class_names)
    log_model(tracking_uri, run_id, model_path, class_names=result.class_names)
    c.set_terminated(run_id, "FINISHED")
