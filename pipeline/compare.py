"""``urbansound compare``: read pipeline runs back from MLflow, print the study's Table 1
and write the box plot of fold accuracies; log both to MLflow as a comparison run.

A pipeline run in MLflow is a parent run (params ``train.model``,
``augment.deformations``) with one nested run per test fold (tag ``fold``, metric
``test_accuracy``); see :mod:`urbansound.components.runs`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
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
from urbansound.config import ConfigError
from urbansound.outputs import check_outputs, claim_folder, record
from urbansound.report import is_report

KIND_TAG = "urbansound.kind"
COMPARISON_KIND = "comparison"
STUDY_KIND = "study"
CONFIGURATION_KIND = "configuration"
"""A study's run, and the run of one of its configurations (a pipeline run's equal, nested
under the study's; :mod:`urbansound.components.runs`)."""
HTML_ARTIFACT = HTML_FILE
"""The per-class page (``--html``) as the comparison run logs it."""
CLASS_METRIC = re.compile(r"accuracy_class_(\d+)_(.*)")
"""A parent run's per-class accuracy metric (:func:`urbansound.components.runs.class_metric_keys`)."""


def _legacy_compare(folder: Path) -> list[str] | None:
    """The files an earlier compare (before output markers) wrote in ``folder``, or None
    when it holds anything else."""
    names = sorted(p.name for p in folder.iterdir())
    return names if set(names) <= {BOXPLOT_FILE, TABLE_FILE, ROWS_FILE} else None


def _augmentation(params: dict) -> str:
    try:
        names = json.loads(params.get("augment.deformations", "[]"))
    except json.JSONDecodeError:
        names = []
    return "+".join(names) if names else "none"


def load_runs(
    tracking_uri: str, run_ids: list[str] | None = None, experiment: str = "urbansound"
) -> list[RunAccuracies]:
    """The finished fold accuracies of pipeline runs: the ``run_ids`` given (parent runs;
    a study's run stands for its configurations' runs), or every pipeline run of
    ``experiment`` (a study's configurations each count as one).

    Raises
    ------
    ConfigError
        no store at a sqlite URI (nothing is created), an unknown experiment or run id,
        or a fold run given instead of a pipeline run.
    """
    from urbansound.components.tracking_store import missing_store

    db = missing_store(tracking_uri)
    if db is not None:  # MLflow would create an empty store just to find nothing in it
        wanted = f"run {run_ids[0]!r}" if run_ids else f"experiment {experiment!r}"
        raise ConfigError(
            f"{db}: no MLflow store here, so no {wanted} to compare (run "
            f"`urbansound run` first, or give --tracking-uri)"
        )
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    studies: set[str] = set()
    if run_ids:
        parents = []
        for run_id in run_ids:
            try:
                run = client.get_run(run_id)
            except MlflowException:
                raise ConfigError(f"{tracking_uri}: no run {run_id!r}") from None
            kind = run.data.tags.get(KIND_TAG)
            if "mlflow.parentRunId" in run.data.tags and kind != CONFIGURATION_KIND:
                raise ConfigError(
                    f"run {run_id} is a fold run; give its pipeline run "
                    f"{run.data.tags['mlflow.parentRunId']}"
                )
            parents.append(run)
        experiment_ids = sorted({run.info.experiment_id for run in parents})
        studies = {r.info.run_id for r in parents if r.data.tags.get(KIND_TAG) == STUDY_KIND}
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise ConfigError(f"{tracking_uri}: no experiment {experiment!r}")
        experiment_ids = [found.experiment_id]
        parents = None
    all_runs = client.search_runs(experiment_ids, max_results=50_000)
    if parents is not None and studies:  # a study given: its configurations' runs
        parents = [r for r in parents if r.info.run_id not in studies] + [
            r
            for r in all_runs
            if r.data.tags.get("mlflow.parentRunId") in studies
            and r.data.tags.get(KIND_TAG) == CONFIGURATION_KIND
        ]
    children: dict[str, dict[int, float]] = {}
    for run in all_runs:
        parent = run.data.tags.get("mlflow.parentRunId")
        accuracy = run.data.metrics.get("test_accuracy")
        if parent and run.info.status == "FINISHED" and accuracy is not None:
            children.setdefault(parent, {})[int(run.data.tags.get("fold", 0))] = accuracy
    if parents is None:
        parents = [
            run
            for run in all_runs
            if (
                "mlflow.parentRunId" not in run.data.tags
                or run.data.tags.get(KIND_TAG) == CONFIGURATION_KIND
            )
            and run.data.tags.get(KIND_TAG) not in (COMPARISON_KIND, STUDY_KIND)
        ]
    return [
        RunAccuracies(
            run_id=run.info.run_id,
            model=run.data.params.get("train.model", "?"),
            augmentation=_augmentation(run.data.params),
            fold_accuracies=children.get(run.info.run_id, {}),
            name=run.info.run_name or "",
            per_class=per_class_metrics(run.data.metrics),
        )
        for run in parents
    ]


def per_class_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``{class: accuracy}`` in label order from a parent run's ``accuracy_class_<index>_<name>``
    metrics (the name as MLflow keys show it: characters it cannot store read ``_``)."""
    found = []
    for key, value in metrics.items():
        match = CLASS_METRIC.fullmatch(key)
        if match:
            found.append((int(match.group(1)), match.group(2), float(value)))
    return {name: value for _, name, value in sorted(found)}


def compare(
    tracking_uri: str,
    run_ids: list[str] | None = None,
    *,
    experiment: str = "urbansound",
    out_dir: str | os.PathLike | None = None,
    log: bool = True,
    html: str | os.PathLike | None = None,
) -> tuple[str, Path | None, str | None]:
    """Print-ready table, box plot path and the MLflow run the comparison was logged to.

    The table and plot are written to ``out_dir`` (a temporary folder when None, then
    only kept in MLflow); with ``html``, the runs' per-class accuracies side by side as
    one self-contained page there (also logged, as :data:`HTML_ARTIFACT`).  An ``html``
    file that exists and is not a page urbansound wrote is refused before anything is read.
    """
    if html is not None:
        check_outputs(
            [("--html", html)],
            ours=is_report,
            command="urbansound compare",
            hint="give another --html",
        )
    runs = [r for r in load_runs(tracking_uri, run_ids, experiment) if r.fold_accuracies]
    if not runs:
        raise ConfigError(
            f"{tracking_uri}: no finished pipeline run with fold accuracies "
            f"{'among ' + ', '.join(run_ids) if run_ids else 'in ' + repr(experiment)}"
        )
    rows = comparison_rows(runs)
    table = format_comparison(rows)
    keep = Path(out_dir) if out_dir else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        if keep is not None:  # only our three files; never into a folder of someone else's
            claim_folder(folder, "compare", legacy=_legacy_compare)
            record(folder, [BOXPLOT_FILE, TABLE_FILE, ROWS_FILE])
        folder.mkdir(parents=True, exist_ok=True)
        plot_fold_boxes(runs, folder / BOXPLOT_FILE)
        (folder / TABLE_FILE).write_text(table + "\n")
        (folder / ROWS_FILE).write_text(json.dumps(rows, indent=2))
        page = None
        if html is not None:
            Path(html).write_text(per_class_page(runs), encoding="utf-8")
            page = Path(tmp) / HTML_ARTIFACT
            page.write_bytes(Path(html).read_bytes())
        logged = _log_comparison(tracking_uri, runs, folder, experiment, page) if log else None
    return table, (keep / BOXPLOT_FILE) if keep else None, logged


def _log_comparison(
    tracking_uri: str,
    runs: list[RunAccuracies],
    folder: Path,
    experiment: str,
    page: Path | None = None,
) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(
        experiment_id,
        run_name=f"compare {len(runs)} runs",
        tags={
            KIND_TAG: COMPARISON_KIND,
            "urbansound.compared_runs": ",".join(r.run_id for r in runs),
        },
    )
    for name in (BOXPLOT_FILE, TABLE_FILE, ROWS_FILE):
        client.log_artifact(run.info.run_id, str(folder / name))
    if page is not None:
        client.log_artifact(run.info.run_id, str(page))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
