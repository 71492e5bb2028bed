"""What a person sees in the MLflow UI: the experiment opens on the runs table, runs are
named for what they are, and the data is a dataset input."""

from __future__ import annotations

import json

import pytest

from urbansound.config import Config, config_for


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_experiment_is_tagged_for_the_model_training_view(uri):
    from urbansound.components import runs, tracking_store

    c = tracking_store.client(uri)
    exp = runs.experiment_id(c, uri)
    assert c.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
    # an experiment made before the tag existed gets it
    c.delete_experiment_tag(exp, "mlflow.experimentKind")
    assert runs.experiment_id(c, uri) == exp
    assert c.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.parametrize(
    "config, data, name",
    [
        # the default recipe averages 3 seeds per fold
        (Config(), "/data/UrbanSound8K/", "urbannet · no augmentation · 3 seeds · UrbanSound8K"),
        (
            config_for("sb-cnn").override(
                **{
                    "augment.deformations": (
                        "time_stretch_1.23",
                        "pitch_shift_2",
                        "drc_film_standard",
                        "background_noise_workers",
                    )
                }
            ),
            "/d/us8k",
            "sb-cnn · study · us8k",
        ),
        (
            Config().override(
                **{"augment.deformations": ("pitch_shift_2", "drc_radio"), "train.seeds": (1, 2, 3)}
            ),
            "demo-data",
            "urbannet · pitch_shift_2+drc_radio · 3 seeds · demo-data",
        ),
    ],
)
def test_parent_runs_are_named_for_what_they_are(config, data, name):
    from urbansound.components.runs import parent_run_name

    assert parent_run_name(config, data) == name


def test_the_data_is_a_dataset_input_logged_once(uri, tmp_path):
    from urbansound.components import runs, tracking_store

    run_id = runs.start_parent_run(
        uri, "key-1", {"train.model": "urbannet"}, run_name="urbannet · no augmentation · us8k"
    )
    report = tmp_path / "report.json"
    report.write_text("[]")
    for _ in range(2):  # a resumed ingest does not add a second input
        runs.log_ingest(uri, run_id, "ab" * 32, 1861, 20, str(report), data_root="/data/us8k")
    run = tracking_store.client(uri).get_run(run_id)
    assert run.info.run_name == "urbannet · no augmentation · us8k"
    (entry,) = run.inputs.dataset_inputs
    assert entry.dataset.name == "us8k" and entry.dataset.digest == "ab" * 8
    assert json.loads(entry.dataset.profile) == {"clips": 1861, "rejected": 20}
    assert json.loads(entry.dataset.source) == {"uri": "/data/us8k"}
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "training"}


def test_ui_address_opens_the_runs_table(uri, tmp_path):
    from urbansound.components import runs, tracking_store
    from urbansound.pipeline.commands.ui import ui_address

    assert ui_address(uri, "127.0.0.1", 5000) == "http://127.0.0.1:5000"  # no store: no file made
    assert not (tmp_path / "mlflow.db").exists()
    exp = runs.experiment_id(tracking_store.client(uri), uri)
    assert ui_address(uri, "127.0.0.1", 5001) == (
        f"http://127.0.0.1:5001/#/experiments/{exp}/runs?workflowType=machine_learning"
        f"&viewStateShareKey=accuracy"
    )
    tags = tracking_store.client(uri).get_experiment(exp).tags
    assert json.loads(tags["mlflow.sharedViewState.accuracy"])["selectedColumns"][0] == (
        "metrics.`accuracy_mean`"
    )
