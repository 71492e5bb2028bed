"""MLflow runs of a pipeline run: the parent run, one nested run per test fold, their
params and the parent's numbers.

Layout of one pipeline run in MLflow (experiment ``urbansound``):

- a parent run, tagged ``urbansound.run_key=<key>``, with the whole configuration
  as params, the ingest report and data set, and at the end ``accuracy_mean/median/std``
  and ``summary.json``, ``confusion_matrix.json``, ``confusion_matrix.png``,
  ``predictions.csv`` (also as the MLflow table ``predictions_table.json``), ``report.html``;
- one nested run per test fold (tags ``fold=<k>``, ``mlflow.parentRunId``) with the
  configuration as params; what it logs while and after training is in
  :mod:`urbansound.components.fold_logging`.

Every function taking the URI first is wrapped by :func:`urbansound.components.tracking_store.tolerant`:
an unreachable server makes it return its default, a full store ends the task.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields

from urbansound.components.tracking_store import client, default_artifact_location, tolerant
from urbansound.config import Config, ConfigError
from urbansound.messages import quoted
from urbansound.report import PREDICTIONS_FILE

EXPERIMENT = "urbansound"
RUN_KEY_TAG = "urbansound.run_key"
FOLD_TAG = "fold"
SUPERSEDED_TAG = "urbansound.superseded_by"
KIND_TAG = "urbansound.kind"
STUDY_KIND = "study"
CONFIGURATION_KIND = "configuration"
"""A study (:mod:`urbansound.components.study`) is a run of kind ``study`` with one nested run
of kind ``configuration`` per configuration, each the parent of its fold runs."""

CONFIG_ARTIFACT = "config.json"
"""The run's whole configuration (:meth:`Config.to_json`), in full: what is read back
(``predict runs:/...``, ``train-final --from-run``), not the params."""
CLASS_NAMES_ARTIFACT = "class_names.json"
"""``{"class_names": [...], "metric_keys": {"accuracy_class_03_dog_bark": "dog_bark"}}``: the
classes in label order and which per-class metric is which class."""
PARAM_TEXT_LIMIT = 500
"""Characters of a param value shown in the UI; a longer value (300 class names) is logged
shortened: MLflow would cut it at 6,000 without a word, and the full value is in
:data:`CONFIG_ARTIFACT`."""

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""MLflow 3's UI opens an experiment with this tag on its model-training view (runs
table), not on the GenAI overview (traces, token usage)."""


VIEW_KEY = "accuracy"
"""``viewStateShareKey`` of the runs table ``urbansound ui`` opens (see :data:`VIEW_TAGS`)."""
VIEW_TAGS = {
    EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
    # MLflow 3's runs table shows no metric column until one is picked; a shared view state
    # (an experiment tag read when the URL carries viewStateShareKey) picks the accuracies
    f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(
        {
            "selectedColumns": [
                "metrics.`accuracy_mean`",
                "metrics.`accuracy_median`",
                "metrics.`accuracy_std`",
                "metrics.`test_accuracy`",
            ]
        }
    ),
}
"""Experiment tags: the model-training view, and the accuracy columns of the runs table."""


def experiment_id(mlflow_client, tracking_uri: str, name: str = EXPERIMENT) -> str:
    """Get or create the experiment, tagged as model development with the accuracy columns
    shown (:data:`VIEW_TAGS`; tolerates a concurrent creator)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        for key, value in VIEW_TAGS.items():
            if found.tags.get(key) != value:
                mlflow_client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(
            name, artifact_location=default_artifact_location(tracking_uri), tags=dict(VIEW_TAGS)
        )
    except Exception:  # another run created it in between
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def parent_run_name(config, data_root: str) -> str:
    """What a pipeline run is, as its MLflow name: ``urbannet · no augmentation · UrbanSound8K``
    (model, deformations or their set, the data folder), not MLflow's random words."""
    from urbansound.deformations import DEFORMATION_SETS

    deformations = config.augment.all_deformations()
    named = [name for name, members in DEFORMATION_SETS.items() if members == deformations]
    augmentation = (
        (named[0] if named else "+".join(deformations)) if deformations else "no augmentation"
    )
    members = config.train.member_seeds
    seeds = f" · {len(members)} seeds" if len(members) > 1 else ""
    data = os.path.basename(os.path.normpath(data_root)) or data_root
    return f"{config.train.model} · {augmentation}{seeds} · {data}"


@tolerant(default="")
def start_parent_run(
    tracking_uri: str,
    run_key: str,
    params: dict,
    run_name: str = "",
    config: Config | None = None,
    tags: dict | None = None,
) -> str:
    """Create the pipeline's parent run (status RUNNING); return its id ("" if the
    server is unreachable).

    The run key names one pipeline run (output folder, configuration, data, code).
    A parent with the same key that was interrupted or failed is reopened (a
    resumed run), and fold runs it left RUNNING are marked KILLED (only one
    process runs a key at a time: the output folder is locked).  A FINISHED
    parent is never reopened: its id is returned unchanged, and as every task of
    a finished run comes from kfp's cache, nothing is logged to it again.
    ``config``, when given, is logged in full as :data:`CONFIG_ARTIFACT`; ``tags`` are
    set on a new run (a study's configuration run: ``mlflow.parentRunId``, its kind).
    """
    c = client(tracking_uri)
    existing = _find_parent(c, run_key)
    if existing is not None:
        run_id = existing.info.run_id
        if existing.info.status == "FINISHED":
            print(f"MLflow parent run {run_id} finished earlier; it is not reopened")
            return run_id
        _close_children(c, existing, "KILLED", statuses=("RUNNING",))
        c.update_run(run_id, status="RUNNING")
        return run_id
    run = c.create_run(
        experiment_id(c, tracking_uri),
        run_name=run_name or None,
        tags={**(tags or {}), RUN_KEY_TAG: run_key},
    )
    log_params(c, run.info.run_id, params)
    if config is not None:
        log_config(c, run.info.run_id, config)
    return run.info.run_id


def _find_parent(mlflow_client, run_key: str):
    exp = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = mlflow_client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1
    )
    return runs[0] if runs else None


def find_parent_run(mlflow_client, run_key: str) -> str | None:
    found = _find_parent(mlflow_client, run_key)
    return found.info.run_id if found is not None else None


def parent_run_status(tracking_uri: str, run_key: str) -> tuple[str, str] | None:
    """(run id, status) of the parent run with this key, None if there is none."""
    found = _find_parent(client(tracking_uri), run_key)
    return (found.info.run_id, found.info.status) if found is not None else None


def log_params(mlflow_client, run_id: str, params: dict) -> None:
    """Log ``params`` (lists and dicts as JSON); a value longer than
    :data:`PARAM_TEXT_LIMIT` characters as :func:`param_text` shortens it."""
    from mlflow.entities import Param

    logged = mlflow_client.get_run(run_id).data.params
    items = [Param(str(k), param_text(v)) for k, v in sorted(params.items())]
    items = [p for p in items if logged.get(p.key) != p.value]  # a resumed run: no repeats
    for start in range(0, len(items), 100):  # log_batch takes at most 100 params
        mlflow_client.log_batch(run_id, params=items[start : start + 100])


def param_text(value) -> str:
    """A param's value as logged: JSON for a list or dict, else ``str``; beyond
    :data:`PARAM_TEXT_LIMIT` characters, its start and its length
    (``'["a", "b", ... … (12,345 characters; in full in config.json)'``): a short form for
    the UI, never read back."""
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    if len(text) <= PARAM_TEXT_LIMIT:
        return text
    items = f"{len(value)} items, " if isinstance(value, (list, tuple, dict)) else ""
    return (
        f"{text[: PARAM_TEXT_LIMIT - 80]} … ({items}{len(text):,} characters; in full in "
        f"{CONFIG_ARTIFACT})"
    )


def log_config(mlflow_client, run_id: str, config: Config) -> None:
    """The configuration in full as the run's :data:`CONFIG_ARTIFACT`."""
    _log_json(mlflow_client, run_id, CONFIG_ARTIFACT, config.to_json())


def class_metric_keys(class_names, prefix: str = "accuracy_class_") -> dict[str, str]:
    """``{metric key: class name}``, in label order: ``accuracy_class_03_dog_bark``.  The
    label index makes each key unique (``dog🐕`` and ``dog🐈`` both read ``dog_``, ``Dog``
    and ``dog`` differ in case only); the readable part is :func:`metric_safe`'s, cut to
    60 characters (MLflow takes keys of at most 250)."""
    names = list(class_names)
    width = max(2, len(str(len(names) - 1)))
    return {f"{prefix}{i:0{width}d}_{metric_safe(name)[:60]}": name for i, name in enumerate(names)}


def log_class_names(mlflow_client, run_id: str, class_names) -> None:
    """The classes in label order and their metric keys as :data:`CLASS_NAMES_ARTIFACT`."""
    names = list(class_names)
    _log_json(
        mlflow_client,
        run_id,
        CLASS_NAMES_ARTIFACT,
        json.dumps(
            {"class_names": names, "metric_keys": class_metric_keys(names)},
            ensure_ascii=False,
            indent=1,
        ),
    )


def _log_json(mlflow_client, run_id: str, name: str, text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        mlflow_client.log_artifact(run_id, path)


def _log_metric_once(mlflow_client, run_id: str, key: str, value: float, logged: dict) -> None:
    """Log a metric unless the run already has that value (a resumed task)."""
    if key in logged and abs(float(logged[key]) - float(value)) <= 1e-12:
        return
    mlflow_client.log_metric(run_id, key, value)


def _close_children(mlflow_client, parent, status: str, statuses=("RUNNING",)) -> None:
    """Mark the runs nested under ``parent`` (at any depth: a study's configuration runs
    and their fold runs) that are in ``statuses`` as ``status``."""
    for child in mlflow_client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    ):
        if child.info.status in statuses:
            mlflow_client.set_terminated(child.info.run_id, status)
        if child.data.tags.get(KIND_TAG) == CONFIGURATION_KIND:
            _close_children(mlflow_client, child, status, statuses)


@tolerant(default=None)
def finish_runs(tracking_uri: str, run_key: str, status: str) -> str | None:
    """End the parent run and any nested run still RUNNING with ``status``
    (FINISHED, FAILED or KILLED).  Returns the parent id, None if there is none."""
    c = client(tracking_uri)
    parent = _find_parent(c, run_key)
    if parent is None:
        return None
    _close_children(c, parent, status)
    if c.get_run(parent.info.run_id).info.status == "RUNNING":
        c.set_terminated(parent.info.run_id, status)
    return parent.info.run_id


@tolerant(default=None)
def end_run(tracking_uri: str, run_id: str, status: str) -> None:
    """Mark one run ``status`` (e.g. a fold run that failed)."""
    client(tracking_uri).set_terminated(run_id, status)


@tolerant(default="")
def start_fold_run(
    tracking_uri: str, parent_run_id: str, fold: int, params: dict, config: Config | None = None
) -> str:
    """Create the nested run of one test fold; return its id ("" if the server is
    unreachable).

    A fold run of the same parent and fold that an earlier attempt left RUNNING
    is marked KILLED; one that FINISHED (the task was stopped after logging but
    before kfp recorded it) is superseded by the new one (tagged and deleted), so
    each fold appears once.  ``config``, when given, is logged in full as
    :data:`CONFIG_ARTIFACT`.
    """
    c = client(tracking_uri)
    exp = c.get_run(parent_run_id).info.experiment_id
    earlier = c.search_runs(
        [exp],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.{FOLD_TAG} = '{fold}'",
    )
    run = c.create_run(
        exp,
        run_name=f"fold-{fold}",
        tags={"mlflow.parentRunId": parent_run_id, FOLD_TAG: str(fold)},
    )
    for old in earlier:
        if old.info.status == "RUNNING":
            c.set_terminated(old.info.run_id, "KILLED")
        elif old.info.status == "FINISHED":
            c.set_tag(old.info.run_id, SUPERSEDED_TAG, run.info.run_id)
            c.delete_run(old.info.run_id)
    log_params(c, run.info.run_id, params)
    if config is not None:
        log_config(c, run.info.run_id, config)
    return run.info.run_id


def metric_safe(name: str) -> str:
    """A class name as MLflow accepts it inside a metric key (letters, digits, ``_ - . / :``
    and spaces; anything else becomes ``_``): a folder named ``dog (bark)`` must not
    fail the run's logging.  Two names can give one text: :func:`class_metric_keys` makes
    them unique."""
    import re

    return re.sub(r"[^0-9A-Za-z_\-./: ]", "_", name) or "_"


@tolerant(default=None)
def log_summary(tracking_uri: str, parent_run_id: str, summary: dict, eval_dir: str) -> None:
    """Summary metrics and evaluation files on the parent run (a value it already has
    is not logged again).  Per-class accuracies are ``accuracy_class_<index>_<name>``
    (:func:`class_metric_keys`; ``summary["per_class"]`` is in label order), which class
    each is in :data:`CLASS_NAMES_ARTIFACT`."""
    c = client(tracking_uri)
    logged = c.get_run(parent_run_id).data.metrics
    for key in ("mean", "median", "std"):
        _log_metric_once(c, parent_run_id, f"accuracy_{key}", summary[key], logged)
    per_class = summary.get("per_class") or {}
    for key, name in class_metric_keys(per_class).items():
        if per_class[name] is not None:
            _log_metric_once(c, parent_run_id, key, per_class[name], logged)
    if per_class:
        log_class_names(c, parent_run_id, per_class)
    for name, value in (summary.get("by_salience") or {}).items():
        _log_metric_once(c, parent_run_id, f"accuracy_{name}", value["accuracy"], logged)
    if "ece" in (summary.get("calibration") or {}):
        _log_metric_once(
            c, parent_run_id, "expected_calibration_error", summary["calibration"]["ece"], logged
        )
    for name in sorted(os.listdir(eval_dir)):
        c.log_artifact(parent_run_id, os.path.join(eval_dir, name))
    predictions = os.path.join(eval_dir, PREDICTIONS_FILE)
    if os.path.isfile(predictions):
        log_predictions_table(c, parent_run_id, predictions)


PREDICTIONS_TABLE = "predictions_table.json"
"""The same rows as an MLflow table (``log_table``): the UI's artifact view shows it as a
table, and the evaluation view can compare it across runs."""


def log_predictions_table(mlflow_client, run_id: str, csv_path: str) -> None:
    """``predictions.csv`` as the run's MLflow table :data:`PREDICTIONS_TABLE`, once: MLflow
    appends to a table already logged, so a resumed evaluation that logged it before
    leaves it as it is (its rows are the same: one parent run, one evaluation)."""
    import pandas as pd

    if PREDICTIONS_TABLE in {a.path for a in mlflow_client.list_artifacts(run_id)}:
        return
    table = pd.read_csv(csv_path, dtype={"file": str}, keep_default_na=False)
    mlflow_client.log_table(run_id, data=table, artifact_file=PREDICTIONS_TABLE)


@tolerant(default=None)
def log_ingest(
    tracking_uri: str,
    parent_run_id: str,
    dataset_hash: str,
    accepted: int,
    rejected: int,
    report_path: str,
    data_root: str = "",
) -> None:
    """Ingest's numbers on the parent run, and the data as an MLflow dataset input (name,
    digest, clip count), so that the runs table's Dataset column says what it trained on."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    c = client(tracking_uri)
    log_params(c, parent_run_id, {"dataset_hash": dataset_hash})
    if data_root and not c.get_run(parent_run_id).inputs.dataset_inputs:
        dataset = Dataset(
            name=os.path.basename(os.path.normpath(data_root)) or data_root,
            digest=dataset_hash[:16],
            source_type="local",
            source=json.dumps({"uri": data_root}),
            profile=json.dumps({"clips": accepted, "rejected": rejected}),
        )
        c.log_inputs(
            parent_run_id,
            datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])],
        )
    logged = c.get_run(parent_run_id).data.metrics
    _log_metric_once(c, parent_run_id, "clips_accepted", accepted, logged)
    _log_metric_once(c, parent_run_id, "clips_rejected", rejected, logged)
    c.log_artifact(parent_run_id, report_path)


def config_from_params(params: dict[str, str]) -> Config:
    """The configuration logged as MLflow params (``section.key`` → text, as
    :func:`log_params` writes them); keys absent keep their default,
    params that are not configuration keys (``data_root``, ...) are ignored.

    Raises ConfigError when a value does not parse or fails validation."""
    defaults = Config()
    data: dict[str, dict] = {}
    for section in fields(Config):
        current = getattr(defaults, section.name)
        for item in fields(current):
            key = f"{section.name}.{item.name}"
            if key not in params:
                continue
            default = getattr(current, item.name)
            data.setdefault(section.name, {})[item.name] = _parse_param(key, params[key], default)
    return Config.from_dict(data)


def _parse_param(key: str, text: str, default):
    try:
        if text == "None" and default is None:  # an optional number left unset (features.fmax)
            return None
        if isinstance(default, bool):
            return {"True": True, "False": False}[text]
        if isinstance(default, tuple):
            return json.loads(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float) or default is None:
            return float(text)
        return text
    except (ValueError, KeyError):
        raise ConfigError(f"MLflow param {key}={quoted(text)} is not a valid value") from None


def run_config(
    mlflow_client, run_id: str, params: dict[str, str] | None = None
) -> tuple[Config, str]:
    """The configuration a run was logged with, and where it came from in words: its
    :data:`CONFIG_ARTIFACT` (in full), else its params (runs logged before the artifact;
    their ``data.class_names``, when it does not parse, from :data:`CLASS_NAMES_ARTIFACT`).

    Raises ConfigError (one line, quoting at most the start of a value) when neither
    gives a valid configuration."""
    import tempfile

    params = mlflow_client.get_run(run_id).data.params if params is None else params
    try:
        listed = {a.path for a in mlflow_client.list_artifacts(run_id)}
    except Exception:
        listed = set()
    with tempfile.TemporaryDirectory() as tmp:

        def read(name: str) -> str | None:
            if name not in listed:
                return None
            try:
                path = mlflow_client.download_artifacts(run_id, name, tmp)
            except Exception:
                return None
            with open(path, encoding="utf-8") as f:
                return f.read()

        text = read(CONFIG_ARTIFACT)
        if text is not None:
            return (
                Config.from_json(text),
                f"the params of run {run_id} (in full from its {CONFIG_ARTIFACT})",
            )
        names = read(CLASS_NAMES_ARTIFACT)
    key = "data.class_names"
    if names is not None and key in params:
        try:
            json.loads(params[key])
        except ValueError:  # shortened or cut by MLflow: the artifact has the list
            loaded = json.loads(names)
            params = params | {
                key: json.dumps(loaded["class_names"] if isinstance(loaded, dict) else loaded)
            }
    return config_from_params(params), f"the params of run {run_id}"


STUDY_ARTIFACT = "study.json"
"""A study run's configurations in full (:meth:`urbansound.study.Study.to_json`)."""
CONFIGURATION_TAG = "urbansound.configuration"


@tolerant(default="")
def start_study_run(tracking_uri: str, run_key: str, study_json: str, data_root: str) -> str:
    """Create (or reopen, as :func:`start_parent_run` does) a study's run: params ``study.name``,
    ``study.configurations`` (their names) and ``data_root``, the study in full as
    :data:`STUDY_ARTIFACT`; tagged ``urbansound.kind=study``."""
    study = json.loads(study_json)
    names = [c["name"] for c in study["configurations"]]
    data = os.path.basename(os.path.normpath(data_root)) or data_root
    run_id = start_parent_run(
        tracking_uri,
        run_key,
        {"study.name": study["name"], "study.configurations": names, "data_root": data_root},
        run_name=f"study {study['name']} · {len(names)} configurations · {data}",
        tags={KIND_TAG: STUDY_KIND},
    )
    if run_id:
        c = client(tracking_uri)
        if STUDY_ARTIFACT not in {a.path for a in c.list_artifacts(run_id)}:
            _log_json(c, run_id, STUDY_ARTIFACT, json.dumps(study, indent=1, sort_keys=True))
    return run_id


@tolerant(default="")
def start_configuration_run(
    tracking_uri: str,
    run_key: str,
    study_run_id: str,
    name: str,
    config: Config,
    data_root: str,
) -> str:
    """Create (or reopen) one configuration's run, nested under the study's run and named
    for the configuration; its params are the configuration's (as a pipeline run's), so
    that ``compare`` reads it as one.  A FINISHED one is returned as it is."""
    return start_parent_run(
        tracking_uri,
        run_key,
        config.flat() | {"data_root": data_root},
        run_name=name,
        config=config,
        tags={
            "mlflow.parentRunId": study_run_id,
            KIND_TAG: CONFIGURATION_KIND,
            CONFIGURATION_TAG: name,
        },
    )


@tolerant(default=None)
def log_study_comparison(tracking_uri: str, study_run_id: str, folder: str) -> None:
    """The study's comparison files (table, rows, box plot, per-class page) on its run."""
    c = client(tracking_uri)
    for name in sorted(os.listdir(folder)):
        c.log_artifact(study_run_id, os.path.join(folder, name))


@tolerant(default=None)
def log_study_folder(tracking_uri: str, study_run_id: str, folder: str, artifact_path: str) -> None:
    """A folder of a study's outputs (a deformation ablation's table, heatmap and policy)
    on the study's run, under ``artifact_path``."""
    client(tracking_uri).log_artifacts(study_run_id, folder, artifact_path=artifact_path)
