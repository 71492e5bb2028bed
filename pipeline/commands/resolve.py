"""What commands resolve before work starts: the dataset's layout and class names, the
model ``--init-from`` names, where deformed copies are kept, which folders are ours."""

from __future__ import annotations

import os
from pathlib import Path

from urbansound.pipeline.commands.output import chatter_log, libraries_to_log

INIT_DIGEST_FILE = "model.sha256"
"""Beside ``<out>/init-model/model.keras``: the digest of the model copied from MLflow."""


CONTENT_DIGESTS = Path("cache") / "content-digests"
"""Under ``--out``: the remembered content digests of the dataset's files (one JSON file
per dataset folder; :mod:`urbansound.content_hash`)."""


def with_deformation_cache(config, out: Path):
    """``config`` keeping deformed copies in ``<out>/cache/deformations`` (a rerun reuses
    them) when it deforms clips and names no cache of its own."""
    if config.augment.cache_dir or not config.augment.all_deformations():
        return config
    return config.override(**{"augment.cache_dir": str(out / "cache" / "deformations")})


def resolve_data(config, data: Path, args, clips=None):
    """``config`` with the dataset's layout (detected when not named), the settings that
    layout brings (ESC-50: 5 s clips) unless ``--set`` gave them, and, when the dataset
    was listed (``clips``), its class names in label order: every task then trains,
    evaluates and names the same classes."""
    from urbansound.config import CLASS_NAMES
    from urbansound.layouts import apply_layout, detect_layout

    layout = config.data.layout
    if layout == "auto" and clips is not None:
        layout = detect_layout(data)
    if layout != "auto":
        given = {key for key, _ in getattr(args, "settings", None) or []}
        config = apply_layout(config, layout, given)
    if clips is not None and not config.data.class_names:
        names = (
            CLASS_NAMES
            if layout == "urbansound8k"
            else tuple(name for _, name in sorted({(c.class_id, c.class_name) for c in clips}))
        )
        config = config.override(**{"data.class_names": names})
    return config


def resolve_init_from(config, args, out: Path | None):
    """``config`` with ``train.init_from`` the local ``model.keras`` that ``--init-from``
    names, checked against ``train.model``.  An MLflow URI (``run`` only: ``out`` given) is
    loaded once and saved, with its configuration, in ``<out>/init-model/`` so that the
    tasks need no MLflow; ``submit`` (``out`` None) passes a path on as the pods see it."""
    from urbansound.config import ConfigError
    from urbansound.pipeline.model_source import find_local_model, is_mlflow_uri, load_model
    from urbansound.training import CONFIG_FILE, MODEL_FILE, check_init_model, check_init_source

    source = getattr(args, "init_from", None)
    if not source:
        return config
    if out is None:
        if is_mlflow_uri(source):
            raise ConfigError(
                f"{source}: submit takes --init-from as a model.keras path the "
                f"pods can read, not an MLflow URI"
            )
        if "://" in source or not os.path.exists(source):
            return config.override(**{"train.init_from": source})  # seen by the pods only
        path = find_local_model(source).resolve()
    elif is_mlflow_uri(source):
        loaded = load_model(source, tracking_uri=getattr(args, "tracking_uri", "") or "")
        folder = out / "init-model"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        loaded.model.save(path)
        # the copy's bytes differ at every save: what it holds keys the cache
        # (urbansound.pipeline.commands.run.inputs_fingerprint)
        from urbansound.content_hash import model_digest

        (folder / INIT_DIGEST_FILE).write_text(model_digest(loaded.model) + "\n")
        if not loaded.config_source.startswith("defaults"):
            (folder / CONFIG_FILE).write_text(loaded.config.to_json())
        print(f"--init-from {source}: copied to {path}")
    else:
        path = find_local_model(source).resolve()
    config = config.override(**{"train.init_from": str(path)})
    check_init_source(path, config)
    # here, not in the first task: seconds, not minutes; TensorFlow's start-up to the log
    if getattr(args, "verbose", False):
        check_init_model(path, config)
    else:
        command = getattr(args, "command", None) or "run"
        with libraries_to_log(chatter_log(command)):
            check_init_model(path, config)
    return config


def legacy_only(files=(), folders=()):
    """A ``legacy`` test for :func:`urbansound.outputs.claim_folder`: a folder holding
    only the ``files`` and ``folders`` named was written by a version of this tool without
    markers (its files are recorded as ours); None for anything else."""

    def legacy(folder: Path) -> list[str] | None:
        found = list(folder.iterdir())
        if all(p.name in (folders if p.is_dir() and not p.is_symlink() else files) for p in found):
            return sorted(p.name for p in found if p.name in files)
        return None

    return legacy
