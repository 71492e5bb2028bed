"""The CLI's model options: `urbansound models`, --model with its recipe, --profile, --set."""

from __future__ import annotations

import argparse
import json

import pytest

from urbansound.pipeline.cli import build_parser, main
from urbansound.pipeline.commands.options import config_from_args


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_models_lists_every_model_with_its_parameter_count(capsys):
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"]: r["parameters"] for r in rows} == {
        "urbannet": 669_106,
        "urbannet-large": 1_187_050,
        "sb-cnn": 241_434,
        "improved": 33_949,
        "conv1d": 256_298,
    }
    sb = next(r for r in rows if r["name"] == "sb-cnn")
    assert (sb["optimizer"], sb["epochs"], sb["validation"], sb["study"]) == (
        "sgd",
        50,
        "fold",
        True,
    )
    shapes = {r["name"]: (r["input"], r["input_shape"], r["ensemble"]) for r in rows}
    assert shapes["urbannet"] == ("logmel", [128, 128], 3)
    assert shapes["conv1d"] == ("waveform", [48000], 1)  # 3 s at 16 kHz, not a log-mel
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["model", "parameters", "input"]
    assert "241,434" in text and "validation fold + early stopping" in text
    assert "waveform 48000" in text and "logmel 128×128" in text


def test_model_brings_its_recipe_and_flags_override_it():
    sb = config_from_args(parse("run", "--model", "sb-cnn"), demo=False).train
    assert (sb.model, sb.optimizer, sb.learning_rate, sb.epochs, sb.validation) == (
        "sb-cnn",
        "sgd",
        0.01,
        50,
        "fold",
    )
    mine = config_from_args(
        parse("run", "--model", "sb-cnn", "--optimizer", "adam", "--epochs", "7"), demo=False
    ).train
    assert (mine.optimizer, mine.epochs, mine.learning_rate) == ("adam", 7, 0.01)
    default = config_from_args(parse("run"), demo=False).train
    assert (default.model, default.optimizer, default.schedule) == (
        "urbannet",
        "adamw",
        "one_cycle",
    )


def test_profiles_from_the_command_line():
    study = config_from_args(parse("run", "--profile", "study"), demo=False).train
    assert (study.model, study.validation, study.patience) == ("urbannet", "fold", 15)
    quick = config_from_args(
        parse("run", "--model", "improved", "--profile", "quick"), demo=True
    ).train
    assert (quick.epochs, quick.optimizer) == (2, "adam")
    demo = config_from_args(parse("run"), demo=True).train
    assert demo.epochs == 15 and demo.model == "urbannet"


def test_set_reaches_any_configuration_value():
    config = config_from_args(
        parse(
            "run",
            "--set",
            "train.weight_decay=0.001",
            "--set",
            "audio.pad_mode=zeros",
            "--set",
            'augment.deformations=["pitch_shift_2"]',
            "--set",
            "features.fmax=8000",
        ),
        demo=False,
    )
    assert config.train.weight_decay == 0.001
    assert config.audio.pad_mode == "zeros"
    assert config.augment.deformations == ("pitch_shift_2",)
    assert config.features.fmax == 8000.0
    # dedicated flags win over --set
    config = config_from_args(parse("run", "--set", "train.epochs=9", "--epochs", "3"), demo=False)
    assert config.train.epochs == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--set", "train.epochs"], "--set takes section.key=value"),
        (["run", "--set", "epochs=3"], "--set takes section.key=value"),
    ],
)
def test_set_malformed_is_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "train.epoch=3"], "unknown configuration key 'train.epoch'"),
        (["--set", "train.epochs=three"], "train.epochs must be of type int"),
        (["--set", "train.schedule=step"], "train.schedule must be one of"),
        (
            ["--model", "vgg"],
            "train.model must be one of ['urbannet', 'urbannet-large', 'sb-cnn', "
            "'improved', 'conv1d'], not 'vgg'",
        ),
    ],
)
def test_bad_settings_exit_2_with_one_line(argv, message, capsys, tmp_path):
    code = main(["run", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written before the configuration is valid


def test_submit_takes_the_same_training_options():
    args = parse(
        "submit",
        "--host",
        "http://kfp",
        "--data",
        "/mnt/us8k",
        "--model",
        "improved",
        "--profile",
        "quick",
        "--set",
        "train.seed=4",
    )
    train = config_from_args(args, demo=False).train
    assert (train.model, train.epochs, train.seed) == ("improved", 2, 4)


def test_set_value_parsing():
    from urbansound.pipeline.commands.options import setting

    assert setting("train.epochs=5") == ("train.epochs", 5)
    assert setting("features.fmax=null") == ("features.fmax", None)
    assert setting("audio.pad_mode=zeros") == ("audio.pad_mode", "zeros")
    with pytest.raises(argparse.ArgumentTypeError):
        setting("nokey")


def test_seeds_option():
    train = config_from_args(parse("run", "--seeds", "3,1,2"), demo=False).train
    assert train.seeds == (3, 1, 2)
    assert config_from_args(parse("run"), demo=False).train.seeds == ()


@pytest.mark.parametrize("text", ["1", "1,1", "a,b", "-1,2"])
def test_seeds_option_refuses(text, capsys):
    with pytest.raises(SystemExit):
        parse("run", f"--seeds={text}")
    assert "--seeds takes" in capsys.readouterr().err
