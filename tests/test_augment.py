"""Tests for urbansound.augment: the study's muda deformations on a 440 Hz tone.

Time stretch and pitch shift need the ``rubberband`` binary, dynamic range
compression needs ``sox``; the tests are skipped (not failed) where one is missing.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from urbansound.augment import (DEFORMATION_NAMES, STUDY_DEFORMATIONS, AugmentError, deform,
                                make_deformer)
from urbansound.config import Config

SR = 22050
N = SR  # one second
BINARY = {"time_stretch_1.23": "rubberband", "pitch_shift_2": "rubberband",
          "drc_film_standard": "sox"}


def tone(freq: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(N) / SR)).astype(np.float32)


def peak_frequency(y: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1: k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(y)


def needs_binary(name: str):
    return pytest.mark.skipif(shutil.which(BINARY[name]) is None,
                              reason=f"{name} needs the {BINARY[name]} binary")


@pytest.fixture(scope="module")
def deformed():
    """Each deformation applied once (PitchShift's first call may compile numba code)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = deform(tone(), SR, make_deformer(name), name=name)
        return cache[name]
    return get


def test_names():
    assert DEFORMATION_NAMES == {"time_stretch_1.23", "pitch_shift_2", "drc_film_standard"}
    assert set(STUDY_DEFORMATIONS) == DEFORMATION_NAMES
    assert set(BINARY) == DEFORMATION_NAMES
    # the configuration accepts exactly these names
    assert Config().override(**{"augment.deformations": STUDY_DEFORMATIONS}).augment.deformations \
        == STUDY_DEFORMATIONS


@pytest.mark.parametrize("name", sorted(DEFORMATION_NAMES))
def test_every_deformation_runs(deformed, name):
    if shutil.which(BINARY[name]) is None:
        pytest.skip(f"needs {BINARY[name]}")
    y = deformed(name)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.all(np.isfinite(y))
    assert 0.01 < np.abs(y).max() <= 1.0
    assert not (len(y) == N and np.allclose(y, tone(), atol=1e-3))  # something changed


@needs_binary("time_stretch_1.23")
def test_time_stretch_shortens_and_keeps_pitch(deformed):
    y = deformed("time_stretch_1.23")
    assert len(y) == pytest.approx(N / 1.23, abs=5)  # 17,927 samples
    assert peak_frequency(y) == pytest.approx(440.0, abs=2.0)


@needs_binary("pitch_shift_2")
def test_pitch_shift_moves_the_peak_two_semitones(deformed):
    y = deformed("pitch_shift_2")
    assert len(y) == N
    assert peak_frequency(y) == pytest.approx(440.0 * 2 ** (2 / 12), abs=2.0)  # 493.9 Hz


@needs_binary("drc_film_standard")
def test_drc_keeps_length_and_pitch(deformed):
    y = deformed("drc_film_standard")
    assert len(y) == N
    assert peak_frequency(y) == pytest.approx(440.0, abs=2.0)


@needs_binary("time_stretch_1.23")
def test_deform_is_deterministic(deformed):
    again = deform(tone(), SR, make_deformer("time_stretch_1.23"), name="time_stretch_1.23")
    np.testing.assert_array_equal(again, deformed("time_stretch_1.23"))


def test_unknown_deformation():
    with pytest.raises(ValueError, match=r"unknown deformation 'reverb'; known: \['drc_film_standard'"):
        make_deformer("reverb")


class _Failing:
    def transform(self, jam):
        raise RuntimeError("rubberband exited with status 1")
        yield jam  # pragma: no cover


class _NaN:
    def transform(self, jam):
        jam.sandbox.muda._audio["y"] = np.full(10, np.nan, np.float32)
        yield jam


def test_deformer_failure_becomes_augment_error():
    with pytest.raises(AugmentError, match=r"deformation pitch_shift_2 failed: rubberband exited"):
        deform(tone(), SR, _Failing(), name="pitch_shift_2")


def test_non_finite_output_is_an_augment_error():
    with pytest.raises(AugmentError, match=r"deformation drc_film_standard produced non-finite"):
        deform(tone(), SR, _NaN(), name="drc_film_standard")
