"""Every configuration value is checked against plausible bounds wherever a configuration
is loaded (JSON, a file, a run's params as a mapping, ``--set``/override, the served
model's artifact), so that one tampered or mistyped value cannot buy unbounded memory or
time; NaN and infinity never reach arithmetic (no OverflowError)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from urbansound.config import (
    MAX_CLIP_SAMPLES,
    MAX_INPUT_CELLS,
    MAX_SEED,
    MAX_SEEDS,
    AudioConfig,
    Config,
    ConfigError,
    FeatureConfig,
    TrainConfig,
)


def _json(section: str, key: str, value) -> str:
    return json.dumps({section: {key: value}})


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "audio.sample_rate",
            2_000_000_000,
            "audio.sample_rate must be 1,000..768,000 Hz, got 2000000000",
        ),
        ("audio.sample_rate", 44, "audio.sample_rate must be 1,000..768,000 Hz, got 44"),
        ("audio.sample_rate", 999, "got 999"),
        ("audio.sample_rate", 768_001, "got 768001"),
        ("audio.clip_seconds", 100_000.0, "audio.clip_seconds must be 0.02..600 s, got 100000.0"),
        ("audio.clip_seconds", 0.01, "audio.clip_seconds must be 0.02..600 s, got 0.01"),
        ("features.n_fft", 8, "features.n_fft must be 16..65,536, got 8"),
        ("features.n_fft", 1 << 20, "features.n_fft must be 16..65,536"),
        ("features.hop_length", 1 << 20, "features.hop_length must be 1..65,536"),
        ("features.n_mels", 100_000, "features.n_mels must be 1..1,024, got 100000"),
        ("features.n_frames", 10**9, "features.n_frames must be 1..32,768"),
        ("features.top_db", 1e6, "features.top_db must be 0.001..200 dB"),
        ("features.amin", 2.0, "features.amin must be 1e-30..1, got 2.0"),
        ("features.waveform_rate", 10, "features.waveform_rate must be 1,000..768,000 Hz, got 10"),
        ("train.epochs", 10**7, "train.epochs must be 1..10,000, got 10000000"),
        ("train.patience", 10**7, "train.patience must be 1..10,000"),
        ("train.batch_size", 1 << 20, "train.batch_size must be 1..4,096, got 1048576"),
        ("train.weight_decay", 5.0, "train.weight_decay must be 0..1, got 5.0"),
        ("train.mixup_alpha", 1e9, "train.mixup_alpha must be 0..10"),
        ("train.seed", 1 << 40, "train.seed must be 0..4,294,967,295"),
        ("data.split_seed", -1, "data.split_seed must be 0..4,294,967,295, got -1"),
    ],
)
def test_a_value_out_of_bounds_is_refused_on_load_naming_key_bounds_and_value(key, value, message):
    section, name = key.split(".")
    with pytest.raises(ConfigError) as refused:
        Config.from_json(_json(section, name, value))
    assert message in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match=message.split(",")[0].replace(".", r"\.")):
        Config().override(**{key: value})  # --set takes the same path


def test_a_huge_integer_is_one_short_line():
    # over 4,300 digits Python's json refuses to convert it (a plain ValueError)
    with pytest.raises(ConfigError, match="configuration is not valid JSON: Exceeds the limit"):
        Config.from_json('{"features": {"n_frames": %s}}' % ("9" * 5000))
    with pytest.raises(ConfigError) as refused:
        Config.from_json('{"features": {"n_frames": %s}}' % ("9" * 4000))
    assert str(refused.value) == (
        "features.n_frames must be 1..32,768, got an integer of 13,288 bits"
    )
    with pytest.raises(ConfigError) as refused:
        Config().override(**{"features.n_frames": 10**5000})  # in code: no JSON limit
    assert str(refused.value).startswith("features.n_frames must be 1..32,768, got an integer")


@pytest.mark.parametrize(
    "rate, seconds, ok",
    [
        (48_000, 600.0, True),  # 28,800,000 samples: the most one window may hold
        (768_000, 60.0, False),  # 46 million samples per window
        (96_000, 600.0, False),
    ],
)
def test_samples_per_window_are_bounded(rate, seconds, ok):
    text = json.dumps({"audio": {"sample_rate": rate, "clip_seconds": seconds}})
    if ok:
        assert Config.from_json(text).audio.clip_samples == MAX_CLIP_SAMPLES
        return
    with pytest.raises(
        ConfigError,
        match=rf"audio\.sample_rate × audio\.clip_seconds must be "
        rf"at most 28,800,000 samples per window, got "
        rf"{rate:,} Hz × {seconds:g} s",
    ):
        Config.from_json(text)


def test_a_waveform_models_samples_per_window_are_bounded_too():
    text = json.dumps(
        {
            "audio": {"sample_rate": 8000, "clip_seconds": 600.0},
            "features": {"waveform_rate": 96_000, "n_frames": 128},
        }
    )
    with pytest.raises(ConfigError, match=r"features\.waveform_rate × audio\.clip_seconds"):
        Config.from_json(text)


def test_log_mel_cells_per_window_are_bounded():
    # 1,024 bands × 8,192 frames of a 200 s clip: 8 million cells, 32 MiB per window
    text = json.dumps(
        {
            "audio": {"clip_seconds": 200.0},
            "features": {"n_mels": 1024, "n_frames": 8192, "n_fft": 4096, "win_length": 512},
        }
    )
    with pytest.raises(ConfigError) as refused:
        Config.from_json(text)
    assert str(refused.value) == (
        f"features.n_mels × features.n_frames must be at most "
        f"{MAX_INPUT_CELLS:,} cells per window, got 1,024 × 8,192"
    )


def test_seeds_are_bounded_in_number_and_size():
    with pytest.raises(ConfigError, match=rf"train\.seeds must be at most {MAX_SEEDS} seeds"):
        Config().override(**{"train.seeds": tuple(range(MAX_SEEDS + 1))})
    with pytest.raises(ConfigError, match=r"train\.seeds must be at most"):
        Config().override(**{"train.seeds": (1, 1 << 33)})
    assert Config().override(**{"train.seeds": tuple(range(MAX_SEEDS))}).train.seeds[-1] == 31


def test_ensemble_members_and_their_bounds():
    train = Config().override(**{"train.ensemble": 3, "train.seed": 2}).train
    assert train.member_seeds == (6, 7, 8)  # seed 2 shares no member with seed 1's (3, 4, 5)
    # seeds, when named, are the members whatever ensemble says
    assert TrainConfig(seeds=(9, 4), ensemble=3).member_seeds == (9, 4)
    assert TrainConfig(ensemble=1, seed=5).member_seeds == (5,)
    # the largest seed wraps into NumPy's 32-bit range instead of failing mid-run
    assert (
        max(Config().override(**{"train.ensemble": 2, "train.seed": MAX_SEED}).train.member_seeds)
        < 2**32
    )
    for bad in (0, MAX_SEEDS + 1):
        with pytest.raises(ConfigError, match=r"train\.ensemble must be"):
            Config().override(**{"train.ensemble": bad})


def test_class_names_are_bounded_in_number():
    with pytest.raises(
        ConfigError,
        match=r"data\.class_names must be at most 10,000 names, "
        r"got 10,001",
    ):
        Config().override(**{"data.class_names": tuple(f"c{i}" for i in range(10_001))})


def test_test_time_hop_is_zero_or_at_least_20_ms():
    with pytest.raises(
        ConfigError,
        match=r"features\.window_hop_s must be 0 \(no test-time "
        r"windows\) or at least 0\.02 s, got 0\.001",
    ):
        Config().override(**{"features.window_hop_s": 0.001})
    assert Config().override(**{"features.window_hop_s": 0.02}).features.window_hop_s == 0.02


def test_the_lowest_and_highest_plausible_values_are_accepted():
    low = Config.from_json(
        json.dumps(
            {
                "audio": {"sample_rate": 1000, "clip_seconds": 3.0},
                "features": {
                    "n_fft": 16,
                    "win_length": 16,
                    "hop_length": 16,
                    "n_mels": 1,
                    "n_frames": 1,
                    "waveform_rate": 1000,
                },
                "train": {"epochs": 1, "batch_size": 1, "seed": 0},
            }
        )
    )
    assert low.audio.clip_samples == 3000
    high = Config.from_json(
        json.dumps(
            {
                "audio": {"sample_rate": 768_000, "clip_seconds": 0.5},
                "features": {
                    "n_fft": 65536,
                    "win_length": 512,
                    "hop_length": 512,
                    "n_mels": 1024,
                    "waveform_rate": 768_000,
                    "top_db": 200.0,
                    "amin": 1.0,
                },
                "train": {
                    "epochs": 10_000,
                    "patience": 10_000,
                    "batch_size": 4096,
                    "seed": 2**32 - 1,
                    "weight_decay": 1.0,
                    "mixup_alpha": 10.0,
                },
            }
        )
    )
    assert high.audio.clip_samples == 384_000


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: Config(audio=AudioConfig(clip_seconds=math.inf)), "audio.clip_seconds"),
        (lambda: Config(audio=AudioConfig(clip_seconds=math.nan)), "audio.clip_seconds"),
        (lambda: Config(features=FeatureConfig(top_db=math.inf)), "features.top_db"),
        (lambda: Config(features=FeatureConfig(fmax=math.inf)), "features.fmax"),
        (lambda: Config(train=TrainConfig(learning_rate=math.inf)), "train.learning_rate"),
        (lambda: Config(train=TrainConfig(mixup_alpha=math.nan)), "train.mixup_alpha"),
    ],
)
def test_non_finite_values_built_in_code_are_a_config_error_not_an_overflow(build, key):
    # from JSON they are refused while parsing; a Config built in code meets validated()
    with pytest.raises(
        ConfigError,
        match=rf"{key.replace('.', chr(92) + '.')} must be a finite "
        rf"number",
    ):
        build().validated()


def test_a_run_params_mapping_goes_through_the_same_bounds():
    data = Config().to_dict()
    data["audio"]["sample_rate"] = 2_000_000_000
    with pytest.raises(ConfigError, match=r"audio\.sample_rate must be 1,000\.\.768,000 Hz"):
        Config.from_dict(data)


# ---------------------------------------------------------------------------
# a tampered config.json beside a model: refused on load, naming the file
# ---------------------------------------------------------------------------

TAMPERED = {"audio": {"sample_rate": 2_000_000_000, "clip_seconds": 100_000.0}}


@pytest.fixture(scope="module")
def tampered_model(tmp_path_factory):
    """A tiny sb-cnn saved as a train task saves it, with a tampered config.json."""
    from urbansound.models import build_model

    folder = tmp_path_factory.mktemp("tampered")
    build_model(
        "sb-cnn",
        seed=0,
        band_mean=np.full(128, -40.0, np.float32),
        band_variance=np.full(128, 400.0, np.float32),
    ).save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps(TAMPERED))
    return folder


def test_predict_refuses_a_tampered_config_json_in_one_line(tampered_model, tmp_path, capsys):
    from urbansound.pipeline.cli import main

    clip = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(clip, 0.1 * np.sin(np.arange(22050) / 5.0), 22050)
    code = main(["predict", str(tampered_model), str(clip)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert str(tampered_model / "config.json") in err[0]
    assert "audio.sample_rate must be 1,000..768,000 Hz, got 2000000000" in err[0]


def test_the_served_model_refuses_a_tampered_config_artifact(tampered_model):
    from urbansound.components.serving import AudioClassifier

    context = SimpleNamespace(
        artifacts={
            "config": str(tampered_model / "config.json"),
            "class_names": str(tampered_model / "none.json"),
            "keras_model": str(tampered_model / "model.keras"),
        }
    )
    with pytest.raises(ConfigError) as refused:
        AudioClassifier().load_context(context)
    assert str(tampered_model / "config.json") in str(refused.value)
    assert "audio.sample_rate must be 1,000..768,000 Hz" in str(refused.value)
