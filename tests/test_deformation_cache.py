"""The deformation cache: a rerun never recomputes a deformed copy it already has, a
changed setting never reads a stale one, and a broken entry is recomputed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from urbansound.config import Config
from urbansound.deformation_cache import DeformationCache, cache_context

NOISE = "background_noise_traffic"  # pure NumPy (muda BackgroundNoise): no binary needed


def test_keys_cover_the_clip_the_deformation_and_the_settings():
    y = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    cache = DeformationCache("/unused", cache_context(Config()))
    base = cache.key(y, 22050, NOISE, "a.wav")
    assert len(base) == 64 and base == cache.key(y.copy(), 22050, NOISE, "a.wav")
    changed = y.copy()
    changed[500] += 1e-6
    assert (
        len(
            {
                base,
                cache.key(changed, 22050, NOISE, "a.wav"),
                cache.key(y, 22050, "pitch_shift_2", "a.wav"),
                cache.key(y, 22050, NOISE, "b.wav"),  # the file name seeds the noise
                cache.key(y, 16000, NOISE, "a.wav"),
                DeformationCache(
                    "/unused", cache_context(Config().override(**{"features.top_db": 60.0}))
                ).key(y, 22050, NOISE, "a.wav"),
                DeformationCache(
                    "/unused",
                    cache_context(
                        Config().override(**{"train.model": "conv1d", "train.spec_augment": 0})
                    ),
                ).key(y, 22050, NOISE, "a.wav"),
            }
        )
        == 7
    )
    # neither the model of the same input kind nor the test-time windows change the value
    for other in (
        Config().override(**{"train.model": "sb-cnn"}),
        Config().override(**{"features.window_hop_s": 1.0}),
    ):
        assert (
            DeformationCache("/unused", cache_context(other)).key(y, 22050, NOISE, "a.wav") == base
        )


def test_noise_recordings_are_part_of_the_key(tmp_path):
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "street.wav").write_bytes(b"x" * 10)
    y = np.zeros(100, np.float32)
    config = Config().override(**{"augment.noise_dir": str(noise)})
    first = DeformationCache("/u", cache_context(config)).key(y, 22050, "background_noise_0", "a")
    (noise / "park.wav").write_bytes(b"y" * 20)
    assert (
        DeformationCache("/u", cache_context(config)).key(y, 22050, "background_noise_0", "a")
        != first
    )


def test_put_then_get_and_broken_entries_are_misses(tmp_path):
    cache = DeformationCache(str(tmp_path / "cache"), "ctx")
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(key, values)
    np.testing.assert_array_equal(cache.get(key), values)
    assert [p.name for p in (tmp_path / "cache" / "ab").iterdir()] == [f"{key}.npy"]
    (tmp_path / "cache" / "ab" / f"{key}.npy").write_bytes(b"torn")
    assert cache.get(key) is None
    np.save(tmp_path / "cache" / "ab" / f"{key}.npy", np.array([np.nan], np.float32))
    assert cache.get(key) is None


def test_a_cache_that_cannot_be_written_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = DeformationCache(str(blocker / "cache"), "ctx")
    cache.put("cd" + "1" * 62, np.zeros(3, np.float32))  # no exception
    assert cache.get("cd" + "1" * 62) is None


def _features(root, out, config):
    from urbansound.beam_features import run_features
    from urbansound.records import fold_files, iter_records

    manifest = run_features(
        root / "wave",
        root / out,
        config=config,
        beam_args=["--runner=FnApiRunner"],
        deform_folds=[2, 3],
    )
    records = {f: sorted(iter_records(fold_files(root / out, f))) for f in (1, 2, 3)}
    return manifest, records


def test_a_rerun_reads_every_deformed_copy_from_the_cache(waveforms, monkeypatch):
    from urbansound import augment

    root = waveforms
    config = Config().override(
        **{"augment.deformations": (NOISE,), "augment.cache_dir": str(root / "cache")}
    )
    first, records = _features(root, "feat1", config)
    assert first["deformation_cache"] == {"dir": str(root / "cache"), "hits": 0, "computed": 20}
    assert first["folds"]["2"] == {"original": 10, NOISE: 10} and first["folds"]["1"] == {
        "original": 10
    }  # fold 1 is not a training fold here: never deformed, never cached

    def no_deformation(*args, **kwargs):
        raise AssertionError("a cached deformation was recomputed")

    monkeypatch.setattr(augment, "deform", no_deformation)
    second, again = _features(root, "feat2", config)
    assert second["deformation_cache"] == {"dir": str(root / "cache"), "hits": 20, "computed": 0}
    assert again == records  # the same examples, byte for byte
    assert second["folds"] == first["folds"]


def test_changed_features_recompute_instead_of_reading_stale_copies(waveforms):
    root = waveforms
    config = Config().override(
        **{
            "augment.deformations": (NOISE,),
            "augment.cache_dir": str(root / "cache2"),
            "features.top_db": 60.0,
        }
    )
    _features(root, "feat3", config)
    other, _ = _features(root, "feat4", config.override(**{"features.top_db": 70.0}))
    assert other["deformation_cache"]["hits"] == 0 and other["deformation_cache"]["computed"] == 20


def test_no_cache_dir_no_cache(waveforms):
    manifest, _ = _features(
        waveforms, "feat5", Config().override(**{"augment.deformations": (NOISE,)})
    )
    assert manifest["deformation_cache"] is None


def test_run_and_features_keep_the_cache_under_out(tmp_path):
    from urbansound.pipeline.commands.resolve import with_deformation_cache

    plain = Config()
    assert with_deformation_cache(plain, tmp_path) is plain  # nothing deformed: no cache
    deforming = Config().override(**{"augment.deformations": (NOISE,)})
    assert with_deformation_cache(deforming, tmp_path).augment.cache_dir == str(
        tmp_path / "cache" / "deformations"
    )
    mine = deforming.override(**{"augment.cache_dir": "gs://bucket/cache"})
    assert with_deformation_cache(mine, tmp_path).augment.cache_dir == "gs://bucket/cache"
