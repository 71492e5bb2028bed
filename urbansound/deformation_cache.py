"""A cache of deformed clips' model inputs, so that a rerun never recomputes a deformation.

A muda deformation (rubberband, sox) costs far more than the log-mel of its result, and
the same clip gets the same deformation in every run that trains on its fold.  Each
deformed copy's model input is stored under a key that covers everything it depends on:

- the clip's samples and sample rate, and its file name (it seeds random deformations);
- the deformation's name, the noise recordings it may mix in (names and contents), and
  :data:`CACHE_VERSION` (raised whenever a deformation's implementation changes);
- the audio and feature settings and the model's input kind (the stored value is the
  model input, a log-mel or a waveform).

So a changed setting is a miss, never a stale hit.  Entries are ``.npy`` files under
``<directory>/<2 hex>/<64 hex>.npy``, written to a temporary name and renamed, through
Beam's ``FileSystems`` so that a bucket (``gs://``, ``s3://``) works as well as a local
folder; an unreadable entry is a miss and is rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid

import numpy as np

CACHE_VERSION = 1
"""Part of every key: raise it when a deformation's implementation changes."""


def noise_signature(
    noise_dir: str, cache_file: str | os.PathLike | None = None
) -> list[tuple[str, str]]:
    """(relative path, SHA-256 of its bytes) of every file under ``noise_dir`` (empty: the
    built-in synthesised noises), sorted: a changed noise set changes the keys, also a
    recording rewritten at the same size with its old mtime.  ``cache_file`` remembers
    the digests between calls (:func:`urbansound.content_hash.content_digests`)."""
    if not noise_dir:
        return []
    from urbansound.content_hash import content_digests

    found = [os.path.join(root, name) for root, _, files in os.walk(noise_dir) for name in files]
    digests, _ = content_digests(found, cache_file=cache_file)
    return sorted((os.path.relpath(path, noise_dir), digests[path]) for path in found)


class DeformationCache:
    """Model inputs of deformed clips, by content key.

    Parameters
    ----------
    directory : a folder or a Beam filesystem URI.
    context : everything the value depends on besides the clip and the deformation
        (see :func:`cache_context`).
    """

    def __init__(self, directory: str, context: str):
        self.directory = directory
        self._context = context

    def key(self, y: np.ndarray, sample_rate: int, deformation: str, clip_key: str) -> str:
        """The entry of ``deformation`` applied to clip ``y`` (float32 [shape=(n,)] at
        ``sample_rate`` Hz) named ``clip_key``: 64 hex digits."""
        h = hashlib.sha256()
        h.update(
            json.dumps(
                [CACHE_VERSION, self._context, deformation, clip_key, int(sample_rate)]
            ).encode()
        )
        h.update(np.ascontiguousarray(y, dtype="<f4").tobytes())
        return h.hexdigest()

    def _path(self, key: str) -> str:
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(self.directory, key[:2], f"{key}.npy")

    def get(self, key: str) -> np.ndarray | None:
        """The stored model input, or None (absent or unreadable)."""
        from apache_beam.io.filesystems import FileSystems

        path = self._path(key)
        try:
            if not FileSystems.exists(path):
                return None
            with FileSystems.open(path) as fh:
                values = np.load(io.BytesIO(fh.read()), allow_pickle=False)
        except (OSError, ValueError, EOFError):  # a torn or foreign file: recompute it
            return None
        if values.dtype != np.float32 or not np.all(np.isfinite(values)):
            return None
        return values

    def put(self, key: str, values: np.ndarray) -> None:
        """Store ``values`` (float32, finite) under ``key``; a failure to write only
        costs the next run a recomputation, so it is not an error."""
        from apache_beam.io.filesystems import FileSystems

        path = self._path(key)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(values, np.float32), allow_pickle=False)
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            FileSystems.mkdirs(FileSystems.split(path)[0])
        except OSError:
            pass  # exists already (or the filesystem has no folders)
        try:
            with FileSystems.create(temporary) as fh:
                fh.write(buffer.getvalue())
            FileSystems.rename([temporary], [path])
        except Exception:
            try:
                FileSystems.delete([temporary])
            except Exception:
                pass


def cache_context(config) -> str:
    """What a cached model input depends on besides the clip and the deformation: the
    audio and feature settings, the model's input kind and the noise recordings."""
    features = dict(config.to_dict()["features"])
    features.pop("window_hop_s", None)  # test-time windows are not deformed
    return json.dumps(
        {
            "audio": config.to_dict()["audio"],
            "features": features,
            "input_kind": config.input_kind,
            "noise": noise_signature(config.augment.noise_dir),
        },
        sort_keys=True,
    )
