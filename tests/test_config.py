"""Tests for urbansound.config: the study's defaults, JSON round trip, validation."""

from __future__ import annotations

import json

import pytest

from urbansound.config import ALL_FOLDS, CLASS_NAMES, Config, ConfigError, config_for, demo_config

# ---------------------------------------------------------------------------
# Defaults are the study's
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, expected",
    [
        ("audio.sample_rate", 22050),
        ("audio.clip_seconds", 3.0),
        ("features.n_mels", 128),
        ("features.n_frames", 128),
        ("features.hop_length", 512),
        ("features.win_length", 512),  # 23 ms at 22,050 Hz
        ("features.fmin", 0.0),
        ("features.fmax", None),  # Nyquist
        ("train.model", "urbannet"),
        ("train.optimizer", "adamw"),
        ("train.schedule", "one_cycle"),
        ("train.validation", "none"),
        ("train.epochs", 40),
        ("augment.deformations", []),
    ],
)
def test_defaults_are_the_study_features_and_the_default_model(key, expected):
    assert Config().flat()[key] == expected


@pytest.mark.parametrize(
    "model, expected",
    [
        (
            "sb-cnn",
            dict(
                optimizer="sgd",
                learning_rate=0.01,
                epochs=50,
                patience=15,
                validation="fold",
                schedule="constant",
            ),
        ),
        (
            "improved",
            dict(
                optimizer="adam",
                learning_rate=0.001,
                epochs=100,
                patience=15,
                validation="fold",
                schedule="constant",
            ),
        ),
    ],
)
def test_study_models_get_the_study_recipe(model, expected):
    train = config_for(model).train
    assert {k: getattr(train, k) for k in expected} == expected
    assert config_for(model, "study").train == train  # the study's own protocol


def test_profiles():
    study = config_for("urbannet", "study").train
    assert (study.validation, study.patience, study.epochs) == ("fold", 15, 40)
    quick = config_for("sb-cnn", "quick").train
    assert (quick.epochs, quick.patience, quick.optimizer) == (2, 1, "sgd")
    with pytest.raises(
        ConfigError, match=r"profile must be one of \['default', 'study', 'quick'\]"
    ):
        config_for("sb-cnn", "fast")
    with pytest.raises(ConfigError, match=r"train.model must be one of .*'urbannet'.*not 'vgg'"):
        config_for("vgg")


def test_clip_samples_give_exactly_n_frames():
    c = Config()
    assert c.audio.clip_samples == 66150
    f = c.features
    assert 1 + (c.audio.clip_samples - f.n_fft) // f.hop_length == f.n_frames == 128


def test_class_names_and_folds():
    assert len(CLASS_NAMES) == 10
    assert CLASS_NAMES[0] == "air_conditioner" and CLASS_NAMES[6] == "gun_shot"
    assert CLASS_NAMES[9] == "street_music"
    assert ALL_FOLDS == tuple(range(1, 11))


# ---------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        Config(),
        demo_config(),
        Config().override(
            **{
                "train.epochs": 5,
                "audio.pad_mode": "zeros",
                "features.fmax": 8000.0,
                "augment.deformations": ("pitch_shift_2", "time_stretch_1.23"),
            }
        ),
    ],
    ids=["default", "demo", "overridden"],
)
def test_json_round_trip(config):
    text = config.to_json()
    back = Config.from_json(text)
    assert back == config
    assert back.to_json() == text
    assert isinstance(back.augment.deformations, tuple)


def test_to_json_is_canonical():
    text = Config().to_json()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert list(data["train"]) == sorted(data["train"])
    # key order of the input does not matter
    shuffled = json.dumps({"train": {"seed": 0, "epochs": 40}, "audio": {"sample_rate": 22050}})
    assert Config.from_json(shuffled).to_json() == text


def test_from_json_subset_keeps_other_defaults():
    c = Config.from_json('{"train": {"epochs": 7}}')
    assert c.train.epochs == 7
    assert c.train.patience == 15
    assert c.audio == Config().audio


def test_optional_float_message_names_its_type():
    with pytest.raises(
        ConfigError, match=r"features\.fmax must be of type float \| None, got '8000'"
    ):
        Config.from_json('{"features": {"fmax": "8000"}}')
    assert Config.from_json('{"features": {"fmax": null}}').features.fmax is None
    assert Config.from_json('{"features": {"fmax": 8000}}').features.fmax == 8000.0


def test_int_accepted_for_float_field():
    c = Config.from_json('{"train": {"learning_rate": 1}}')
    assert c.train.learning_rate == 1.0 and isinstance(c.train.learning_rate, float)


def test_flat_keys():
    flat = Config().flat()
    assert flat["train.epochs"] == 40
    assert flat["features.n_mels"] == 128
    assert all(k.count(".") == 1 for k in flat)
    assert {k.split(".")[0] for k in flat} == {"audio", "features", "train", "augment", "data"}
    assert flat["train.deformed_copies"] == "all" and flat["train.original_share"] is None
    assert len(flat) == 3 + 11 + 23 + 4 + 6


# ---------------------------------------------------------------------------
# override
# ---------------------------------------------------------------------------


def test_override_dotted():
    c = Config().override(**{"train.epochs": 5})
    assert c.train.epochs == 5
    assert c.train.patience == 15
    assert Config().train.epochs == 40  # the original is untouched (frozen copy)


def test_override_none_is_ignored():
    assert Config().override(**{"train.epochs": None}) == Config()


@pytest.mark.parametrize(
    "key", ["train.epoch", "training.epochs", "train", "epochs", "train.epochs.x"]
)
def test_override_unknown_key(key):
    with pytest.raises(ConfigError, match="unknown configuration key") as info:
        Config().override(**{key: 5})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("train.epochs", "5", r"train\.epochs must be of type int"),
        ("train.epochs", 5.0, r"train\.epochs must be of type int"),
        ("train.epochs", True, r"train\.epochs must be of type int"),
        ("train.learning_rate", "0.01", r"train\.learning_rate must be of type float"),
        ("train.model", 3, r"train\.model must be of type str"),
    ],
)
def test_override_wrong_type(key, value, match):
    with pytest.raises(ConfigError, match=match):
        Config().override(**{key: value})


# ---------------------------------------------------------------------------
# Validation: unknown keys, wrong types, bad ranges
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"trian": {"epochs": 5}}', r"unknown configuration section\(s\): \['trian'\]"),
        ('{"train": {"epoch": 5}}', r"unknown key\(s\) in 'train': \['epoch'\]"),
        ('{"train": 5}', r"section 'train' must be an object"),
        ("[1, 2]", r"must be a JSON object"),
        ('{"train": ', r"not valid JSON"),
    ],
)
def test_from_json_structure_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        Config.from_json(text)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("audio", "sample_rate", 22050.5),
        ("audio", "sample_rate", "22050"),
        ("audio", "clip_seconds", "3"),
        ("audio", "clip_seconds", True),
        ("audio", "pad_mode", 0),
        ("features", "n_mels", 128.0),
        ("features", "fmax", "8000"),
        ("train", "batch_size", None),
        ("train", "seed", [0]),
        ("augment", "deformations", "pitch_shift_2"),
        ("augment", "deformations", [1]),
    ],
)
def test_wrong_type_names_key(section, key, value):
    text = json.dumps({section: {key: value}})
    with pytest.raises(ConfigError, match=rf"{section}\.{key} must be"):
        Config.from_json(text)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("audio", "sample_rate", 0),
        ("audio", "clip_seconds", 0),
        ("audio", "clip_seconds", -3.0),
        ("audio", "pad_mode", "reflect"),
        ("features", "n_fft", 0),
        ("features", "win_length", 0),
        ("features", "win_length", 2048),  # > n_fft
        ("features", "hop_length", 0),
        ("features", "n_mels", 0),
        ("features", "n_frames", 0),
        ("features", "n_frames", 129),  # a 3 s clip gives only 128 frames
        ("features", "fmin", -1.0),
        ("features", "fmax", 20000.0),  # above Nyquist at 22,050 Hz
        ("features", "top_db", 0.0),
        ("features", "amin", 0.0),
        ("train", "epochs", 0),
        ("train", "patience", 0),
        ("train", "batch_size", 0),
        ("train", "learning_rate", 0.0),
        ("train", "learning_rate", -0.1),
        ("train", "optimizer", "rmsprop"),
        ("train", "schedule", "step"),
        ("train", "validation", "random"),
        ("train", "weight_decay", -1e-4),
        ("train", "normalize", "global"),
        ("train", "model", "resnet"),
        ("train", "seed", -1),
    ],
)
def test_bad_range_names_key(section, key, value):
    with pytest.raises(ConfigError, match=rf"{section}\.{key}"):
        Config().override(**{f"{section}.{key}": value})


def test_unknown_deformation():
    with pytest.raises(ConfigError, match=r"unknown deformation 'reverb'"):
        Config.from_json('{"augment": {"deformations": ["pitch_shift_2", "reverb"]}}')


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("key", ["audio.clip_seconds", "train.learning_rate", "features.fmax"])
def test_non_finite_numbers_rejected(literal, key):
    # Python's json accepts these non-standard literals; the config must not.
    section, name = key.split(".")
    text = f'{{"{section}": {{"{name}": {literal}}}}}'
    with pytest.raises(ConfigError, match=rf"{section}\.{name} must be a finite number"):
        Config.from_json(text)


# ---------------------------------------------------------------------------
# Nothing is ever evaluated
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "audio.sample_rate",
        "audio.pad_mode",
        "features.n_mels",
        "features.fmax",
        "train.epochs",
        "train.model",
        "train.optimizer",
        "train.normalize",
    ],
)
def test_python_code_in_json_is_not_evaluated(tmp_path, key):
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{section}\.{name}"):
        Config.from_json(json.dumps({section: {name: code}}))
    assert not marker.exists()


def test_python_code_as_deformation_is_a_string_not_code(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ConfigError, match="unknown deformation") as info:
        Config.from_json(json.dumps({"augment": {"deformations": [code]}}))
    assert "__import__" in str(info.value)  # kept verbatim, as text
    assert not marker.exists()


def test_python_code_as_section_name():
    with pytest.raises(ConfigError, match="unknown configuration section"):
        Config.from_json(json.dumps({"__import__('os').getcwd()": {}}))


# ---------------------------------------------------------------------------
# fingerprint and demo_config
# ---------------------------------------------------------------------------


def test_fingerprint():
    base = Config().fingerprint()
    assert len(base) == 12 and int(base, 16) >= 0
    assert Config().fingerprint() == base
    assert Config.from_json(Config().to_json()).fingerprint() == base
    changed = {
        Config().override(**{k: v}).fingerprint()
        for k, v in [
            ("train.epochs", 49),
            ("train.seed", 1),
            ("audio.pad_mode", "zeros"),
            ("features.top_db", 60.0),
            ("augment.deformations", ("drc_film_standard",)),
        ]
    }
    assert len(changed) == 5 and base not in changed


def test_demo_config_differs_only_in_train_schedule_and_members():
    default, demo = Config().flat(), demo_config().flat()
    diff = {k for k in default if default[k] != demo[k]}
    assert diff <= {"train.epochs", "train.patience", "train.batch_size", "train.ensemble"}
    assert "train.epochs" in diff
    # the default recipe averages 3 models per fold; the demo trains one (make run ≤ 10 min)
    assert (default["train.ensemble"], demo["train.ensemble"]) == (3, 1)
    assert demo["train.epochs"] < default["train.epochs"]
    assert demo["train.patience"] < demo["train.epochs"]
    assert demo_config() == demo_config()
