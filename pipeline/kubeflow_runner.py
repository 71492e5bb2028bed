"""Compile the pipeline to KFP IR YAML and submit it to a Kubeflow Pipelines cluster.

The YAML is the same pipeline the local runner executes, with each train task
requesting one ``nvidia.com/gpu``, every component running in the project's
image with CPU and memory requests and limits (``ClusterOptions``), and, when
asked, retries and PersistentVolumeClaims mounted in every task (kfp-kubernetes).
Beam options for a distributed runner travel as the ``beam_args`` pipeline
parameter (e.g. ``--runner=FlinkRunner --flink_master=...``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from urbansound.components import DEFAULT_IMAGE
from urbansound.config import Config, ConfigError
from urbansound.messages import quoted

if TYPE_CHECKING:
    from urbansound.pipeline.pipeline import ClusterOptions


class ClusterError(ConfigError):
    """The cluster cannot be reached or refuses the request (``"<host>: <reason>"``, one
    line, exit code 2)."""


# Docker's reference grammar (distribution/reference): [registry[:port]/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:localhost|\[[0-9A-Fa-f:]+\]|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]+)?"
)
_IMAGE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+(?:[/?#]\S*)?")
_LINE_LIMIT = 200


def _one_line(option: str, value: str, limit: int = _LINE_LIMIT) -> None:
    """ConfigError unless ``value`` is one line of printable text of at most ``limit``
    characters (a newline in a pipeline argument or a run name breaks what reads it)."""
    if any(not ch.isprintable() for ch in value):
        raise ConfigError(
            f"{option} {quoted(value)}: has a control character (a newline, "
            f"a tab); give one line of printable text"
        )
    if len(value) > limit:
        raise ConfigError(f"{option} {quoted(value)}: longer than {limit} characters")


def check_image(image: str) -> None:
    """``image`` is a container image reference ``[registry[:port]/]name[:tag][@digest]``
    (lower-case name, no spaces); ConfigError naming it otherwise."""
    _one_line("--image", image, 255)
    if not _IMAGE.fullmatch(image):
        raise ConfigError(
            f"--image {quoted(image)}: not an image reference "
            f"([registry[:port]/]name[:tag][@sha256:digest], lower-case name, "
            f"no spaces; e.g. ghcr.io/team/urbansound:1.0)"
        )


def check_submit_args(
    *,
    host: str,
    image: str | None,
    data_root: str,
    data_version: str = "",
    pipeline_root: str | None = None,
    experiment: str = "urbansound",
    tracking_uri: str = "",
) -> None:
    """Every argument of ``submit`` that is only text, checked before anything contacts
    the cluster; ConfigError (one line naming the option and the reason)."""
    _one_line("--host", host)
    if not re.fullmatch(r"https?://[^\s/?#]+(?:/\S*)?", host):
        raise ConfigError(
            f"--host {quoted(host)}: expected the KFP API endpoint as an "
            f"http:// or https:// URL, e.g. http://localhost:8080"
        )
    if image is not None:
        check_image(image)
    _one_line("--data", data_root, 4096)
    if not data_root.strip():
        raise ConfigError("--data: empty")
    _one_line("--data-version", data_version)
    _one_line("--experiment", experiment)
    if not experiment.strip():
        raise ConfigError("--experiment: empty; give the KFP experiment's name")
    if pipeline_root is not None:
        _one_line("--pipeline-root", pipeline_root, 4096)
        if not _URI.fullmatch(pipeline_root):
            raise ConfigError(
                f"--pipeline-root {quoted(pipeline_root)}: expected a URI the "
                f"cluster writes to, e.g. gs://bucket/urbansound, "
                f"s3://bucket/urbansound, minio://mlpipeline/v2/artifacts"
            )
    if tracking_uri:
        _one_line("--tracking-uri", tracking_uri, 4096)
        if not _URI.fullmatch(tracking_uri):
            raise ConfigError(
                f"--tracking-uri {quoted(tracking_uri)}: expected a URI the "
                f"pods reach, e.g. http://mlflow.mlflow:5000"
            )


def connection_error(host: str, exc: BaseException) -> str | None:
    """``"<host>: <reason>"`` for a failure to reach or use the KFP API (refused, no such
    host, a timeout, TLS, 401/403/404 ...), None for anything else."""
    import urllib3.exceptions

    reason = None
    status = getattr(exc, "status", None)
    if type(exc).__name__ == "ApiException" and status is not None:
        hint = {
            401: "not authenticated: this client sends no credentials",
            403: "forbidden: the cluster refuses this client",
            404: "no KFP API at this address (is it the pipelines endpoint?)",
        }.get(status, "")
        reason = f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip() + (
            f": {hint}" if hint else ""
        )
    elif isinstance(exc, urllib3.exceptions.MaxRetryError):
        cause = exc.reason or exc
        text = str(cause)
        if "NameResolution" in type(cause).__name__ or any(
            words in text
            for words in (
                "Name or service not known",
                "nodename nor servname",
                "Temporary failure in name",
            )
        ):
            reason = "the host name does not resolve"
        elif "refused" in text.lower():
            reason = "connection refused (is the KFP API there, e.g. kubectl port-forward?)"
        elif isinstance(cause, urllib3.exceptions.SSLError):
            reason = f"TLS failed ({_short(cause)})"
        elif isinstance(cause, (urllib3.exceptions.TimeoutError, TimeoutError)):
            reason = "timed out"
        else:
            reason = _short(cause)
    elif isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        reason = _short(exc)
    else:
        try:
            import requests

            if isinstance(exc, requests.exceptions.RequestException):
                reason = _short(exc)
        except ImportError:  # pragma: no cover - kfp brings requests
            pass
    return f"{host}: cannot submit ({reason})" if reason else None


def _single_probe_client(kfp: Any):
    """kfp.Client asking /healthz once: kfp's own retries an HTTP refusal (401, 403, 404)
    five times, 5 s apart, logging a traceback each time, before a TimeoutError that no
    longer says why."""

    class Client(kfp.Client):
        def get_kfp_healthz(self, sleep_duration: int = 5):
            return self._healthz_api.healthz_service_get_healthz()

    return Client


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160] + ("…" if len(text) > 160 else "")


def compile_pipeline(
    path: str | os.PathLike,
    *,
    image: str = DEFAULT_IMAGE,
    config: Config = Config(),
    parallelism: int = 0,
    cluster: ClusterOptions | None = None,
) -> str:
    """Write the pipeline's IR YAML to ``path``; return the path.

    ``cluster`` (:class:`~urbansound.pipeline.pipeline.ClusterOptions`, the same object a
    study compiles with): PersistentVolumeClaims mounted in every task (with any, the file
    holds a second YAML document, the Kubernetes platform spec); ``caching=False`` turns
    kfp's cache off in every task (kfp.Client's ``enable_caching`` reaches only the root
    DAG's tasks, and ours sit inside the exit handler and the fold loop); ``retries``: how
    many times kfp retries a failed task (60 s, then 120 s, … at most 600 s).  None: its
    defaults, no claims, the cache on and no retries (kfp cannot spare a user's error,
    exit code 2).
    """
    from kfp import compiler

    from urbansound.pipeline.pipeline import ClusterOptions, create_pipeline

    compiler.Compiler().compile(
        create_pipeline(
            image=image,
            gpu=True,
            parallelism=parallelism,
            config=config,
            cluster=cluster or ClusterOptions(),
        ),
        os.fspath(path),
    )
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
        raise ValueError(
            f"--pvc {text!r}: {name!r} is not a Kubernetes claim name "
            f"(lower-case letters, digits, '-', '.')"
        )
    if any(not ch.isprintable() for ch in mount_path):
        raise ValueError(f"--pvc {text!r}: the mount path has a control character")
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
        raise ConfigError(
            f"--data {data_root}: not under a mounted claim ({mounts}); the pods would not see it"
        )


def cache_key(*, data_version: str = "", local_fingerprint: str = "") -> str:
    """The ``dataset_fingerprint`` pipeline argument of a submitted run: it is among
    ingest's inputs, so kfp's cache serves ingest (and everything after it) only for
    the same value.  ``data_version`` is the user's name for the data's state;
    ``local_fingerprint`` the fingerprint (listing and every clip's content) of
    ``--data`` when it is also readable here.  Empty when neither is known."""
    parts = [
        f"version={data_version}" if data_version else "",
        f"listing={local_fingerprint}" if local_fingerprint else "",
    ]
    return ";".join(p for p in parts if p)


def submit(
    host: str,
    *,
    data_root: str,
    package_path: str,
    experiment: str = "urbansound",
    pipeline_root: str | None = None,
    config: Config | None = Config(),
    test_folds: Sequence[int] = (),
    tracking_uri: str = "",
    beam_args: Sequence[str] = (),
    strict: bool = False,
    run_name: str | None = None,
    dataset_fingerprint: str = "",
    client=None,
):
    """Submit a compiled package as a run; return kfp's RunPipelineResult.

    ``dataset_fingerprint`` keys kfp's cache of ingest (see :func:`cache_key`).
    ``config`` None: a study's package (:func:`urbansound.pipeline.study.compile_study`),
    whose configurations are compiled in and which takes no ``config_json``.
    ``client`` may be given (tests pass one whose HTTP calls are intercepted).

    Raises ClusterError (one line: the host and the reason) when the cluster cannot be
    reached or refuses the request.
    """
    import warnings

    import kfp

    try:
        if client is None:
            with warnings.catch_warnings():  # "only works with KFP v2.0.0-beta.2 and later"
                warnings.simplefilter("ignore", FutureWarning)
                client = _single_probe_client(kfp)(host=host)  # asks the API's /healthz
        arguments: dict[str, Any] = {
            "data_root": data_root,
            "test_folds": list(test_folds),
            "tracking_uri": tracking_uri,
            "beam_args": list(beam_args),
            "strict": strict,
            "dataset_fingerprint": dataset_fingerprint,
        }
        if config is not None:
            arguments["config_json"] = config.to_json()
        return client.create_run_from_pipeline_package(
            package_path,
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            pipeline_root=pipeline_root,
        )
    except Exception as exc:
        line = connection_error(host, exc)
        if line is None:
            raise
        raise ClusterError(line) from None
