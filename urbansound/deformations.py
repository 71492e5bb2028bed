"""The named deformations and the per-class syntax (a leaf: no numpy, no muda).

The table of :mod:`urbansound.augment`'s deformations by name, the named sets of
``--augment``, and the one reading of ``augment.per_class`` entries
(``"<class>=<name>,<name>"``).  The configuration checks names against it and the
features stage picks each clip's deformations from it; applying a deformation is
:mod:`urbansound.augment`'s.
"""

from __future__ import annotations

from urbansound.messages import names_excerpt, quoted

_STRETCH = (0.81, 0.93, 1.07, 1.23)
_SHIFT = (-2.0, -1.0, 1.0, 2.0, -3.5, -2.5, 2.5, 3.5)
_DRC = ("music standard", "film standard", "speech", "radio")
BUILTIN_NOISES = ("traffic", "crowd", "workers", "hum")
"""The synthesised background-noise sources, in ``background_noise_<k>`` order."""


def _shift_name(n: float) -> str:
    return f"pitch_shift_{n:g}"


# name -> (muda deformer class name, keyword arguments)
DEFORMATIONS: dict[str, tuple[str, dict]] = {
    **{f"time_stretch_{r:g}": ("TimeStretch", {"rate": r}) for r in _STRETCH},
    **{_shift_name(n): ("PitchShift", {"n_semitones": n}) for n in _SHIFT},
    **{f"drc_{p.replace(' ', '_')}": ("DynamicRangeCompression", {"preset": p}) for p in _DRC},
    **{
        f"background_noise_{name}": ("BackgroundNoise", {"source": k})
        for k, name in enumerate(BUILTIN_NOISES)
    },
}
DEFORMATION_NAMES = frozenset(DEFORMATIONS)
"""Names accepted in ``augment.deformations`` of the configuration."""

STUDY_DEFORMATIONS = (
    "time_stretch_1.23",
    "pitch_shift_2",
    "drc_film_standard",
    "background_noise_workers",
)
"""The thesis' four deformations (SEED.md)."""

SALAMON_BELLO_DEFORMATIONS = tuple(DEFORMATIONS)
"""The dataset authors' 20 deformations per clip."""

DEFORMATION_SETS = {"study": STUDY_DEFORMATIONS, "salamon-bello": SALAMON_BELLO_DEFORMATIONS}
"""Named sets for ``--augment``."""

DEFORMATION_FAMILIES: dict[str, tuple[str, ...]] = {
    "time_stretch": tuple(f"time_stretch_{r:g}" for r in _STRETCH),
    "pitch_shift_1": tuple(_shift_name(n) for n in _SHIFT[:4]),
    "pitch_shift_2": tuple(_shift_name(n) for n in _SHIFT[4:]),
    "drc": tuple(f"drc_{p.replace(' ', '_')}" for p in _DRC),
    "background_noise": tuple(f"background_noise_{name}" for name in BUILTIN_NOISES),
}
"""The dataset authors' five deformation families (Salamon & Bello 2017: TS, PS1, PS2,
DRC, BG), four deformations each; together :data:`SALAMON_BELLO_DEFORMATIONS`.  The
deformation ablation (``urbansound study deformations``) trains once per family."""


def binary_needed(name: str) -> str | None:
    """The external program a deformation needs (``rubberband``, ``sox``), or None."""
    kind = DEFORMATIONS[name][0]
    return {
        "TimeStretch": "rubberband",
        "PitchShift": "rubberband",
        "DynamicRangeCompression": "sox",
    }.get(kind)


def deformations_for(
    class_name: str, deformations: tuple[str, ...], per_class: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The deformations applied to a clip of ``class_name``.

    ``per_class`` entries read ``"<class>=<name>,<name>"`` (``"<class>="`` for none):
    the study proposes choosing deformations per class, because some hurt some
    classes.  A class without an entry gets ``deformations``.
    """
    for name, chosen, _ in split_per_class(per_class):
        if name == class_name:
            return chosen
    return tuple(deformations)


def parse_per_class(per_class: tuple[str, ...], class_names) -> dict[str, tuple[str, ...]]:
    """Check ``augment.per_class`` entries; ``ValueError`` naming the bad entry."""
    out = {}
    for entry, (name, names, sep) in zip(per_class, split_per_class(per_class)):
        if not sep or name not in class_names:
            raise ValueError(
                f"augment.per_class entry {quoted(entry)} must read "
                f"'<class>=<deformation>,...' with a class of "
                f"{names_excerpt(class_names)}"
            )
        unknown = [d for d in names if d not in DEFORMATION_NAMES]
        if unknown:
            raise ValueError(
                f"augment.per_class entry {quoted(entry)}: unknown deformation(s) "
                f"{names_excerpt(unknown)}"
            )
        if name in out:
            raise ValueError(f"augment.per_class names {name!r} twice")
        out[name] = names
    return out


def split_per_class(per_class: tuple[str, ...]) -> list[tuple[str, tuple[str, ...], bool]]:
    """``augment.per_class`` entries ``"<class>=<name>,<name>"`` as (class, deformation
    names, whether the entry had its ``=``), in order; the one reading of the syntax
    (:func:`parse_per_class` checks the names)."""
    out = []
    for entry in per_class:
        name, sep, chosen = entry.partition("=")
        out.append(
            (name.strip(), tuple(d.strip() for d in chosen.split(",") if d.strip()), bool(sep))
        )
    return out
