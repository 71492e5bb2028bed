"""The one pipeline definition: ingest → features → ParallelFor(train per test fold) → evaluate.

``create_pipeline`` only wires components; where it runs (kfp's local runner or
a Kubeflow cluster) is decided by :mod:`pipeline.local_runner` and
:mod:`pipeline.kubeflow_runner`.  Every default comes from
:class:`urbansound.config.Config`.
"""
# No `from __future__ import annotations`: kfp reads the pipeline's parameter types at runtime.
from typing import List

from components import DEFAULT_IMAGE, build_components
from urbansound.config import Config

PIPELINE_NAME = "urbansound"


def create_pipeline(*, image: str = DEFAULT_IMAGE, gpu: bool = True, parallelism: int = 0,
                    config: Config = Config()):
    """Build the KFP pipeline function.

    Parameters
    ----------
    image : container image of every component on a cluster.
    gpu : request one ``nvidia.com/gpu`` for each train task (ignored by the local runner).
    parallelism : at most this many folds train at once (0: no limit).
    config : defaults of the ``config_json`` pipeline parameter.
    """
    from kfp import dsl

    c = build_components(image)
    default_config = config.to_json()

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="UrbanSound8K: log-mel CNN per official test fold, tracked in MLflow")
    def urbansound_pipeline(data_root: str, config_json: str = default_config,
                            test_folds: List[int] = [], strict: bool = False,
                            beam_args: List[str] = [], tracking_uri: str = "",
                            run_key: str = "", dataset_fingerprint: str = ""):
        job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        start = c.start_run(config_json=config_json, data_root=data_root,
                            tracking_uri=tracking_uri, run_key=run_key, job_id=job_id)
        # Never cached: a rerun must (re)open its MLflow run and close it at the end.
        start.set_display_name("mlflow-start").set_caching_options(False)
        finish = c.finish_run(tracking_uri=tracking_uri, run_key=run_key, job_id=job_id)
        finish.set_display_name("mlflow-finish").set_caching_options(False)
        with dsl.ExitHandler(finish, name="tracked-run"):
            # dataset_fingerprint (names, sizes) is in ingest's inputs so that a changed
            # dataset at the same path is not served from the cache.
            ingest = c.ingest(data_root=data_root, config_json=config_json, test_folds=test_folds,
                              strict=strict, tracking_uri=tracking_uri,
                              parent_run_id=start.output, dataset_fingerprint=dataset_fingerprint)
            features = c.features(waveforms=ingest.outputs["waveforms"], config_json=config_json,
                                  beam_args=beam_args, test_folds=ingest.outputs["Output"])
            with dsl.ParallelFor(ingest.outputs["Output"], parallelism=parallelism,
                                 name="folds") as fold:
                train = c.train(features=features.outputs["features"], test_fold=fold,
                                config_json=config_json, tracking_uri=tracking_uri,
                                parent_run_id=start.output)
                if gpu:
                    train.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
                train.set_memory_limit("16G").set_cpu_limit("4")
            c.evaluate(fold_results=dsl.Collected(train.outputs["fold_result"]),
                       waveforms=ingest.outputs["waveforms"], tracking_uri=tracking_uri,
                       parent_run_id=start.output)

    return urbansound_pipeline
