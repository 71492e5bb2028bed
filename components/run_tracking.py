"""KFP components that open and close the MLflow parent run of a pipeline run."""

from kfp.dsl import PipelineTaskFinalStatus


def start_run_component(
    config_json: str, data_root: str, tracking_uri: str, run_key: str, job_id: str
) -> str:
    """Create the parent run (params: the whole configuration, and in full its
    ``config.json``); return its id, or "" when tracking is off."""
    from urbansound.components import runs, tracking_store
    from urbansound.config import Config

    uri = tracking_store.resolve_uri(tracking_uri)
    if not uri:
        print("MLflow tracking is off (no tracking URI given, MLFLOW_TRACKING_URI unset)")
        return ""
    config = Config.from_json(config_json)
    params = config.flat() | {"data_root": data_root}
    run_id = runs.start_parent_run(
        uri,
        run_key or job_id,
        params,
        run_name=runs.parent_run_name(config, data_root),
        config=config,
    )
    if run_id:
        print(f"MLflow parent run {run_id} at {uri}")
    return run_id


def finish_run_component(
    tracking_uri: str, run_key: str, job_id: str, status: PipelineTaskFinalStatus
):
    """Exit handler: mark the parent run (and unfinished fold runs) FINISHED or FAILED."""
    from urbansound.components import runs, tracking_store

    uri = tracking_store.resolve_uri(tracking_uri)
    if uri:
        final = "FINISHED" if status.state == "SUCCEEDED" else "FAILED"
        parent = runs.finish_runs(uri, run_key or job_id, final)
        if parent:
            print(
                f"MLflow parent run {parent}: {final} (pipeline {status.state}"
                f"{': ' + status.error_message if status.error_message else ''})"
            )
