"""Deformations of training clips with muda (the study's augmentation).

Each named deformation maps one waveform to one deformed waveform of the same
sample rate.  They are applied to clips of every fold once, in the features
stage; training reads a fold's deformed copies only while that fold is a
training fold, so no test or validation clip is ever an augmentation source.

muda 0.4.1 needs the ``rubberband`` binary for time stretch and pitch shift and
``sox`` for dynamic range compression.
"""
from __future__ import annotations

import numpy as np

# name -> (muda deformer class name, keyword arguments), after the study
_DEFORMATIONS: dict[str, tuple[str, dict]] = {
    "time_stretch_1.23": ("TimeStretch", {"rate": 1.23}),
    "pitch_shift_2": ("PitchShift", {"n_semitones": 2.0}),
    "drc_film_standard": ("DynamicRangeCompression", {"preset": "film standard"}),
}
DEFORMATION_NAMES = frozenset(_DEFORMATIONS)
"""Names accepted in ``augment.deformations`` of the configuration."""

STUDY_DEFORMATIONS = ("time_stretch_1.23", "pitch_shift_2", "drc_film_standard")
"""The study's set, less background noise (which needs recordings of street ambience)."""


class AugmentError(Exception):
    """A deformation failed on a clip (the message names the deformation)."""


def make_deformer(name: str):
    """The muda deformer object for a deformation name."""
    if name not in _DEFORMATIONS:
        raise ValueError(f"unknown deformation {name!r}; known: {sorted(DEFORMATION_NAMES)}")
    import warnings

    with warnings.catch_warnings():
        # muda.deformers.sox imports pkg_resources, which warns on every import
        warnings.simplefilter("ignore", UserWarning)
        import muda
    cls_name, kwargs = _DEFORMATIONS[name]
    return getattr(muda.deformers, cls_name)(**kwargs)


def deform(y: np.ndarray, sample_rate: int, deformer, *, name: str = "") -> np.ndarray:
    """Apply one muda deformer to a waveform.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] mono waveform.
    sample_rate : Hz.
    deformer : from :func:`make_deformer`.

    Returns
    -------
    np.ndarray [shape=(m,), dtype=float32]; m differs from n for time stretch.
    """
    import jams
    import muda

    jam = jams.JAMS()
    jam.file_metadata.duration = len(y) / sample_rate
    jam = muda.jam_pack(jam, _audio=dict(y=np.asarray(y, dtype=np.float32), sr=sample_rate))
    try:
        out = next(iter(deformer.transform(jam)))
    except Exception as exc:  # rubberband/sox failures surface as assorted types
        raise AugmentError(f"deformation {name or deformer!s} failed: {exc}") from None
    y_out = np.asarray(out.sandbox.muda._audio["y"], dtype=np.float32)
    if not np.all(np.isfinite(y_out)):
        raise AugmentError(f"deformation {name} produced non-finite samples")
    return y_out
