"""Compile the pipeline to KFP IR YAML and submit it to a Kubeflow Pipelines cluster.

The YAML is the same pipeline the local runner executes, with each train task
requesting one ``nvidia.com/gpu`` and every component running in the project's
image.  Beam options for a distributed runner travel as the ``beam_args``
pipeline parameter (e.g. ``--runner=FlinkRunner --flink_master=...``).
"""
from __future__ import annotations

import os

from components import DEFAULT_IMAGE
from urbansound.config import Config


def compile_pipeline(path: str | os.PathLike, *, image: str = DEFAULT_IMAGE,
                     config: Config = Config(), parallelism: int = 0) -> str:
    """Write the pipeline's IR YAML to ``path``; return the path."""
    from kfp import compiler

    from pipeline.pipeline import create_pipeline

    compiler.Compiler().compile(create_pipeline(image=image, gpu=True, parallelism=parallelism,
                                                config=config), os.fspath(path))
    return os.fspath(path)


def submit(host: str, *, data_root: str, package_path: str, experiment: str = "urbansound",
           pipeline_root: str | None = None, config: Config = Config(),
           test_folds: list[int] = (), tracking_uri: str = "", beam_args: list[str] = (),
           strict: bool = False, run_name: str | None = None, client=None):
    """Submit a compiled package as a run; return kfp's RunPipelineResult.

    ``client`` may be given (tests pass one whose HTTP calls are intercepted).
    """
    import kfp

    client = client or kfp.Client(host=host)
    return client.create_run_from_pipeline_package(
        package_path,
        arguments={"data_root": data_root, "config_json": config.to_json(),
                   "test_folds": list(test_folds), "tracking_uri": tracking_uri,
                   "beam_args": list(beam_args), "strict": strict},
        run_name=run_name, experiment_name=experiment, pipeline_root=pipeline_root)
