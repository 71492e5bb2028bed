"""``urbansound register``: put a run's model in the MLflow model registry.

A fold run's model is registered as it is.  A pipeline (parent) run has one model per
test fold: the fold with the highest ``test_accuracy`` is chosen (ties: the lowest fold
number), or the one ``fold`` names.  The registered version is tagged with the run, the
fold, its parent and its test accuracy, and gets ``alias`` if one is given; the
``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``) URI it returns is what
``urbansound predict`` and ``mlflow models serve`` take.
"""

from __future__ import annotations

from dataclasses import dataclass

from urbansound.components.runs import FOLD_TAG
from urbansound.config import ConfigError
from urbansound.pipeline.model_source import ModelSourceError, mlflow_store

KIND_TAG = "urbansound.kind"
"""``final`` on the runs (and versions) of ``urbansound train-final``."""
MODEL_PATH = "model"
"""The name fold runs log their model under (:data:`urbansound.components.model_logging.MODEL_NAME`)."""


class RegistryError(ConfigError):
    """The run or its model cannot be registered (``"<run id>: <reason>"``, one line)."""


@dataclass(frozen=True)
class Registered:
    """What :func:`register` did.  uri : ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``;
    run_id : the fold run whose model it is; fold : its test fold (None if untagged);
    parent_run_id : the pipeline run chosen from, or None; test_accuracy : None if not
    logged; chosen_by : how the fold was chosen from the parent, in words ("" for a fold
    run)."""

    uri: str
    name: str
    version: str
    alias: str | None
    run_id: str
    fold: int | None
    parent_run_id: str | None
    test_accuracy: float | None
    chosen_by: str = ""


def register(
    run_id: str,
    name: str,
    *,
    alias: str | None = None,
    fold: int | None = None,
    tracking_uri: str = "",
) -> Registered:
    """Register the model of ``run_id`` (a fold run, or a parent run: its best fold or
    ``fold``) as a new version of ``name``.

    Raises
    ------
    RegistryError
        unknown run, no such fold, a run without a logged model, a name or alias
        MLflow refuses; one line.
    ModelSourceError
        the store does not exist.
    """
    import mlflow

    _uri, client, run = _open_run(run_id, tracking_uri)
    if run.info.lifecycle_stage == "deleted":
        raise RegistryError(f"{run_id}: the run is deleted")
    parent_id, chosen_by = None, ""
    children = _fold_runs(client, run)
    if children:
        parent_id = run_id
        run, chosen_by = _choose_fold(run_id, children, fold)
    elif fold is not None and run.data.tags.get(FOLD_TAG) != str(fold):
        raise RegistryError(
            f"{run_id}: a run of fold {run.data.tags.get(FOLD_TAG, '?')}, "
            f"not fold {fold} (--fold chooses among a pipeline run's folds)"
        )
    chosen = run.info.run_id
    source = f"runs:/{chosen}/{MODEL_PATH}"
    try:
        mlflow.models.get_model_info(source)
    except Exception:
        what = f"fold run {chosen} of {run_id}" if parent_id else chosen
        raise RegistryError(
            f"{what}: no logged model (status {run.info.status}; a fold run "
            f"logs its model when it finishes)"
        ) from None
    accuracy = run.data.metrics.get("test_accuracy")
    version = _register_version(
        client,
        source,
        name,
        alias,
        run_id,
        {
            "run_id": chosen,
            FOLD_TAG: run.data.tags.get(FOLD_TAG, ""),
            "parent_run_id": parent_id or run.data.tags.get("mlflow.parentRunId", ""),
            "test_accuracy": "" if accuracy is None else f"{accuracy:.6g}",
        },
    )
    fold_tag = run.data.tags.get(FOLD_TAG)
    return Registered(
        uri=f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}",
        name=name,
        version=str(version),
        alias=alias,
        run_id=chosen,
        fold=int(fold_tag) if fold_tag and fold_tag.isdigit() else None,
        parent_run_id=parent_id,
        test_accuracy=accuracy,
        chosen_by=chosen_by,
    )


def _register_version(
    client, source: str, name: str, alias: str | None, run_id: str, tags: dict[str, str]
) -> str:
    """Register ``source`` as a new version of ``name`` with the non-empty ``tags`` and the
    alias; return the version.  RegistryError (one line) for a name or alias MLflow refuses."""
    import mlflow

    try:
        version = mlflow.register_model(source, name).version
        for key, value in tags.items():
            if value:
                client.set_model_version_tag(name, version, key, value)
        if alias:
            client.set_registered_model_alias(name, alias, version)
    except Exception as exc:
        raise RegistryError(f"{run_id}: cannot register as {name!r}: {_first_line(exc)}") from None
    return version


def register_final(
    run_id: str,
    name: str,
    *,
    alias: str | None = None,
    tracking_uri: str = "",
    cross_validated_run: str | None = None,
) -> Registered:
    """Register the model of a final run (``urbansound train-final``: trained on every
    fold, so no test accuracy) as a new version of ``name``, tagged ``urbansound.kind=final``
    and with the cross-validated run whose settings it used (if any).

    Raises
    ------
    RegistryError
        unknown run, no logged model, a name or alias MLflow refuses; one line.
    """
    import mlflow

    uri = mlflow_store(run_id, tracking_uri)
    client = mlflow.MlflowClient(uri)
    source = f"runs:/{run_id}/{MODEL_PATH}"
    try:
        client.get_run(run_id)
        mlflow.models.get_model_info(source)
    except Exception:
        raise RegistryError(f"{run_id}: no such run with a logged model in {uri}") from None
    version = _register_version(
        client,
        source,
        name,
        alias,
        run_id,
        {"run_id": run_id, KIND_TAG: "final", "cross_validated_run": cross_validated_run or ""},
    )
    return Registered(
        uri=f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}",
        name=name,
        version=str(version),
        alias=alias,
        run_id=run_id,
        fold=None,
        parent_run_id=cross_validated_run,
        test_accuracy=None,
        chosen_by="trained on every fold",
    )


def run_settings(run_id: str, tracking_uri: str = ""):
    """What ``train-final --from-run`` takes from a pipeline (or fold) run: (its
    configuration, the median best epoch of its folds or None, the store).

    Raises
    ------
    RegistryError
        unknown run; one line.
    ConfigError
        its logged configuration is not valid (one line, naming the run).
    """
    import statistics

    from urbansound.components.runs import run_config

    uri, client, run = _open_run(run_id, tracking_uri)
    folds = _fold_runs(client, run) or [run]
    best = [r.data.metrics["best_epoch"] for r in folds if "best_epoch" in r.data.metrics]
    try:
        config, _ = run_config(client, run_id, run.data.params)
    except ConfigError as exc:
        raise ConfigError(f"{run_id}: {exc}") from None
    return config, int(round(statistics.median(best))) if best else None, uri


def _open_run(run_id: str, tracking_uri: str):
    """(store, client, run) of ``run_id``; :class:`RegistryError` for an unknown run."""
    import mlflow

    uri = mlflow_store(run_id, tracking_uri)
    client = mlflow.MlflowClient(uri)
    try:
        return uri, client, client.get_run(run_id)
    except Exception:
        raise RegistryError(f"{run_id}: no such run in {uri}") from None


def _fold_runs(client, run) -> list:
    """The live fold runs nested under ``run`` (superseded ones are deleted)."""
    return [
        r
        for r in client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
            max_results=1000,
        )
        if FOLD_TAG in r.data.tags
    ]


def _choose_fold(parent_id: str, children: list, fold: int | None) -> tuple[object, str]:
    """(the fold run, how it was chosen): ``fold``'s, else the highest test_accuracy."""
    by_fold = {r.data.tags[FOLD_TAG]: r for r in children}
    folds = ", ".join(sorted(by_fold, key=lambda f: (len(f), f)))
    if fold is not None:
        if str(fold) not in by_fold:
            raise RegistryError(
                f"{parent_id}: no fold {fold} in this pipeline run (folds: {folds})"
            )
        return by_fold[str(fold)], "chosen with --fold"
    scored = [r for r in children if "test_accuracy" in r.data.metrics]
    if not scored:
        raise RegistryError(
            f"{parent_id}: no fold run has a test_accuracy yet (folds: {folds}); give --fold"
        )
    best = max(
        scored,
        key=lambda r: (r.data.metrics["test_accuracy"], -_fold_number(r.data.tags[FOLD_TAG])),
    )
    return best, f"the best of {len(scored)} folds with a test accuracy"


def _fold_number(tag: str) -> int:
    return int(tag) if tag.isdigit() else 0


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200] + ("…" if len(text) > 200 else "")


__all__ = ["ModelSourceError", "Registered", "RegistryError", "register", "register_final"]
