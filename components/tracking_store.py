"""The MLflow tracking store: which URI, whether it can be used, and what happens when it fails.

An empty tracking URI means ``MLFLOW_TRACKING_URI`` from the environment, and
tracking is off where that is unset too (KFP's own metrics still carry the numbers).

Failures of the store are of two kinds.  A store that cannot be written (disk
full, read-only) stops the task with one line naming the path (exit code 2): the
same command resumes once space is freed.  A tracking *server* that stops
answering mid-run is reported once (a warning), and the run carries on without
MLflow: its own outputs are complete.  :func:`check_store` tells both apart before
a run starts, in seconds; :func:`guarded` / :func:`tolerant` apply the same rules to
every call a task makes (see :mod:`urbansound.components.runs`, :mod:`urbansound.components.fold_logging`).

:func:`client` is the one way to an ``MlflowClient``: it creates a new sqlite store
under a file lock.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from urbansound.config import ConfigError

PROBE_TIMEOUT_S = 5
"""How long :func:`check_store` waits for a tracking server before calling it unreachable."""
TASK_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
"""MLflow's HTTP settings for the tasks of a local run (its defaults retry for ≈ 4 minutes
per call): a server that goes away costs seconds, not minutes.  Values already in the
environment win."""
UNREACHABLE_FILE_ENV = "URBANSOUND_TRACKING_UNREACHABLE_FILE"
"""Where a task notes that the tracking server stopped answering, so that the next
tasks of the same run skip MLflow instead of waiting for it again, and the
warning is printed once per run (set by the local runner)."""
_SCHEMES = {"sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks"}


class TrackingStoreError(ConfigError):
    """The tracking URI names a store that cannot be used (the message says which and why)."""


def resolve_uri(tracking_uri: str) -> str:
    """The URI to log to: the argument, else $MLFLOW_TRACKING_URI, else "" (off)."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :].split("?", 1)[0])
    return None


def missing_store(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store that does not exist, else None.  A
    command that only reads the store checks this first: MLflow would create an empty
    store there just by being asked."""
    db_path = sqlite_path(tracking_uri)
    return db_path if db_path is not None and not db_path.is_file() else None


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a sqlite store, ``mlartifacts/`` beside the database file (MLflow would
    otherwise put artifacts under the *current* directory of whichever process logs)."""
    db_path = sqlite_path(tracking_uri)
    if db_path is not None:
        return (db_path.parent / "mlartifacts").resolve().as_uri()
    return None


def store_folder(tracking_uri: str) -> Path | None:
    """The local folder a store writes to (database and artifacts), None if remote."""
    db_path = sqlite_path(tracking_uri)
    return db_path.resolve().parent if db_path is not None else None


def check_store(tracking_uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check that a run could log to ``tracking_uri``, in seconds.

    A sqlite store's folder must be writable and its file, if any, a database;
    a server must answer MLflow's API within ``timeout_s`` (no retries).  A new
    sqlite store is created here (with MLflow's schema).

    Raises
    ------
    TrackingStoreError
        ``"<uri>: <reason>"``, one line.
    """
    scheme = urlparse(tracking_uri).scheme.split("+", 1)[0].lower()
    if scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise TrackingStoreError(
                f"{tracking_uri}: not a tracking store URI (a plain path means MLflow's file "
                f"store, which MLflow 3 no longer supports); use sqlite:///PATH/mlflow.db or "
                f"http://HOST:PORT"
            )
    elif scheme not in _SCHEMES:
        raise TrackingStoreError(
            f"{tracking_uri}: unsupported scheme {scheme + '://'!r}; use sqlite:///PATH/mlflow.db, "
            f"http(s)://HOST:PORT or a database URI (postgresql://, mysql://, mssql://)"
        )
    if scheme == "sqlite":
        _check_sqlite_file(tracking_uri)
    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(timeout_s)))
    import logging

    import mlflow  # noqa: F401 - configures its loggers on import: quiet them after that

    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(max(level, logging.WARNING))  # "Creating initial MLflow database tables"
    try:
        client(tracking_uri).search_experiments(max_results=1)
    except Exception as exc:
        if scheme in ("http", "https") and _unreachable_error(exc):
            raise TrackingStoreError(
                f"{tracking_uri}: tracking server unreachable ({_short_reason(exc)})"
            ) from None
        described = _storage_error(exc, tracking_uri)
        raise TrackingStoreError(f"{tracking_uri}: {described or _short_reason(exc)}") from None
    finally:
        mlflow_logger.setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_sqlite_file(tracking_uri: str) -> None:
    import sqlite3

    db_path = sqlite_path(tracking_uri)
    if db_path is None or str(db_path) in ("", ":memory:"):
        raise TrackingStoreError(
            f"{tracking_uri}: an in-memory sqlite store cannot be shared by "
            f"the pipeline's tasks; use sqlite:///PATH/mlflow.db"
        )
    folder = db_path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise TrackingStoreError(f"{tracking_uri}: {existing} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise TrackingStoreError(
            f"{tracking_uri}: cannot write in {folder} ({exc.strerror or exc})"
        ) from None
    if db_path.exists() or db_path.is_symlink():
        if not db_path.is_file():
            raise TrackingStoreError(f"{tracking_uri}: {db_path} is not a file")
        try:
            with open(db_path, "rb+"):
                pass
            con = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=10)
            try:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                con.close()
        except OSError as exc:
            raise TrackingStoreError(
                f"{tracking_uri}: cannot open {db_path} for writing ({exc.strerror or exc})"
            ) from None
        except sqlite3.Error as exc:
            raise TrackingStoreError(
                f"{tracking_uri}: {db_path} is not a usable sqlite database ({exc})"
            ) from None


def _short_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno_text:
        return errno_text.group(1).strip()
    if "timed out" in text.lower():
        return f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '?')} s"
    text = re.sub(r"\s*See https?://\S+", "", text)
    return (text[:200] + "…") if len(text) > 200 else (text or type(exc).__name__)


_UNREACHABLE_TEXT = re.compile(
    r"(Max retries exceeded|Failed to establish a new connection|Connection refused|"
    r"Connection aborted|Connection reset|RemoteDisconnected|Read timed out|timed out|"
    r"Name or service not known|failed with error code 50[234])",
    re.IGNORECASE,
)


def _unreachable_error(exc: BaseException) -> bool:
    try:
        import requests

        network: tuple[type[BaseException], ...] = (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
        )
    except ImportError:  # pragma: no cover - requests comes with mlflow
        network = ()
    item: BaseException | None = exc
    seen: set[int] = set()
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        if (network and isinstance(item, network)) or _UNREACHABLE_TEXT.search(str(item)):
            return True
        item = item.__cause__ or item.__context__
    return False


def _storage_error(exc: BaseException, tracking_uri: str) -> str | None:
    from urbansound.components.errors import storage_error

    db_path = sqlite_path(tracking_uri)
    return storage_error(exc, default_path=str(db_path) if db_path else "")


_broken: set[str] = set()  # stores this process found full/unwritable: no more calls


def _unreachable_marker() -> Path | None:
    path = os.environ.get(UNREACHABLE_FILE_ENV)
    return Path(path) if path else None


def tracking_unavailable(tracking_uri: str) -> bool:
    """True once this run found the store unusable (later calls are skipped)."""
    marker = _unreachable_marker()
    return tracking_uri in _broken or bool(marker and marker.exists())


def _report_unreachable(tracking_uri: str, exc: BaseException) -> None:
    _broken.add(tracking_uri)
    marker = _unreachable_marker()
    first = True
    if marker is not None:
        try:
            with open(marker, "x") as fh:
                fh.write(f"{tracking_uri}: {_short_reason(exc)}\n")
        except FileExistsError:
            first = False
        except OSError:
            pass
    if first:
        print(
            f"warning: MLflow tracking server {tracking_uri} stopped answering "
            f"({_short_reason(exc)}); the run goes on without MLflow and keeps its own "
            f"outputs",
            file=sys.stderr,
            flush=True,
        )


def guarded(tracking_uri: str, call, default=None):
    """Run ``call()`` against the store: an unreachable server is reported once and
    ``default`` returned; a full or read-only store ends the task with one line
    (exit code 2); anything else propagates."""
    if tracking_unavailable(tracking_uri):
        return default
    try:
        return call()
    except Exception as exc:
        if urlparse(tracking_uri).scheme in ("http", "https") and _unreachable_error(exc):
            _report_unreachable(tracking_uri, exc)
            return default
        described = _storage_error(exc, tracking_uri)
        if described is None:
            raise
        _broken.add(tracking_uri)
        from urbansound.components.errors import USER_ERROR_EXIT

        print(
            f"urbansound tracking: error: cannot write {described} (MLflow store {tracking_uri})",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(USER_ERROR_EXIT) from None


def tolerant(default=None):
    """Decorator: :func:`guarded` around a function whose first argument is the URI."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(tracking_uri, *args, **kwargs):
            return guarded(tracking_uri, lambda: fn(tracking_uri, *args, **kwargs), default)

        return inner

    return wrap


_initialised: set[str] = set()


def client(tracking_uri: str):
    """An MlflowClient for the URI (also made the process's current tracking URI).

    A new sqlite store is created under an exclusive file lock: two runs starting
    at once on a fresh database would otherwise both run MLflow's schema
    migrations and one would fail ("duplicate column name").
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    if not tracking_uri.startswith("sqlite:///") or tracking_uri in _initialised:
        return MlflowClient(tracking_uri=tracking_uri)
    import fcntl

    # The store (and its schema migration) is built when the client is constructed.
    with open(str(sqlite_path(tracking_uri)) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            mlflow_client = MlflowClient(tracking_uri=tracking_uri)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _initialised.add(tracking_uri)
    return mlflow_client
