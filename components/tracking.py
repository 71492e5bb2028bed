"""MLflow bookkeeping, re-exported under its former name.

The code lives in four modules:

- :mod:`components.tracking_store`: which store (URI resolution), whether it can be used
  (:func:`check_store`), the client (a new sqlite store created under a lock), and the
  handling of a full store or an unreachable server;
- :mod:`components.runs`: the parent run and the fold runs (open, resume, close), their
  params, the parent's summary and ingest numbers;
- :mod:`components.fold_logging`: the per-epoch Keras callback and a fold's results;
- :mod:`components.model_logging`: the logged model, the pyfunc of :mod:`components.serving`.

New code imports those modules; this one keeps ``from components import tracking``
working for the callers that have not moved.
"""
from components.fold_logging import epoch_logger, log_fold_result  # noqa: F401
from components.runs import (EXPERIMENT, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG,  # noqa: F401
                             FOLD_TAG, RUN_KEY_TAG, SUPERSEDED_TAG, config_from_params, end_run,
                             experiment_id, find_parent_run, finish_runs, log_ingest, log_params,
                             log_summary, parent_run_name, parent_run_status, start_fold_run,
                             start_parent_run)
from components.tracking_store import (PROBE_TIMEOUT_S, TASK_HTTP_ENV,  # noqa: F401
                                       UNREACHABLE_FILE_ENV, TrackingStoreError, check_store,
                                       client, default_artifact_location, resolve_uri,
                                       sqlite_path, store_folder, tracking_unavailable)
