"""What a final run logs (``urbansound train-final``: one model trained on every fold):
the configuration, the data and folds, per-epoch training loss and accuracy, the number
of training examples, ``final_result.json`` and the model.  No test metrics: it has no
test fold."""

from __future__ import annotations

from pathlib import Path

from urbansound.components.model_logging import log_model
from urbansound.components.runs import experiment_id, log_class_names, log_config, log_params
from urbansound.components.tracking_store import client
from urbansound.config import Config
from urbansound.training import CONFIG_FILE, MODEL_FILE


def log_final_run(
    tracking_uri: str,
    model_dir: Path,
    *,
    config: Config,
    data_root: str,
    folds: list[int],
    final: dict,
    run_name: str,
    tags: dict[str, str],
) -> str:
    """Log the model :func:`urbansound.training.train_final` wrote to ``model_dir`` as a
    new FINISHED run of the urbansound experiment; ``final`` is its ``final_result.json``
    (``history``: loss and accuracy per epoch, ``n_train``: examples).  Returns the run id."""
    c = client(tracking_uri)
    run = c.create_run(experiment_id(c, tracking_uri), run_name=run_name, tags=tags)
    run_id = run.info.run_id
    log_params(
        c, run_id, {**config.flat(), "data_root": data_root, "folds": ",".join(map(str, folds))}
    )
    # in full (with the data's class names, as train_final wrote it): what --from-run reads
    trained = Config.from_json((model_dir / CONFIG_FILE).read_text())
    log_config(c, run_id, trained)
    log_class_names(c, run_id, trained.class_names)
    history = final["history"]
    for epoch, (loss, acc) in enumerate(zip(history["loss"], history["accuracy"]), 1):
        c.log_metric(run_id, "loss", loss, step=epoch)
        c.log_metric(run_id, "accuracy", acc, step=epoch)
    c.log_metric(run_id, "n_train", final["n_train"])
    c.log_artifact(run_id, str(model_dir / "final_result.json"))
    # config=None: the config.json train_final wrote, with the data's class names
    log_model(tracking_uri, run_id, str(model_dir / MODEL_FILE))
    c.set_terminated(run_id, "FINISHED")
    return run_id
