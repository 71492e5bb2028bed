"""Class names cannot break tracking: every class gets its own metric key, the full list
and configuration are artifacts (nothing read back from a param MLflow may cut), and a
message quotes at most the start of a long value."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_clip_result

from urbansound.config import Config, ConfigError


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _artifact(client, run_id, name, tmp_path):
    return json.loads(
        open(client.download_artifacts(run_id, name, str(tmp_path)), encoding="utf-8").read()
    )


@pytest.mark.parametrize(
    "names",
    [
        ["dog🐕", "dog🐈", "dog"],  # characters MLflow cannot keep
        ["Dog", "dog", "DOG"],  # case only
        ["car (horn)", "car [horn]", "car_(horn)", "car{horn}"],  # punctuation
        ["a b", "a  b", "a\tb"],  # spaces
    ],
)
def test_classes_that_sanitise_alike_get_one_metric_each(uri, tmp_path, names):
    from urbansound.components.runs import class_metric_keys, log_summary, start_parent_run
    from urbansound.components.tracking_store import client

    keys = class_metric_keys(names)
    assert len(set(keys)) == len(names) and list(keys.values()) == names
    run_id = start_parent_run(uri, "key-1", {"train.model": "urbannet"})
    (tmp_path / "eval").mkdir()
    values = [0.1 * (i + 1) for i in range(len(names))]
    log_summary(
        uri,
        run_id,
        {"mean": 0.5, "median": 0.5, "std": 0.0, "per_class": dict(zip(names, values))},
        str(tmp_path / "eval"),
    )
    c = client(uri)
    metrics = c.get_run(run_id).data.metrics
    per_class = {k: v for k, v in metrics.items() if k.startswith("accuracy_class_")}
    assert len(per_class) == len(names)
    logged = _artifact(c, run_id, "class_names.json", tmp_path)
    assert logged["class_names"] == names
    # the artifact says which metric is which class, and each holds that class's accuracy
    assert {logged["metric_keys"][k]: v for k, v in per_class.items()} == pytest.approx(
        dict(zip(names, values))
    )


def test_metric_keys_carry_the_index_and_a_readable_part():
    from urbansound.components.runs import class_metric_keys

    assert list(class_metric_keys(["dog (bark)", "café"])) == [
        "accuracy_class_00_dog _bark_",
        "accuracy_class_01_caf_",
    ]
    many = class_metric_keys([f"c{i}" for i in range(300)])
    assert (
        next(iter(many)) == "accuracy_class_000_c0" and list(many)[-1] == "accuracy_class_299_c299"
    )
    long = class_metric_keys(["x" * 400])
    assert len(next(iter(long))) == len("accuracy_class_00_") + 60


def _names_300():
    return [
        f"class {i:03d} of a very long folder name, with (punctuation) and ünïcode"
        for i in range(300)
    ]


def test_300_long_class_names_are_logged_in_full_and_read_back(uri, tmp_path, capsys):
    """The data.class_names param is a short form (MLflow would cut it at 6,000 characters);
    config.json has the list in full, and predict runs:/..., register and train-final
    --from-run read it back unchanged."""
    import keras

    from urbansound.components import runs
    from urbansound.components.fold_logging import log_fold_result
    from urbansound.components.tracking_store import client
    from urbansound.pipeline.model_source import load_model
    from urbansound.pipeline.registry import register, run_settings

    names = _names_300()
    assert len(json.dumps(names)) > 6000
    config = Config().override(**{"data.class_names": names})
    parent = runs.start_parent_run(uri, "key-300", config.flat(), config=config)
    fold = runs.start_fold_run(uri, parent, 1, config.flat(), config=config)
    c = client(uri)
    for run_id in (parent, fold):
        param = c.get_run(run_id).data.params["data.class_names"]
        assert len(param) <= runs.PARAM_TEXT_LIMIT
        assert param.endswith("characters; in full in config.json)")
        assert Config.from_json(json.dumps(_artifact(c, run_id, "config.json", tmp_path))) == config
        assert runs.run_config(c, run_id)[0].class_names == tuple(names)

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(
        inputs, keras.layers.Dense(300, activation="softmax")(keras.layers.Flatten()(inputs))
    )
    model_file = tmp_path / "model" / "model.keras"
    model_file.parent.mkdir()
    model.save(model_file)
    result = one_clip_result(300, class_names=names)
    log_fold_result(uri, fold, result, str(model_file))
    assert _artifact(c, fold, "class_names.json", tmp_path)["class_names"] == names

    loaded = load_model(f"runs:/{fold}/model", tracking_uri=uri)
    assert loaded.config.class_names == tuple(names)
    assert loaded.config_source == f"the params of run {fold} (in full from its config.json)"
    done = register(parent, "names-300", tracking_uri=uri)
    assert done.run_id == fold
    config_back, _, _ = run_settings(parent, uri)
    assert config_back.class_names == tuple(names) and config_back == config


def _old_run(uri, params):
    """A run logged before config.json: params only, as MLflow stored them."""
    from mlflow.entities import Param

    from urbansound.components.runs import experiment_id
    from urbansound.components.tracking_store import client

    c = client(uri)
    run_id = c.create_run(experiment_id(c, uri)).info.run_id
    c.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    return run_id


def test_old_runs_with_a_parseable_param_still_read(uri):
    from urbansound.components.runs import run_config
    from urbansound.components.tracking_store import client

    run_id = _old_run(uri, {"audio.pad_mode": "zeros", "data.class_names": json.dumps(["b", "a"])})
    config, where = run_config(client(uri), run_id)
    assert config.class_names == ("b", "a") and config.audio.pad_mode == "zeros"
    assert where == f"the params of run {run_id}"


def test_a_cut_param_is_one_short_line_naming_it(uri, capsys, tmp_path):
    """A run logged before the fix: MLflow cut data.class_names at 6,000 characters. The
    error quotes the start of it, not 6 KB of JSON."""
    from urbansound.pipeline.cli import main

    cut = json.dumps(_names_300())[:6000]
    run_id = _old_run(uri, {"audio.pad_mode": "loop", "data.class_names": cut})
    code = main(
        ["train-final", "--data", str(tmp_path), "--from-run", run_id, "--tracking-uri", uri]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(
        f"urbansound train-final: error: {run_id}: MLflow param data.class_names='[\"class 000"
    )
    assert "(6,000 characters) is not a valid value" in err[0] and len(err[0]) < 250


def test_a_cut_param_is_read_from_class_names_json_when_present(uri):
    from urbansound.components.runs import log_class_names, run_config
    from urbansound.components.tracking_store import client

    names = _names_300()
    run_id = _old_run(uri, {"data.class_names": json.dumps(names)[:6000]})
    log_class_names(client(uri), run_id, names)
    assert run_config(client(uri), run_id)[0].class_names == tuple(names)


def test_long_params_are_shortened_for_the_ui_not_cut():
    from urbansound.components.runs import PARAM_TEXT_LIMIT, param_text

    assert param_text(["a", "b"]) == '["a", "b"]' and param_text(3) == "3"
    short = param_text(_names_300())
    assert len(short) <= PARAM_TEXT_LIMIT and "(300 items, " in short
    assert param_text("p" * 7000).endswith("(7,000 characters; in full in config.json)")


def test_messages_quote_at_most_the_start_of_a_long_value(tmp_path):
    """The same defect elsewhere: messages that quoted a whole list of class names or a
    whole value."""
    from urbansound.config import DataConfig
    from urbansound.deformations import parse_per_class
    from urbansound.demo_data import write_demo_dataset
    from urbansound.evaluation import evaluate_folds
    from urbansound.layouts import scan
    from urbansound.training import FoldResult

    names = _names_300()
    with pytest.raises(ValueError) as bad:
        parse_per_class(("nope=pitch_shift_2",), names)
    assert len(str(bad.value)) < 400 and "(300 names)" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        Config.from_dict({"train": {"epochs": list(range(3000))}})
    assert len(str(bad.value)) < 200 and "characters)" in str(bad.value)

    def result(fold, classes):
        return FoldResult(
            test_fold=fold,
            validation_fold=None,
            train_folds=[],
            test_accuracy=1.0,
            test_loss=0.0,
            y_true=[0],
            y_pred=[0],
            confusion_matrix=np.eye(len(classes), dtype=int).tolist(),
            history={"loss": [0.0], "accuracy": [1.0]},
            best_epoch=1,
            epochs_run=1,
            n_train=1,
            n_validation=0,
            n_test=1,
            parameters=1,
            class_names=classes,
        )

    with pytest.raises(ValueError) as bad:
        evaluate_folds([result(1, names), result(2, names[::-1])], tmp_path / "e", plots=False)
    assert "trained on classes" in str(bad.value) and len(str(bad.value)) < 600

    us8k = tmp_path / "us8k"
    write_demo_dataset(us8k, folds=(1,), clips_per_class=1)
    with pytest.raises(Exception) as bad:
        scan(us8k, DataConfig(class_names=tuple(names)))
    assert "are not UrbanSound8K's ten classes" in str(bad.value)
    assert len(str(bad.value)) < 400 and "(300 names)" in str(bad.value)


def test_a_local_run_or_study_logs_to_the_flag_then_the_environment_then_the_working_dir(
    monkeypatch, tmp_path
):
    from urbansound.pipeline.local_runner import local_tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert local_tracking_uri("") == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team:5000")
    assert local_tracking_uri("") == "http://mlflow.team:5000"
    assert local_tracking_uri("sqlite:///other.db") == "sqlite:///other.db"
