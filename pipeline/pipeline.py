"""The one pipeline definition: ingest → features → ParallelFor(train per test fold) → evaluate.

``create_pipeline`` only wires components; where it runs (kfp's local runner or
a Kubeflow cluster) is decided by :mod:`urbansound.pipeline.local_runner` and
:mod:`urbansound.pipeline.kubeflow_runner`.  Every default comes from
:class:`urbansound.config.Config`.
"""

# No `from __future__ import annotations`: kfp reads the pipeline's parameter types at runtime.
import functools
from dataclasses import dataclass, field

from urbansound.components import DEFAULT_IMAGE, build_components
from urbansound.config import Config

PIPELINE_NAME = "urbansound"


@dataclass(frozen=True)
class Resources:
    """Kubernetes requests and limits of one task (CPU in cores, memory with a unit)."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


# Per task, for the full UrbanSound8K (8,732 clips; 4 s at 22,050 Hz is 353 KB of float32
# per clip). ingest decodes and resamples, features computes log-mels (and deformations)
# with one Beam worker per core: both CPU-bound. train holds its input pipeline on the CPU
# beside the GPU. The MLflow tasks only talk to the tracking server.
TASK_RESOURCES: dict[str, Resources] = {
    "mlflow": Resources("500m", "1", "1Gi", "2Gi"),
    "ingest": Resources("4", "8", "8Gi", "16Gi"),
    "features": Resources("4", "8", "8Gi", "16Gi"),
    "train": Resources("4", "8", "16Gi", "24Gi"),
    "evaluate": Resources("1", "2", "4Gi", "8Gi"),
}


MAX_RETRIES = 5


@dataclass(frozen=True)
class ClusterOptions:
    """What only a cluster run sets: requests and limits per task, retries of a failed
    task, PersistentVolumeClaims mounted in every task (``(claim name, mount path)``), and
    whether kfp's cache may serve tasks.
    The local runner gets none of it: there a retry would only repeat a user's error.

    No retries by default. kfp's retry policy (``set_retry``) is a count and a backoff,
    with no condition on the exit code, and on Argo it becomes a ``retryStrategy`` with
    Argo's default policy, which retries a container that exits non-zero: a task that
    stops on bad input (exit code 2, :mod:`urbansound.components.errors`) would fail
    again, identically, after each wait. ``retries`` (``compile``/``submit --retries``)
    is for users whose failures are transient (a tracking server briefly away)."""

    resources: dict[str, Resources] = field(default_factory=lambda: dict(TASK_RESOURCES))
    retries: int = 0
    retry_backoff: str = "60s"  # first wait; doubled each time, at most...
    retry_backoff_max: str = "600s"  # ...this long in all
    pvcs: tuple[tuple[str, str], ...] = ()
    caching: bool = True  # False: every task runs again (--no-cache)


SOURCE_DIGEST_ENV = "URBANSOUND_SOURCE_DIGEST"
"""Every task's environment holds the digest of the package's code under this name."""


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    from urbansound.pipeline.containers import source_digest

    return source_digest()


def _for_cluster(task, kind: str, cluster: ClusterOptions | None):
    """``task`` keyed on the package's code, then (on a cluster) with the cluster's
    requests, limits, retries and volumes for its ``kind``."""
    # kfp's cache keys on a task's command, inputs and environment, not on the library code
    # its component imports: with that code's digest in the environment, an upgraded
    # urbansound is another cache key, and another run key (the compiled pipeline changes)
    task.set_env_variable(SOURCE_DIGEST_ENV, _source_digest())
    if cluster is None:
        return task
    r = cluster.resources[kind]
    task.set_cpu_request(r.cpu_request).set_cpu_limit(r.cpu_limit)
    task.set_memory_request(r.memory_request).set_memory_limit(r.memory_limit)
    if cluster.retries:
        task.set_retry(
            num_retries=cluster.retries,
            backoff_duration=cluster.retry_backoff,
            backoff_factor=2.0,
            backoff_max_duration=cluster.retry_backoff_max,
        )
    if not cluster.caching:
        task.set_caching_options(False)
    if cluster.pvcs:
        from kfp import kubernetes

        for name, mount_path in cluster.pvcs:
            kubernetes.mount_pvc(task, pvc_name=name, mount_path=mount_path)
    return task


# The tasks a run and a study wire the same way (pipeline/study.py uses them too).


def _finish_task(c, cluster, *, tracking_uri, run_key, job_id):
    """The MLflow finish task of an exit handler: never cached, since a rerun must close the
    run it (re)opened."""
    finish = c.finish_run(tracking_uri=tracking_uri, run_key=run_key, job_id=job_id)
    finish.set_display_name("mlflow-finish").set_caching_options(False)
    return _for_cluster(finish, "mlflow", cluster)


def _ingest_task(c, cluster, **inputs):
    """Ingest with ``inputs`` (dataset_fingerprint among them, so that a changed dataset at
    the same path is not served from the cache)."""
    return _for_cluster(c.ingest(**inputs), "ingest", cluster)


def _features_task(c, cluster, ingest, *, config_json, beam_args):
    """The features of ``ingest``'s waveforms and test folds under ``config_json``."""
    task = c.features(
        waveforms=ingest.outputs["waveforms"],
        config_json=config_json,
        beam_args=beam_args,
        test_folds=ingest.outputs["Output"],
    )
    return _for_cluster(task, "features", cluster)


def _train_task(c, cluster, *, gpu: bool, **inputs):
    """One fold's training (inside a ParallelFor), one GPU requested when ``gpu``."""
    train = c.train(**inputs)
    if gpu:
        train.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    return _for_cluster(train, "train", cluster)


def create_pipeline(
    *,
    image: str = DEFAULT_IMAGE,
    gpu: bool = True,
    parallelism: int = 0,
    config: Config = Config(),
    cluster: ClusterOptions | None = None,
):
    """Build the KFP pipeline function.

    Parameters
    ----------
    image : container image of every component on a cluster.
    gpu : request one ``nvidia.com/gpu`` for each train task (ignored by the local runner).
    parallelism : at most this many folds train at once (0: no limit).
    config : defaults of the ``config_json`` pipeline parameter.
    cluster : requests, limits, retries and volume mounts of every task (None: the local
        runner's pipeline, which has none of them).
    """
    from kfp import dsl

    c = build_components(image)
    default_config = config.to_json()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="UrbanSound8K: log-mel CNN per official test fold, tracked in MLflow",
    )
    def urbansound_pipeline(
        data_root: str,
        config_json: str = default_config,
        # KFP reads a pipeline parameter's default from the signature: a literal it must be
        test_folds: list[int] = [],  # noqa: B006
        strict: bool = False,
        beam_args: list[str] = [],  # noqa: B006
        tracking_uri: str = "",
        run_key: str = "",
        dataset_fingerprint: str = "",
        digest_cache: str = "",
    ):
        job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        start = c.start_run(
            config_json=config_json,
            data_root=data_root,
            tracking_uri=tracking_uri,
            run_key=run_key,
            job_id=job_id,
        )
        # Never cached: a rerun must (re)open its MLflow run and close it at the end.
        start.set_display_name("mlflow-start").set_caching_options(False)
        _for_cluster(start, "mlflow", cluster)
        finish = _finish_task(c, cluster, tracking_uri=tracking_uri, run_key=run_key, job_id=job_id)
        with dsl.ExitHandler(finish, name="tracked-run"):
            ingest = _ingest_task(
                c,
                cluster,
                data_root=data_root,
                config_json=config_json,
                test_folds=test_folds,
                strict=strict,
                tracking_uri=tracking_uri,
                parent_run_id=start.output,
                dataset_fingerprint=dataset_fingerprint,
                digest_cache=digest_cache,
            )
            features = _features_task(
                c, cluster, ingest, config_json=config_json, beam_args=beam_args
            )
            with dsl.ParallelFor(
                ingest.outputs["Output"], parallelism=parallelism, name="folds"
            ) as fold:
                train = _train_task(
                    c,
                    cluster,
                    gpu=gpu,
                    features=features.outputs["features"],
                    test_fold=fold,
                    config_json=config_json,
                    tracking_uri=tracking_uri,
                    parent_run_id=start.output,
                )
            evaluate = c.evaluate(
                fold_results=dsl.Collected(train.outputs["fold_result"]),
                waveforms=ingest.outputs["waveforms"],
                config_json=config_json,
                tracking_uri=tracking_uri,
                parent_run_id=start.output,
            )
            _for_cluster(evaluate, "evaluate", cluster)

    return urbansound_pipeline
