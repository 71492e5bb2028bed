"""``urbansound train-final``: one model trained on every fold, logged to MLflow and
registered; the library function behind it (:func:`urbansound.training.train_final`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("mlflow")

from urbansound.config import config_for
from urbansound.demo_data import write_demo_dataset
from urbansound.training import (
    CONFIG_FILE,
    FINAL_RESULT_FILE,
    MODEL_FILE,
    train_final,
)

N_CLASSES = 10


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("final") / "demo"
    write_demo_dataset(root, folds=(1, 2), clips_per_class=1, seed=5)
    return root


@pytest.fixture(scope="module")
def features(demo, tmp_path_factory):
    from urbansound.beam_features import default_beam_args, run_features
    from urbansound.ingest import ingest

    out = tmp_path_factory.mktemp("final-features")
    config = config_for("improved", "quick")
    ingest(demo, out / "waveforms", config=config)
    run_features(
        str(out / "waveforms"), str(out / "features"), config=config, beam_args=default_beam_args()
    )
    return out / "features", config


def test_train_final_trains_on_every_fold_and_writes_model(features, tmp_path):
    import keras

    feature_dir, config = features
    result = train_final(feature_dir, [1, 2], config=config, out_dir=tmp_path)
    # two folds of one clip per class, no deformations: every clip trains
    assert result["folds"] == [1, 2]
    assert result["n_train"] == result["n_clips"] == 2 * N_CLASSES
    assert result["epochs"] == config.train.epochs == len(result["history"]["loss"])
    assert result["parameters"] == 33949
    assert "val_accuracy" not in result["history"]
    assert json.loads((tmp_path / FINAL_RESULT_FILE).read_text()) == result
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["train"]["model"] == "improved"
    model = keras.models.load_model(tmp_path / MODEL_FILE)
    assert model.output_shape == (None, N_CLASSES)


def test_streamed_train_final_counts_the_same_clips(features, tmp_path):
    feature_dir, config = features
    streamed = config.override(**{"train.input": "stream"})
    result = train_final(feature_dir, [1, 2], config=streamed, out_dir=tmp_path)
    # the streamed set counts its originals in the scan that counts its examples
    assert result["n_train"] == result["n_clips"] == 2 * N_CLASSES


def test_train_final_refuses_a_fold_without_records(features, tmp_path):
    feature_dir, config = features
    with pytest.raises(FileNotFoundError, match="fold 3"):
        train_final(feature_dir, [1, 3], config=config, out_dir=tmp_path)


def test_cli_train_final_registers_a_model_that_predicts(demo, tmp_path, capsys):
    import mlflow
    import pandas as pd

    from urbansound.pipeline.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(
        [
            "train-final",
            "--data",
            str(demo),
            "--model",
            "improved",
            "--profile",
            "quick",
            "--name",
            "demo",
            "--alias",
            "champion",
            "--out",
            str(tmp_path / "final"),
            "--tracking-uri",
            uri,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "models:/demo@champion"
    assert "no accuracy of its own" in out
    assert "20 examples (20 clips)" in out
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version_by_alias("demo", "champion")
    assert version.tags["urbansound.kind"] == "final"
    run = client.get_run(version.run_id)
    assert run.data.tags["urbansound.kind"] == "final"
    assert run.data.params["train.model"] == "improved"
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/demo@champion")
    clip = sorted((demo / "audio" / "fold1").glob("*.wav"))[0]
    predicted = model.predict(pd.DataFrame({"path": [str(clip)]}))
    assert len(predicted) == 1
    probabilities = predicted.iloc[0][list(config_for("improved").class_names)].to_numpy(float)
    assert probabilities.shape == (N_CLASSES,) and abs(probabilities.sum() - 1) < 1e-4
    assert predicted.iloc[0]["class"] in config_for("improved").class_names


def test_cli_train_final_unknown_run_is_one_line(demo, tmp_path, capsys):
    import mlflow

    from urbansound.pipeline.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # an existing, empty store
    capsys.readouterr()  # the store's creation may log (MLflow's schema migrations)
    code = main(
        [
            "train-final",
            "--data",
            str(demo),
            "--from-run",
            "0123abcd",
            "--tracking-uri",
            uri,
            "--out",
            str(tmp_path / "final"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"urbansound train-final: error: 0123abcd: no such run in {uri}"
    assert not (tmp_path / "final").exists()


def _cross_validated_run(client, artifacts: Path) -> str:
    """A validation-fold pipeline run (improved, quick, 5 epochs, batch size 4) whose folds
    stopped at epochs 1, 3 and 2; its id.  Artifacts in ``artifacts`` (MLflow's default
    would be ./mlruns in the tests' working folder)."""
    from urbansound.components.runs import log_params

    experiment = client.create_experiment("urbansound", artifact_location=artifacts.as_uri())
    config = config_for("improved", "quick").override(
        **{"train.validation": "fold", "train.epochs": 5, "train.batch_size": 4}
    )
    parent = client.create_run(experiment).info.run_id
    log_params(client, parent, config.flat())
    for fold, best in ((1, 1), (2, 3), (3, 2)):
        child = client.create_run(
            experiment, tags={"mlflow.parentRunId": parent, "fold": str(fold)}
        ).info.run_id
        client.log_metric(child, "best_epoch", best)
    return parent


def test_cli_from_run_takes_its_settings_and_median_best_epoch(demo, tmp_path, capsys):
    """A validation-fold run's folds stopped at epochs 1, 3 and 2: the final model trains
    for their median, 2, not the recipe's 5, with the run's model and batch size."""
    import mlflow

    from urbansound.pipeline.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    parent = _cross_validated_run(client, tmp_path / "mlartifacts")
    code = main(
        [
            "train-final",
            "--data",
            str(demo),
            "--from-run",
            parent,
            "--out",
            str(tmp_path / "final"),
            "--tracking-uri",
            uri,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"epochs: 2 (the median best epoch of run {parent}'s folds)" in out
    assert f"cross-validated run's ({parent})" in out
    result = json.loads((tmp_path / "final" / "model" / FINAL_RESULT_FILE).read_text())
    assert result["epochs"] == 2 and result["n_train"] == 2 * N_CLASSES
    run_id = out.strip().splitlines()[-1].removeprefix("runs:/").removesuffix("/model")
    run = client.get_run(run_id)
    assert run.data.tags["urbansound.from_run"] == parent
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["train.batch_size"] == "4"
    assert run.data.params["train.model"] == "improved"


def test_cli_from_run_applies_every_option_given_over_the_run(demo, tmp_path, capsys):
    """--batch-size, --learning-rate and --optimizer given with --from-run are trained with
    and logged, not dropped; the run's other values (model, validation) stay."""
    import mlflow

    from urbansound.pipeline.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    parent = _cross_validated_run(client, tmp_path / "mlartifacts")
    code = main(
        [
            "train-final",
            "--data",
            str(demo),
            "--from-run",
            parent,
            "--batch-size",
            "8",
            "--learning-rate",
            "0.005",
            "--optimizer",
            "sgd",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "final"),
            "--tracking-uri",
            uri,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "epochs: 1 (--epochs)" in out
    run_id = out.strip().splitlines()[-1].removeprefix("runs:/").removesuffix("/model")
    params = client.get_run(run_id).data.params
    assert (
        params["train.batch_size"],
        params["train.learning_rate"],
        params["train.optimizer"],
        params["train.epochs"],
    ) == ("8", "0.005", "sgd", "1")
    assert (params["train.model"], params["train.validation"]) == ("improved", "fold")
    trained = json.loads((tmp_path / "final" / "model" / CONFIG_FILE).read_text())["train"]
    assert (trained["batch_size"], trained["learning_rate"], trained["optimizer"]) == (
        8,
        0.005,
        "sgd",
    )


@pytest.mark.parametrize("flag", [["--model", "sb-cnn"], ["--profile", "study"]])
def test_cli_from_run_refuses_another_recipe(flag, demo, tmp_path, capsys):
    """--model/--profile would replace the run's whole recipe, not one value: one line,
    exit 2, before the store is read or anything written."""
    from urbansound.pipeline.cli import main

    code = main(
        [
            "train-final",
            "--data",
            str(demo),
            "--from-run",
            "0123abcd",
            *flag,
            "--out",
            str(tmp_path / "final"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"urbansound train-final: error: {flag[0]} and --from-run: ")
    assert len(err.splitlines()) == 1 and not (tmp_path / "final").exists()
