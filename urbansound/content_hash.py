"""Content digests of files, remembered between runs so that an unchanged tree is cheap.

A cache keyed on a dataset must change whenever any clip's sound changes.  A file's
name, size and modification time do not say that: every 4 s 44.1 kHz 16-bit WAV has the
same size, and ``touch -r`` / ``os.utime`` puts an old mtime back on a rewritten file.
So each file's bytes are hashed (SHA-256), and the digest is remembered in a JSON file
keyed by the file's path and its stat (size, mtime_ns, ctime_ns, inode, device).  The
ctime is the part a user cannot set back: writing a file's content or its times
updates it.  A rerun over an unchanged tree then only stats the files.

Racy entries (as git calls them): a file changed within :data:`RACY_NS` of the moment its
digest was taken could change again within the same timestamp tick (the kernel's file
times are coarse, a few ms), so its digest is used for this call but not remembered.

The cache file is written to a temporary name and renamed, and anything unreadable in it
(missing, corrupt, another program's JSON, another version) is ignored: it is rebuilt,
never trusted and never an error.  A file that cannot be read gets the digest
``"!<reason>"``, not remembered: the caller's decoding reports it, and the fingerprint
still changes when it becomes readable.
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

CACHE_VERSION = 1
"""Written in the cache file; a file of another version is ignored."""
ALGORITHM = "sha256"
RACY_NS = 2_000_000_000
"""A file whose mtime or ctime is this close (ns) to the time it was hashed is not
remembered (it could change again without its times changing)."""
CHUNK = 1 << 20


@dataclass
class DigestStats:
    """What one :func:`content_digests` call did: files looked up, served from the cache,
    hashed (and their bytes), and whether the cache file was usable / written."""

    files: int = 0
    cached: int = 0
    hashed: int = 0
    bytes_hashed: int = 0
    cache_loaded: bool = False
    cache_written: bool = False


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (64 hex digits) of the file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, ALGORITHM).hexdigest()


def cache_file_for(folder: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Where the digests of the files under ``root`` (a dataset folder) are remembered
    in ``folder``: one file per dataset, so two datasets sharing an output folder do not
    evict each other's entries."""
    real = os.path.realpath(os.fspath(root))
    name = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return Path(folder) / f"{name}.json"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/urbansound/content-digests`` (default ``~/.cache/...``): for
    commands without an output folder of their own (``submit``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "urbansound" / "content-digests"


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _load(cache_file: Path | None) -> tuple[dict[str, tuple[list[int], str]], bool]:
    """The remembered entries ``{path: (signature, digest)}``, and whether the file was
    one of ours; anything else is an empty cache."""
    if cache_file is None:
        return {}, False
    try:
        data = json.loads(Path(cache_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, False
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or data.get("algorithm") != ALGORITHM
        or not isinstance(data.get("entries"), dict)
    ):
        return {}, False
    entries = {}
    for path, value in data["entries"].items():
        # one malformed entry costs that file a rehash, not the whole cache
        if (
            isinstance(value, list)
            and len(value) == 6
            and all(type(v) is int for v in value[:5])
            and isinstance(value[5], str)
            and len(value[5]) == 64
        ):
            entries[path] = (value[:5], value[5])
    return entries, True


def _save(cache_file: Path, entries: dict[str, tuple[list[int], str]]) -> bool:
    """Write the cache atomically; False when it cannot be written (the cache is only
    an optimisation: the next run hashes again)."""
    data = {
        "version": CACHE_VERSION,
        "algorithm": ALGORITHM,
        "entries": {p: [*sig, digest] for p, (sig, digest) in sorted(entries.items())},
    }
    tmp = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cache_file.name}.", dir=cache_file.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, cache_file)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def _hash_one(path: str) -> tuple[str, int]:
    """(digest, bytes read); an unreadable file gives ``("!<reason>", 0)``."""
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, ALGORITHM).hexdigest()
            return digest, fh.tell()
    except OSError as exc:
        return f"!{exc.strerror or type(exc).__name__}", 0


def content_digests(
    paths: Iterable[str | os.PathLike[str]],
    *,
    cache_file: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, str], DigestStats]:
    """The SHA-256 of every file in ``paths``, from the cache where its stat is unchanged.

    Parameters
    ----------
    paths : files to digest (links are followed: the target's content and stat count).
    cache_file : the JSON file that remembers digests (None: no cache).  It is rewritten
        with the entries of ``paths`` only, so files gone from the tree leave it.
    workers : hashing threads (default: 2 per CPU, at most 8: ``hashlib`` releases the
        GIL, and a cold tree waits on the disk).
    progress : called as ``progress(done, total)`` after each file that is hashed
        (``total``: the files not served from the cache); not called when all were.

    Returns
    -------
    digests : ``{str(path): 64 hex digits, or "!<reason>" for a file that cannot be read}``.
    stats : :class:`DigestStats`.
    """
    names = [os.fspath(p) for p in paths]
    cache_file = Path(cache_file) if cache_file is not None else None
    remembered, loaded = _load(cache_file)
    stats = DigestStats(files=len(names), cache_loaded=loaded)
    started_ns = time.time_ns()
    digests: dict[str, str] = {}
    keep: dict[str, tuple[list[int], str]] = {}
    signatures: dict[str, list[int]] = {}
    missing: list[str] = []
    for path in names:
        try:
            sig = _signature(os.stat(path))
        except OSError as exc:
            digests[path] = f"!{exc.strerror or type(exc).__name__}"
            continue
        entry = remembered.get(path)
        if entry is not None and entry[0] == sig:
            digests[path] = entry[1]
            keep[path] = entry
            stats.cached += 1
        else:
            signatures[path] = sig
            missing.append(path)
    if missing:
        workers = workers or min(8, 2 * (os.cpu_count() or 1))
        with futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for done, (path, (digest, size)) in enumerate(
                zip(missing, pool.map(_hash_one, missing)), start=1
            ):
                digests[path] = digest
                stats.hashed += 1
                stats.bytes_hashed += size
                sig = signatures[path]
                # remembered only when readable, unchanged while it was read, and not racy
                if (
                    not digest.startswith("!")
                    and _unchanged(path, sig)
                    and max(sig[1], sig[2]) < started_ns - RACY_NS
                ):
                    keep[path] = (sig, digest)
                if progress is not None:
                    progress(done, len(missing))
    if cache_file is not None and (missing or set(keep) != set(remembered)):
        stats.cache_written = _save(cache_file, keep)
    return digests, stats


def _unchanged(path: str, sig: list[int]) -> bool:
    """Whether ``path``'s stat is still ``sig`` (it was not written while being hashed)."""
    try:
        return _signature(os.stat(path)) == sig
    except OSError:
        return False


def model_digest(model) -> str:
    """SHA-256 (64 hex digits) of a Keras model's architecture and weights: the same for
    the same model however often it is saved (a ``.keras`` file's bytes are not: its zip
    carries the time of saving)."""
    import numpy as np

    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weights in model.get_weights():
        array = np.ascontiguousarray(weights)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
