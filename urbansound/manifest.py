"""The manifest a stage leaves beside its output, as the next stage reads it (a leaf).

Ingest writes ``manifest.json`` (counts per fold and class, class names in label order,
layout, how folds were made, sample rate, dataset fingerprint), the features stage its
own; a later stage reads the one in its input folder.  :class:`IngestError` is ingest's
error, and also what a stage raises when its input folder holds no manifest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from urbansound.config import CLASS_NAMES, Config
from urbansound.listing import DatasetError

MANIFEST = "manifest.json"


class IngestError(DatasetError):
    """Ingest cannot produce a usable dataset (or strict mode found rejections)."""


def manifest_class_names(manifest: dict) -> tuple[str, ...]:
    """The class names (label order) a manifest records; UrbanSound8K's ten for a
    manifest written before class names were read from the data."""
    return tuple(manifest.get("class_names") or manifest.get("classes") or CLASS_NAMES)


def with_class_names(config: Config, directory: str | os.PathLike) -> Config:
    """``config`` with ``data.class_names`` set: its own when it has them, else those of
    the manifest in ``directory`` (ingest's or features' output), else UrbanSound8K's ten
    (a folder with no manifest, or one written before class names were recorded)."""
    if config.data.class_names:
        return config
    path = Path(directory) / MANIFEST
    try:
        names = manifest_class_names(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        names = CLASS_NAMES
    return config.override(**{"data.class_names": list(names)})


def read_manifest(directory: str | os.PathLike) -> dict:
    """The manifest.json ingest or features wrote in ``directory``."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IngestError(
            f"{path}: not found; is {directory} the output of the previous stage?"
        ) from None
