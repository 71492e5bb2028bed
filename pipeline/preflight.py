"""Checks ``urbansound run`` makes before it writes anything or starts any task.

Each failure is one line naming the path, URI or option and the reason (exit
code 2): a wrong path, a dataset with too few folds, an unknown Beam runner or an
unusable tracking store fails in seconds, not inside a task minutes later.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from urbansound.config import ConfigError
from urbansound.listing import DatasetError

STORAGE_TEXT = re.compile(
    r"(no space left|disk quota exceeded|read-only file system|"
    r"database or disk is full)",
    re.IGNORECASE,
)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_locations(out: Path, data: Path | None, tracking_uri: str) -> None:
    """Nothing the run writes may land inside the dataset folder: not the output
    folder, not a sqlite tracking store (nor its ``mlartifacts/`` beside it)."""
    from urbansound.components.tracking_store import store_folder

    out_real = Path(out).resolve()
    if out_real.exists() and not out_real.is_dir():
        raise ConfigError(f"{out}: not a folder (--out must name a folder)")
    if data is None:
        return
    data_real = Path(data).resolve()
    if _inside(out_real, data_real):
        raise ConfigError(
            f"{out}: output folder is inside the dataset folder {data}; choose a "
            f"folder outside it (--out)"
        )
    store = store_folder(tracking_uri)
    if store is not None and _inside(store, data_real):
        raise ConfigError(
            f"{tracking_uri}: the tracking store would be written inside the "
            f"dataset folder {data}; choose another --tracking-uri"
        )


def check_dataset(data: Path, test_folds: list[int], validation: str = "fold", data_config=None):
    """List the dataset (read only) in the layout ``data_config`` names (a
    :class:`urbansound.config.DataConfig`; default: detected) and check its folds
    (``validation``: the training protocol, which sets how many folds are needed:
    :func:`urbansound.folds.min_folds`).

    Returns
    -------
    clips, rejections, folds present

    Raises
    ------
    DatasetError
        no usable clip, only one class, too few folds, or a requested test fold with no
        clips.
    """
    from urbansound.folds import min_folds
    from urbansound.layouts import list_clips

    clips, rejections = list_clips(data, data_config)
    if not clips:
        raise DatasetError(
            f"{data}: no usable clip ({len(rejections)} rows/files rejected; "
            f"first: {rejections[0].file}: {rejections[0].reason})"
            if rejections
            else f"{data}: the metadata CSV lists no clips"
        )
    classes = sorted({c.class_name for c in clips})
    if len(classes) < 2:  # every prediction would be right: 100 % for learning nothing
        raise DatasetError(
            f"{data}: only one class ({classes[0]!r}) among its {len(clips)} "
            f"usable clips; a classifier needs at least 2 classes"
        )
    present = sorted({int(c.fold) for c in clips})
    needed = min_folds(validation)
    if len(present) < needed:
        roles = (
            "a test, a validation and a training fold"
            if validation == "fold"
            else "a test and a training fold"
        )
        raise DatasetError(
            f"{data}: need at least {needed} folds with clips ({roles}); folds present: {present}"
        )
    missing = [int(f) for f in test_folds if int(f) not in present]
    if missing:
        raise DatasetError(
            f"{data}: test fold(s) {missing} have no clips; folds present: {present} (--folds)"
        )
    return clips, rejections, present


def check_beam_args(beam_args: list[str], *, local: bool) -> None:
    """Parse Beam options as Beam will, and check the runner exists.

    ``local``: the runner must be importable here and every option known to Beam
    (an unknown option would be silently dropped).  For a cluster (``submit``) a
    runner whose module is missing here is accepted: the image may have it.
    """
    if not beam_args:
        return
    for arg in beam_args:
        if not arg.startswith("--"):
            raise ConfigError(
                f"--beam-arg {arg!r}: not a Beam option (they look like --runner=FlinkRunner)"
            )
    import logging

    logging.disable(logging.WARNING)  # Beam's import warns about optional GCP libraries
    try:
        from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
        from apache_beam.runners.runner import create_runner
    finally:
        logging.disable(logging.NOTSET)

    def parse(args):
        options = PipelineOptions(list(args))
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                return options, options.get_all_options(retain_unknown_options=True)
        except SystemExit:
            lines = [ln for ln in stderr.getvalue().splitlines() if "error:" in ln]
            reason = lines[-1].split("error:", 1)[1].strip() if lines else "cannot be parsed"
            raise ConfigError(f"--beam-arg: {reason}") from None

    options, _ = parse(beam_args)
    runner = options.view_as(StandardOptions).runner
    if runner:
        try:
            create_runner(runner)  # also registers the runner's own options
        except ValueError:
            raise ConfigError(
                f"--beam-arg=--runner={runner}: unknown Beam runner (e.g. "
                f"FnApiRunner, DirectRunner, DataflowRunner, FlinkRunner, "
                f"SparkRunner, or a full class path)"
            ) from None
        except ImportError as exc:
            if local:
                raise ConfigError(
                    f"--beam-arg=--runner={runner}: cannot be loaded here ({exc})"
                ) from None
        except Exception as exc:  # a runner class whose constructor needs more
            if local:
                raise ConfigError(f"--beam-arg=--runner={runner}: {exc}") from None
    if local:
        options, retained = parse(beam_args)
        with contextlib.redirect_stderr(io.StringIO()):
            known = set(PipelineOptions([]).get_all_options(drop_default=False))
        unknown = sorted(set(retained) - known)
        if unknown:
            raise ConfigError(
                f"--beam-arg: unknown Beam option(s) {', '.join('--' + u for u in unknown)}"
            )


_DASK_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+):(\d{1,5})$")


def parse_dask_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of a scheduler address ``tcp://HOST:PORT`` (or ``tls://``);
    ConfigError naming the address otherwise."""
    m = _DASK_ADDRESS.match(address)
    if not m:
        raise ConfigError(
            f"--dask-address {address}: expected tcp://HOST:PORT (the scheduler "
            f"of your Dask cluster)"
        )
    return m.group(2).strip("[]"), int(m.group(3))


def check_dask_address(address: str, timeout_s: float = 10.0) -> int:
    """A Dask scheduler answers at ``address`` (``tcp://HOST:PORT``); returns how many
    workers it has.

    Raises
    ------
    ConfigError
        the address is malformed, nothing answers there, or what answers is not a Dask
        scheduler (or ``dask[distributed]`` is not installed).
    """
    import socket

    host, port = parse_dask_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or ("timed out" if isinstance(exc, TimeoutError) else str(exc))
        raise ConfigError(
            f"--dask-address {address}: no Dask scheduler answers ({reason})"
        ) from None
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            "--beam-runner dask: dask[distributed] is not installed here "
            "(pip install -r requirements.txt)"
        ) from None
    try:
        with Client(address, timeout=timeout_s) as client:
            return len(client.nthreads())
    except Exception as exc:
        raise ConfigError(
            f"--dask-address {address}: does not answer as a Dask scheduler "
            f"({type(exc).__name__}: {exc})"
        ) from None


def check_runner(runner: str, image: str | None, *, probe: bool = True):
    """``--runner docker``: a Docker API answers and has the image (default: docker/build.sh's
    CPU image), and (``probe``) a container of it starts; returns
    :class:`urbansound.pipeline.containers.DockerSetup`, None for the subprocess runner.
    ConfigError, one line naming what is missing and how to fix it."""
    if runner != "docker":
        if image is not None:
            raise ConfigError(
                "--image: only with --runner docker (the subprocess runner runs the tasks "
                "in this environment)"
            )
        return None
    from urbansound.pipeline.containers import DockerSetupError, check_docker, default_docker_image
    from urbansound.pipeline.kubeflow_runner import check_image

    image = image or default_docker_image()
    check_image(image)
    try:
        return check_docker(image, probe=probe)
    except DockerSetupError as exc:
        raise ConfigError(str(exc)) from None


def check_tracking(tracking_uri: str) -> None:
    """The store can be written (a server answers) — see urbansound.components.tracking_store.check_store."""
    from urbansound.components.tracking_store import check_store

    check_store(tracking_uri)


def full_filesystem(paths, min_free_bytes: int = 1 << 20) -> str | None:
    """``"<path>: No space left on device (N KiB free)"`` for the first of ``paths``
    whose file system is (nearly) full, else None."""
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            st = os.statvfs(path)
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        if free < min_free_bytes:
            return f"{path}: No space left on device ({free // 1024} KiB free)"
    return None
