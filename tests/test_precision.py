"""train.precision: mixed bfloat16 training on CPUs that have the instructions, a float32
model saved either way, and float32 where the CPU lacks them."""

import numpy as np
import pytest
from conftest import write_band_features

from urbansound.config import Config, ConfigError
from urbansound.precision import cpu_has_bf16, mixed_copy, resolve_precision

keras = pytest.importorskip("keras")

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n"


def _cpuinfo(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_auto_is_mixed_only_where_the_cpu_computes_bfloat16(tmp_path):
    with_bf16 = _cpuinfo(tmp_path, SAPPHIRE_RAPIDS)
    assert cpu_has_bf16(with_bf16)
    assert resolve_precision("auto", with_bf16) == "mixed_bfloat16"
    without = _cpuinfo(tmp_path, SKYLAKE)
    assert not cpu_has_bf16(without)
    assert resolve_precision("auto", without) == "float32"
    assert resolve_precision("auto", tmp_path / "absent") == "float32"  # not Linux: float32
    assert resolve_precision("float32", with_bf16) == "float32"
    assert resolve_precision("mixed_bfloat16", without) == "mixed_bfloat16"  # as asked


def test_an_unknown_precision_is_refused_by_the_config():
    with pytest.raises(ConfigError, match=r"train.precision must be one of \['float32', "):
        Config().override(**{"train.precision": "fp16"}).validated()


def _urbannet():
    from urbansound.models import build_model

    return build_model(
        "urbannet",
        input_shape=(128, 128, 1),
        band_mean=np.full(128, -40, np.float32),
        band_variance=np.full(128, 144, np.float32),
        seed=0,
    )


def test_the_mixed_copy_computes_in_bfloat16_except_the_standardisation_and_the_softmax():
    model = _urbannet()
    copy = mixed_copy(model)
    policies = {layer.name: layer.dtype_policy.name for layer in copy.layers}
    assert policies["per_band_standardize"] == "float32"
    assert policies["probabilities"] == "float32"
    assert policies["stem_conv"] == policies["block4b_conv"] == "mixed_bfloat16"
    assert [w.dtype for w in copy.weights] == ["float32"] * len(model.weights)
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(-40, 12, (2, 128, 128, 1)).astype(np.float32)
    assert copy(x).dtype == "float32"
    assert model.layers[-1].dtype_policy.name == "float32"  # the original is untouched


def test_a_nested_model_is_refused_by_name():
    from urbansound.models import build_model

    with pytest.raises(ValueError, match=r"conv1d: mixed precision needs a flat model; nests"):
        mixed_copy(build_model("conv1d", input_shape=(48000, 1), seed=0))


def test_training_in_mixed_precision_saves_a_float32_model_that_learnt(tmp_path, capsys):
    from urbansound.training import MODEL_FILE, train_fold

    features = tmp_path / "features"
    features.mkdir()
    write_band_features(features, per_fold=24, seed=3)
    # improved: no batch norm, whose moving statistics a few steps leave unsettled
    config = Config().override(
        **{
            "train.precision": "mixed_bfloat16",
            "train.model": "improved",
            "train.epochs": 6,
            "train.batch_size": 8,
        }
    )
    result = train_fold(features, 3, [1, 2, 3], config=config, out_dir=tmp_path / "out", verbose=2)
    assert "training in mixed_bfloat16 (train.precision=mixed_bfloat16)" in capsys.readouterr().out
    saved = keras.models.load_model(tmp_path / "out" / MODEL_FILE, compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert result.test_accuracy == 1.0  # the two classes differ by 40 dB in half the bands
    # what was evaluated is the float32 model that was saved, with the trained weights
    x = np.stack([np.full((128, 128, 1), -40.0, np.float32)])
    assert saved.predict(x, verbose=0).dtype == np.float32
