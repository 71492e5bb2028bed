"""Fold roles: which folds test, validate and train each model (a leaf).

Never a random split of clips: slices of one recording share a fold, so every role is
a whole fold.  The features stage asks which folds train some model (only their clips
are deformed); training asks which folds play which role for one test fold.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FoldSplit:
    """Which folds play which role for one test fold (``validation_fold`` None: no
    validation fold, every non-test fold trains)."""

    test_fold: int
    validation_fold: int | None
    train_folds: tuple[int, ...]


def min_folds(validation: str) -> int:
    """Folds a dataset needs: test + training, and a validation fold when ``validation="fold"``."""
    return 3 if validation == "fold" else 2


def split_folds(
    test_fold: int, available: Sequence[int], *, seed: int, validation: str = "fold"
) -> FoldSplit:
    """Assign the roles of the folds for one test fold.

    With ``validation="fold"`` the validation fold is drawn at random (seeded by
    ``seed`` and ``test_fold``) from the other folds; with ``"none"`` every other fold
    trains.  Never a random split of clips: slices of one recording share a fold.

    Raises
    ------
    ValueError
        the test fold is absent, or too few folds are present (:func:`min_folds`).
    """
    folds = sorted({int(f) for f in available})
    if test_fold not in folds:
        raise ValueError(f"test fold {test_fold} is not among the folds present {folds}")
    needed = min_folds(validation)
    if len(folds) < needed:
        roles = "test, validation, training" if validation == "fold" else "test, training"
        raise ValueError(f"need at least {needed} folds ({roles}); have {folds}")
    others = [f for f in folds if f != test_fold]
    if validation == "none":
        return FoldSplit(test_fold, None, tuple(others))
    chosen = random.Random(f"{seed}:{test_fold}").choice(others)
    return FoldSplit(test_fold, chosen, tuple(f for f in others if f != chosen))


def folds_to_augment(
    test_folds: Sequence[int], available: Sequence[int], *, seed: int, validation: str = "fold"
) -> list[int]:
    """Folds that train at least one of the test folds' models: only their clips are
    deformed, so a test or validation clip is never a deformation's source (with every
    fold tested, every fold trains some other fold's model, and so is deformed once)."""
    return sorted(
        {
            f
            for t in test_folds
            for f in split_folds(t, available, seed=seed, validation=validation).train_folds
        }
    )
