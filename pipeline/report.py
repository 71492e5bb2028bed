"""``urbansound report RUN_ID``: a pipeline run's error analysis page, read back from MLflow.

Every pipeline run's evaluation logs ``report.html`` (built by
:func:`urbansound.report.build_report`, its players holding the clips as ingest decoded them,
read from ingest's records) beside ``predictions.csv`` and ``summary.json``.  The command
writes that page as it was logged: it needs neither the data folder nor the pipeline's
output, so it works on any machine that reaches the store, also for a run made on a
cluster or on data since moved.  A run without ``report.html`` (its evaluation ran before
the page existed, or the page failed to log) and ``rebuild=True`` build the page again
from ``predictions.csv`` and ``summary.json``; the mistakes' audio is then read from the
run's ``data_root`` param as the files are now (no players where it is not on this
machine).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from urbansound.config import Config, ConfigError
from urbansound.outputs import check_outputs
from urbansound.report import (
    PREDICTIONS_FILE,
    REPORT_FILE,
    AudioSource,
    build_report,
    dataset_audio,
    is_report,
    read_predictions,
)

SUMMARY_FILE = "summary.json"
CLASS_NAMES_FILE = "class_names.json"


@dataclass(frozen=True)
class Written:
    """What :func:`write_report` wrote: the page, and where its content came from in words."""

    path: Path
    source: str


def default_out(run_id: str) -> Path:
    """``report-<the run id's first 8 characters>.html`` in the current folder."""
    return Path(f"report-{run_id[:8]}.html")


def write_report(
    run_id: str,
    *,
    tracking_uri: str = "",
    out: str | os.PathLike | None = None,
    rebuild: bool = False,
) -> Written:
    """Write the error analysis page of pipeline run ``run_id`` to ``out`` (default
    :func:`default_out`): its logged ``report.html``, or (none logged, or ``rebuild``) a
    page built again from its ``predictions.csv`` and ``summary.json``.

    Raises
    ------
    ConfigError
        one line: ``out`` exists and is not a page urbansound wrote (checked before
        anything is read), no store, an unknown run, a fold run, a run without
        predictions.
    """
    path = Path(out) if out else default_out(run_id)
    check_outputs(
        [("--out", path)], ours=is_report, command="urbansound report", hint="give another -o"
    )
    import mlflow

    from urbansound.pipeline.model_source import mlflow_store

    uri = mlflow_store(run_id, tracking_uri)
    client = mlflow.MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except Exception:
        raise ConfigError(f"{run_id}: no such run in {uri}") from None
    parent = run.data.tags.get("mlflow.parentRunId")
    if parent:
        raise ConfigError(f"run {run_id} is a fold run; give its pipeline run {parent}")
    listed = {a.path for a in client.list_artifacts(run_id)}
    with tempfile.TemporaryDirectory() as tmp:
        if REPORT_FILE in listed and not rebuild:
            logged = Path(client.download_artifacts(run_id, REPORT_FILE, tmp))
            if not is_report(logged):
                raise ConfigError(f"run {run_id}: its {REPORT_FILE} was not written by urbansound")
            text = logged.read_text(encoding="utf-8")
            source = f"the {REPORT_FILE} logged by run {run_id}"
        else:
            missing = [n for n in (PREDICTIONS_FILE, SUMMARY_FILE) if n not in listed]
            if missing:
                raise ConfigError(
                    f"run {run_id} has no {' or '.join(missing)}: its evaluation did not "
                    f"finish, or ran before predictions were recorded; run the pipeline again"
                )
            text, source = _rebuild(client, run, Path(tmp))
    _write_atomically(path, text)
    return Written(path, source)


def _download_text(client, run_id: str, name: str, folder: Path) -> str:
    return Path(client.download_artifacts(run_id, name, str(folder))).read_text(encoding="utf-8")


def _rebuild(client, run, folder: Path) -> tuple[str, str]:
    """(the page, where it came from) built from the run's predictions and summary."""
    from urbansound.components.runs import run_config

    run_id = run.info.run_id
    try:
        rows = read_predictions(client.download_artifacts(run_id, PREDICTIONS_FILE, str(folder)))
        summary = json.loads(_download_text(client, run_id, SUMMARY_FILE, folder))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"run {run_id}: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("per_class"), dict):
        raise ConfigError(f"run {run_id}: {SUMMARY_FILE} has no per_class accuracies")
    class_names = list(summary["per_class"])  # in label order, as evaluate wrote them
    try:
        config, _ = run_config(client, run_id)
    except ConfigError:  # the page does not need the configuration: its front end's defaults
        config = Config()
    audio, note = _dataset_source(run.data.params.get("data_root", ""), config)
    text = build_report(
        rows,
        summary,
        class_names,
        audio,
        title=f"urbansound evaluation: {run.info.run_name or run_id}",
        features=config.features,
        audio_note=note,
    )
    return text, f"built again from run {run_id}'s {PREDICTIONS_FILE}; {note}"


def _dataset_source(data_root: str, config: Config) -> tuple[AudioSource | None, str]:
    """The audio of the mistakes from the run's data folder, and a line saying so."""
    if not data_root or not Path(data_root).is_dir():
        shown = data_root or "(none recorded)"
        return None, f"audio: the run's data folder {shown} is not on this machine"
    from urbansound.listing import DatasetError

    source = dataset_audio(data_root, config.data, sample_rate=config.audio.sample_rate)

    def read(keys):
        try:
            return source(keys)
        except DatasetError:  # the folder no longer lists as a dataset: no players
            return {}

    return read, f"audio read again from the run's data folder {data_root}, as the files are now"


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write ({exc.strerror or exc})") from None
