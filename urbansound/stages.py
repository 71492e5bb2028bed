"""Stages run in sequence outside a pipeline: ``urbansound features`` on a dataset root
(ingest, then features) and ``urbansound train-final`` (ingest, features, one model on
every fold).  No kfp, no MLflow: the commands log what these return."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from urbansound.config import Config

Say = Callable[[str], None]
"""Prints one line to the user (a progress line when it ends with ``\\r``)."""

Progress = bool | Callable[[int, int], None]
"""What ingest and run_features take as ``progress``: False (none) or ``progress(done, total)``."""


def _no_progress(stage: str) -> Progress:
    return False


def features_from(
    source: str,
    out: str,
    *,
    config: Config,
    beam_args: list[str],
    waveforms: str | os.PathLike,
    digest_folder: str | os.PathLike,
    say: Say,
    progress: Callable[[str], Progress] = _no_progress,
) -> tuple[dict, float]:
    """Compute the model's input from ``source`` into ``out`` with Beam.

    source : an ingest output folder, a bucket URI, or a dataset root; a local folder
        without an ingest manifest is ingested into ``waveforms`` first (a line with its
        summary and seconds is said).
    digest_folder : where the content digests of a dataset root are remembered.
    progress : ``progress(stage)`` is the progress callback of ``"ingest"`` and
        ``"features"`` (:func:`urbansound.ingest.ingest`, :func:`run_features`).

    Returns the features manifest (folds, shards, workers, warnings, input kind) and the
    seconds the features stage took (ingest not counted).
    """
    from urbansound.beam_features import run_features
    from urbansound.content_hash import cache_file_for
    from urbansound.ingest import ingest
    from urbansound.manifest import MANIFEST

    if "://" not in source and not (Path(source) / MANIFEST).exists():
        started = time.time()
        result = ingest(
            source,
            waveforms,
            config=config,
            progress=progress("ingest"),
            digest_cache=cache_file_for(digest_folder, source),
        )
        say(f"{result.summary_line()} ({time.time() - started:.1f} s)")
        source = str(waveforms)
    started = time.time()
    manifest = run_features(
        source, out, config=config, beam_args=beam_args, progress=progress("features")
    )
    return manifest, time.time() - started


def train_final_from(
    data: str | os.PathLike,
    out: Path,
    *,
    config: Config,
    settings_given: Iterable[str] = (),
    digest_folder: str | os.PathLike,
    say: Say,
    verbose: int = 0,
) -> tuple[Config, list[int], dict]:
    """Ingest ``data`` into ``<out>/waveforms``, compute its features into
    ``<out>/features`` and train one model on every fold into ``<out>/model``
    (:func:`urbansound.training.train_final`); the ingest summary is said.

    config : with ``data.layout`` ``auto`` the layout is told from ``data``; the settings
        the layout brings (ESC-50: 5 s clips) apply after ingest, except the keys in
        ``settings_given`` (the user's ``--set``).

    Returns (the configuration trained with, the folds, ``final_result.json``'s dict).
    """
    from urbansound.beam_features import default_beam_args, run_features
    from urbansound.content_hash import cache_file_for
    from urbansound.ingest import ingest
    from urbansound.layouts import apply_layout, detect_layout
    from urbansound.training import train_final

    if config.data.layout == "auto":
        config = config.override(**{"data.layout": detect_layout(data)})
    result = ingest(
        data,
        out / "waveforms",
        config=config,
        progress=False,
        digest_cache=cache_file_for(digest_folder, data),
    )
    say(result.summary_line())
    config = apply_layout(config, config.data.layout, set(settings_given))
    manifest = run_features(
        str(out / "waveforms"), str(out / "features"), config=config, beam_args=default_beam_args()
    )
    folds = sorted(int(k) for k in manifest["folds"])
    final = train_final(
        out / "features", folds, config=config, out_dir=out / "model", verbose=verbose
    )
    return config, folds, final
