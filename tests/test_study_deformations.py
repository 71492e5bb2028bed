"""``urbansound study deformations``: the deformation ablation.  The delta and policy
rule on hand-made numbers, the spec and its compiled pipeline, ``--set KEY=@FILE``, and
one small ablation end to end with the check that no test fold chose the policy."""

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

from urbansound.ablation import (
    DELTAS_CSV,
    HEATMAP_FILE,
    POLICY_FILE,
    RECORD_FILE,
    TEST_FILE,
    choose_policy,
    per_class_entries,
    pooled_counts,
    recall_deltas,
    write_ablation,
)
from urbansound.config import Config, config_for, demo_config
from urbansound.deformations import DEFORMATION_FAMILIES, SALAMON_BELLO_DEFORMATIONS
from urbansound.study import (
    Study,
    StudySpecError,
    deformations_spec,
    resolve,
    spec_from_name_or_file,
)

CLASSES = ("dog_bark", "siren", "drilling")


def _quick(model):
    return demo_config(model, "quick")


# ------------------------------------------------------------ the rule, by hand -------


def test_counts_pool_every_training_s_validation_predictions():
    counts = pooled_counts([([0, 0, 1], [0, 1, 1]), ([0, 2], [0, 0])], CLASSES)
    assert counts == {"dog_bark": [2, 3], "siren": [1, 1], "drilling": [0, 1]}


def test_deltas_and_the_policy_follow_the_rule():
    baseline = {"dog_bark": [5, 10], "siren": [8, 10], "drilling": [0, 0]}
    families = {
        "time_stretch": {"dog_bark": [7, 10], "siren": [8, 10], "drilling": [0, 0]},
        "drc": {"dog_bark": [6, 10], "siren": [6, 10], "drilling": [0, 0]},
    }
    deltas = recall_deltas(baseline, families)
    assert deltas["dog_bark"] == pytest.approx({"time_stretch": 0.2, "drc": 0.1})
    assert deltas["siren"] == pytest.approx({"time_stretch": 0.0, "drc": -0.2})
    assert deltas["drilling"] == {"time_stretch": None, "drc": None}  # no validation clip
    # > 0: both families help dog_bark; a tie is not a gain; no clip, no evidence
    assert choose_policy(deltas) == {
        "dog_bark": ("time_stretch", "drc"),
        "siren": (),
        "drilling": (),
    }
    assert choose_policy(deltas, margin=0.15) == {
        "dog_bark": ("time_stretch",),
        "siren": (),
        "drilling": (),
    }


def test_a_tie_in_float_arithmetic_is_not_a_gain():
    deltas = recall_deltas({"siren": [1, 3]}, {"drc": {"siren": [1, 3]}})
    assert choose_policy(deltas) == {"siren": ()}
    deltas = {"siren": {"drc": (0.1 + 0.2) - 0.3}}  # 5.6e-17: float noise
    assert choose_policy(deltas) == {"siren": ()}


def test_the_policy_is_per_class_entries_the_configuration_accepts():
    policy = {"dog_bark": ("time_stretch", "drc"), "siren": (), "drilling": ("pitch_shift_2",)}
    entries = per_class_entries(policy)
    assert entries[0] == "dog_bark=" + ",".join(
        DEFORMATION_FAMILIES["time_stretch"] + DEFORMATION_FAMILIES["drc"]
    )
    assert entries[1] == "siren="
    config = Config().override(
        **{"data.class_names": list(CLASSES), "augment.per_class": list(entries)}
    )
    assert config.augment.all_deformations() == (
        DEFORMATION_FAMILIES["time_stretch"]
        + DEFORMATION_FAMILIES["drc"]
        + DEFORMATION_FAMILIES["pitch_shift_2"]
    )


def _source(test_fold, validation_fold, train_folds):
    return {
        "configuration": "x",
        "test_fold": test_fold,
        "validation_fold": validation_fold,
        "train_folds": train_folds,
    }


def test_write_ablation_writes_the_table_heatmap_policy_and_record(tmp_path):
    baseline = {"dog_bark": [1, 2], "siren": [2, 2], "drilling": [0, 2]}
    families = {f: dict(baseline) for f in DEFORMATION_FAMILIES}
    families["drc"] = {"dog_bark": [2, 2], "siren": [1, 2], "drilling": [1, 2]}
    record = write_ablation(
        tmp_path,
        model="sb-cnn",
        class_names=CLASSES,
        baseline=baseline,
        families=families,
        sources=[_source(1, 3, [2, 4])],
    )
    assert record["policy"] == {"dog_bark": ["drc"], "siren": [], "drilling": ["drc"]}
    assert json.loads((tmp_path / POLICY_FILE).read_text()) == record["per_class"]
    csv_lines = (tmp_path / DELTAS_CSV).read_text().splitlines()
    assert csv_lines[0].split(",") == ["class", "recall_none", *DEFORMATION_FAMILIES, "chosen"]
    assert csv_lines[1] == "dog_bark,0.500,+0.000,+0.000,+0.000,+0.500,+0.000,drc"
    assert (tmp_path / HEATMAP_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / RECORD_FILE).read_text())["sources"][0]["validation_fold"] == 3


@pytest.mark.parametrize(
    "source", [_source(1, None, [2, 3]), _source(1, 1, [2, 3]), _source(1, 2, [2, 3])]
)
def test_a_training_without_a_validation_fold_apart_is_refused(tmp_path, source):
    counts = {"siren": [1, 1]}
    with pytest.raises(ValueError, match="no validation fold apart"):
        write_ablation(
            tmp_path,
            model="m",
            class_names=["siren"],
            baseline=counts,
            families={"drc": counts},
            sources=[source],
        )


# ------------------------------------------------------------ the spec ---------------


def test_the_spec_is_none_each_family_and_all_with_a_validation_fold():
    study = resolve(spec_from_name_or_file("deformations", ["sb-cnn"]), config_for)
    names = [c.name for c in study.configurations]
    assert names == [
        "sb-cnn",
        *(f"sb-cnn + {f}" for f in DEFORMATION_FAMILIES),
        "sb-cnn + all deformations",
    ]
    assert all(c.config.train.validation == "fold" for c in study.configurations)
    (ablation,) = study.ablations
    assert study.configurations[ablation.baseline].config.augment.deformations == ()
    for family, i in ablation.families:
        assert study.configurations[i].config.augment.deformations == DEFORMATION_FAMILIES[family]
    everything = study.configurations[ablation.everything].config
    assert everything.augment.deformations == SALAMON_BELLO_DEFORMATIONS
    # the policy's configuration: the same recipe, its deformations filled in at run time
    template = ablation.policy.config
    assert template.augment.all_deformations() == ()
    assert template.train == everything.train
    assert ablation.policy.slug not in {c.slug for c in study.configurations}
    assert Study.from_json(study.to_json()) == study


def test_the_spec_takes_several_models_and_refuses_no_validation_fold():
    study = resolve(deformations_spec(["sb-cnn", "improved"]), _quick)
    assert [a.model for a in study.ablations] == ["sb-cnn", "improved"]
    assert len(study.configurations) == 2 * (2 + len(DEFORMATION_FAMILIES))
    with pytest.raises(StudySpecError, match="train.validation must be 'fold'"):
        resolve(
            deformations_spec(["sb-cnn"]),
            _quick,
            lambda c: c.override(**{"train.validation": "none"}),
        )
    with pytest.raises(StudySpecError, match="not both"):
        spec_from_name_or_file("table1", ["sb-cnn"])


def test_set_reads_a_policy_file(tmp_path):
    from urbansound.pipeline.commands.options import setting

    path = tmp_path / POLICY_FILE
    path.write_text(json.dumps(["siren=drc_radio", "dog_bark="]) + "\n")
    key, value = setting(f"augment.per_class=@{path}")
    assert (key, value) == ("augment.per_class", ["siren=drc_radio", "dog_bark="])
    assert Config().override(**{key: value}).augment.all_deformations() == ("drc_radio",)
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="cannot read"):
        setting(f"augment.per_class=@{tmp_path / 'missing.json'}")


def test_dry_run_counts_the_policy_s_trainings(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    argv = ["study", "deformations", "--profile", "quick", "--dry-run", "--out", str(tmp_path)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "32 trainings (8 configurations × 4 test folds" in text
    assert "per-class policy" in text


# ------------------------------------------------------------ the compiled pipeline ---


def test_compiled_ablation_feeds_the_policy_into_its_configuration(tmp_path):
    from urbansound.pipeline.study import compile_study

    study = resolve(deformations_spec(["sb-cnn"]), config_for)
    path = compile_study(tmp_path / "ablation.yaml", study)
    spec = yaml.safe_load(Path(path).read_text())
    tasks, home = {}, {}
    for comp_name, comp in spec["components"].items():
        for name, task in comp.get("dag", {}).get("tasks", {}).items():
            tasks[name], home[name] = task, comp_name
    policy = tasks["deformation-policy-component"]
    rows = policy["inputs"]["parameters"]["rows"]["runtimeValue"]["constant"]
    assert len(rows) == 1 + len(DEFORMATION_FAMILIES)  # none + each family, not "all"
    # the policy's configuration is computed: its features and its MLflow run read it
    readers = sorted(
        name.rsplit("-component", 1)[0]
        for name, task in tasks.items()
        if task.get("inputs", {})
        .get("parameters", {})
        .get("config_json", {})
        .get("taskOutputParameter", {})
        .get("producerTask")
        == "deformation-policy-component"
    )
    assert readers == ["features", "start-configuration"]
    loops = [t for t in tasks.values() if "parameterIterator" in t]
    assert len(loops) == 8  # 7 configurations and the policy's
    # its fold loop and the comparison after it run inside a condition on the policy
    assert home["compare-study-component"].startswith("comp-condition")
    (condition,) = [n for n in tasks if n.startswith("condition")]
    assert "deformation-policy-component" in json.dumps(tasks[condition])


# ------------------------------------------------------------ end to end --------------


@pytest.fixture(scope="module")
def finished_ablation(tmp_path_factory):
    """The ablation of `improved` (quick: 2 epochs) on 3 folds × 2 clips per class of
    the built-in data, test fold 1: 8 trainings."""
    import time

    from urbansound.demo_data import write_demo_dataset
    from urbansound.pipeline.cli import main

    work = tmp_path_factory.mktemp("ablation")
    write_demo_dataset(work / "demo", folds=(1, 2, 3), clips_per_class=2, seed=1)
    argv = [
        "study",
        "deformations",
        "--models",
        "improved",
        "--profile",
        "quick",
        "--folds",
        "1",
        "--data",
        str(work / "demo"),
        "--out",
        str(work / "out"),
        "--tracking-uri",
        f"sqlite:///{work / 'mlflow.db'}",
    ]
    stdout = io.StringIO()
    started = time.time()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    print(f"study deformations took {time.time() - started:.0f} s")
    return work, code, stdout.getvalue()


def _one(root: Path, pattern: str) -> Path:
    run_dir = min(p for p in root.iterdir() if p.name.startswith("urbansound-study-"))
    (found,) = run_dir.glob(pattern)
    return found


@pytest.mark.e2e
def test_ablation_writes_the_heatmap_the_policy_and_its_test_accuracy(finished_ablation):
    work, code, text = finished_ablation
    assert code == 0, text
    assert "8 trainings (8 configurations × 1 test folds 1)" in text
    root = work / "out" / "pipeline_root"
    folder = _one(root, "deformation-policy-component/ablation")
    assert (folder / HEATMAP_FILE).read_bytes()[:4] == b"\x89PNG"
    policy = json.loads((folder / POLICY_FILE).read_text())
    record = json.loads((folder / RECORD_FILE).read_text())
    assert policy == record["per_class"] and len(policy) == len(record["class_names"])
    assert f"--set augment.per_class=@{folder / POLICY_FILE}" in text
    # the policy's configuration (the one training with per-class entries) had exactly it
    run_dir = min(p for p in root.iterdir() if p.name.startswith("urbansound-study-"))
    configs = [Config.from_json(p.read_text()) for p in run_dir.glob("*/train-*/*/config.json")]
    assert len(configs) == 8
    (trained,) = [c for c in configs if c.augment.per_class]
    assert trained.augment.per_class == tuple(policy)
    comparison = _one(root, "compare-study-component/comparison")
    side_by_side = (comparison / TEST_FILE).read_text()
    for name in ("improved ", "improved + all deformations", "improved + per-class policy"):
        assert name in side_by_side and name in text


@pytest.mark.e2e
def test_no_test_fold_chose_the_policy(finished_ablation):
    from urbansound.training import FoldResult

    work, code, _ = finished_ablation
    assert code == 0
    root = work / "out" / "pipeline_root"
    record = json.loads(
        (_one(root, "deformation-policy-component/ablation") / RECORD_FILE).read_text()
    )
    sources = record["sources"]
    assert len(sources) == 1 + len(DEFORMATION_FAMILIES)  # none + each family, test fold 1
    for s in sources:
        assert s["validation_fold"] not in (None, s["test_fold"], *s["train_folds"]), s
        assert s["n_validation"] > 0
    # the recorded counts are those of the trainings' validation predictions, not the test's
    run_dir = min(p for p in root.iterdir() if p.name.startswith("urbansound-study-"))
    results = {}
    for path in run_dir.glob("*/train-*/*/fold_result.json"):
        result = FoldResult.from_json(path.read_text())
        config = Config.from_json((path.parent / "config.json").read_text())
        if not config.augment.per_class:  # not the policy's own training
            results[config.augment.deformations] = result
    assert len(results) == 2 + len(DEFORMATION_FAMILIES)
    baseline = results[()]
    assert baseline.validation_fold != baseline.test_fold
    counts = pooled_counts(
        [(baseline.validation_y_true, baseline.validation_y_pred)], record["class_names"]
    )
    assert record["validation_counts"]["none"] == counts
    for family, names in DEFORMATION_FAMILIES.items():
        r = results[names]
        assert record["validation_counts"][family] == pooled_counts(
            [(r.validation_y_true, r.validation_y_pred)], record["class_names"]
        )
