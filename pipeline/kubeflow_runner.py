"""Compile the pipeline to KFP IR YAML and submit it to a Kubeflow Pipelines cluster.

The YAML is the same pipeline the local runner executes, with each train task
requesting one ``nvidia.com/gpu``, every component running in the project's
image with CPU and memory requests and limits and retries (``ClusterOptions``),
and, when asked, PersistentVolumeClaims mounted in every task (kfp-kubernetes).
Beam options for a distributed runner travel as the ``beam_args`` pipeline
parameter (e.g. ``--runner=FlinkRunner --flink_master=...``).
"""
from __future__ import annotations

import os

from components import DEFAULT_IMAGE
from urbansound.config import Config


def compile_pipeline(path: str | os.PathLike, *, image: str = DEFAULT_IMAGE,
                     config: Config = Config(), parallelism: int = 0,
                     pvcs: list[tuple[str, str]] = (), retries: int = 2,
                     caching: bool = True) -> str:
    """Write the pipeline's IR YAML to ``path``; return the path.

    ``pvcs``: ``(claim name, mount path)`` pairs mounted in every task; with any, the
    file holds a second YAML document, the Kubernetes platform spec.  ``caching=False``
    turns kfp's cache off in every task (kfp.Client's ``enable_caching`` reaches only
    the root DAG's tasks, and ours sit inside the exit handler and the fold loop).
    """
    from kfp import compiler

    from pipeline.pipeline import ClusterOptions, create_pipeline

    cluster = ClusterOptions(pvcs=tuple((str(n), str(m)) for n, m in pvcs), retries=retries,
                             caching=caching)
    compiler.Compiler().compile(create_pipeline(image=image, gpu=True, parallelism=parallelism,
                                                config=config, cluster=cluster),
                                os.fspath(path))
    return os.fspath(path)


def parse_pvc(text: str) -> tuple[str, str]:
    """``NAME:/mount/path`` as ``(NAME, /mount/path)``; ValueError naming what is wrong.

    NAME is a Kubernetes object name (lower-case letters, digits, ``-`` and ``.``,
    at most 253 characters); the path is absolute.
    """
    import re

    name, sep, mount_path = text.partition(":")
    if not sep or not name or not mount_path:
        raise ValueError(f"--pvc {text!r}: expected NAME:/mount/path")
    if len(name) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
        raise ValueError(f"--pvc {text!r}: {name!r} is not a Kubernetes claim name "
                         f"(lower-case letters, digits, '-', '.')")
    if not mount_path.startswith("/") or "/../" in f"{mount_path}/":
        raise ValueError(f"--pvc {text!r}: the mount path must be absolute")
    return name, mount_path.rstrip("/") or "/"


def check_data_on_volumes(data_root: str, pvcs: list[tuple[str, str]]) -> None:
    """With claims mounted, a plain path in ``--data`` must lie under one of their
    mount paths (the pods see nothing else of it); ConfigError otherwise.  A bucket URI
    (``gs://``, ``s3://``) is read through Beam's FileSystems and needs no volume."""
    import posixpath

    from urbansound.config import ConfigError

    if not pvcs or "://" in data_root:
        return
    path = posixpath.normpath(data_root)
    if not any(path == m or path.startswith(m.rstrip("/") + "/") for _, m in pvcs):
        mounts = ", ".join(f"{n}:{m}" for n, m in pvcs)
        raise ConfigError(f"--data {data_root}: not under a mounted claim ({mounts}); the "
                          f"pods would not see it")


def cache_key(*, data_version: str = "", local_fingerprint: str = "") -> str:
    """The ``dataset_fingerprint`` pipeline argument of a submitted run: it is among
    ingest's inputs, so kfp's cache serves ingest (and everything after it) only for
    the same value.  ``data_version`` is the user's name for the data's state;
    ``local_fingerprint`` the listing's fingerprint (names, folds, classes, sizes) of
    ``--data`` when it is also readable here.  Empty when neither is known."""
    parts = [f"version={data_version}" if data_version else "",
             f"listing={local_fingerprint}" if local_fingerprint else ""]
    return ";".join(p for p in parts if p)


def submit(host: str, *, data_root: str, package_path: str, experiment: str = "urbansound",
           pipeline_root: str | None = None, config: Config = Config(),
           test_folds: list[int] = (), tracking_uri: str = "", beam_args: list[str] = (),
           strict: bool = False, run_name: str | None = None, dataset_fingerprint: str = "",
           client=None):
    """Submit a compiled package as a run; return kfp's RunPipelineResult.

    ``dataset_fingerprint`` keys kfp's cache of ingest (see :func:`cache_key`).
    ``client`` may be given (tests pass one whose HTTP calls are intercepted).
    """
    import kfp

    client = client or kfp.Client(host=host)
    return client.create_run_from_pipeline_package(
        package_path,
        arguments={"data_root": data_root, "config_json": config.to_json(),
                   "test_folds": list(test_folds), "tracking_uri": tracking_uri,
                   "beam_args": list(beam_args), "strict": strict,
                   "dataset_fingerprint": dataset_fingerprint},
        run_name=run_name, experiment_name=experiment, pipeline_root=pipeline_root)
