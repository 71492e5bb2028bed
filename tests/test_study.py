"""``urbansound study``: specs (built-in, TOML, flags), the feature groups, the cost, the
compiled study pipeline's static checks, and one small study run end to end."""

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml
from conftest import refused_in_one_line

from urbansound.config import config_for, demo_config
from urbansound.study import (
    BUILTIN_SPECS,
    StudySpecError,
    estimate_training_seconds,
    feature_groups,
    read_spec_file,
    resolve,
    spec_from_flags,
    spec_from_name_or_file,
)


def _quick(model):
    return demo_config(model, "quick")


# ------------------------------------------------------------------ specs ------------


def test_table1_is_the_study_s_four_rows():
    study = resolve(BUILTIN_SPECS["table1"], config_for)
    rows = [(c.model, c.config.augment.deformations) for c in study.configurations]
    study_set = (
        "time_stretch_1.23",
        "pitch_shift_2",
        "drc_film_standard",
        "background_noise_workers",
    )
    assert rows == [("sb-cnn", ()), ("improved", ()), ("sb-cnn", study_set), ("conv1d", ())]
    assert len({c.slug for c in study.configurations}) == 4
    # each model keeps its own recipe (the registry's)
    assert [c.config.train.optimizer for c in study.configurations] == [
        "sgd",
        "adam",
        "sgd",
        "adamw",
    ]


def test_features_are_shared_by_every_configuration_with_the_same_front_end():
    study = resolve(BUILTIN_SPECS["table1"], _quick)
    groups = {g.slug: g.members for g in feature_groups(study)}
    # sb-cnn and improved read one log-mel stage; the augmented sb-cnn and the waveform
    # model each need their own
    assert groups == {"logmel-plain": (0, 1), "logmel-study": (2,), "waveform-plain": (3,)}
    for g in feature_groups(study):  # every fold that trains under any protocol is deformed
        assert g.config.train.validation == "none"


def test_a_toml_grid_and_rows_resolve_with_their_settings(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'models = ["sb-cnn", "improved"]\naugment = ["none", "drc_film_standard"]\n'
        "seeds = [0, 1]\n"
        '[settings]\n"train.batch_size" = 16\n'
        '[[configuration]]\nmodel = "urbannet"\nlabel = "mine"\n'
        'settings = { "train.epochs" = 3 }\n'
    )
    spec = read_spec_file(path)
    assert spec.name == "mine" and len(spec.entries) == 2 * 2 * 2 + 1
    study = resolve(spec, _quick)
    assert all(c.config.train.batch_size == 16 for c in study.configurations)
    assert [c.config.train.seed for c in study.configurations[:2]] == [0, 1]
    assert "seed 1" in study.configurations[1].name  # several seeds: a row each
    last = study.configurations[-1]
    assert (last.name, last.config.train.epochs) == ("mine", 3)


def test_flags_make_a_grid():
    spec = spec_from_flags(["sb-cnn", "urbannet"], ["none", "study"], None)
    assert [(e.model, e.augment) for e in spec.entries] == [
        ("sb-cnn", "none"),
        ("sb-cnn", "study"),
        ("urbannet", "none"),
        ("urbannet", "study"),
    ]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("models = [", "not valid TOML"),
        ('modles = ["sb-cnn"]', "unknown key 'modles'"),
        ('models = ["resnet"]', "unknown model 'resnet'"),
        ('models = ["sb-cnn"]\naugment = ["study", "reverb"]', "unknown augmentation 'reverb'"),
        ('augment = ["study"]', "give models too"),
        ('name = "empty"', "no configuration"),
        ('models = ["sb-cnn"]\nseeds = [1, 1]', "seeds must be a list of different integers"),
        ('models = ["sb-cnn", "sb-cnn"]', "configuration 2 (sb-cnn + none) is configuration 1"),
        ('[[configuration]]\naugment = "study"', "configuration 1: no model"),
        ('models = ["sb-cnn"]\nsettings = 3', "settings must be a table"),
        ('models = ["sb-cnn"]\n[settings]\n"train.epochs" = "many"', "train.epochs"),
    ],
)
def test_a_bad_spec_file_is_named_with_the_reason(tmp_path, text, reason):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StudySpecError) as raised:
        resolve(read_spec_file(path), config_for)
    message = str(raised.value)
    assert message.startswith(str(path)) and reason in message, message
    assert "\n" not in message


def test_an_unknown_spec_name_is_said_plainly(tmp_path):
    with pytest.raises(StudySpecError, match="no such file, and not a built-in study"):
        spec_from_name_or_file(str(tmp_path / "table2"))
    # `deformations` is made for the models given (tests/test_study_deformations.py)
    assert spec_from_name_or_file("deformations").ablation


def test_the_cost_counts_clips_copies_epochs_and_folds():
    rates = {"sb-cnn": 10.0, "improved": 10.0, "conv1d": 10.0}
    study = resolve(BUILTIN_SPECS["table1"], config_for)
    one = estimate_training_seconds(study, dict.fromkeys(range(1, 11), 100), [1], rates)
    two = estimate_training_seconds(study, dict.fromkeys(range(1, 11), 100), [1, 2], rates)
    assert two == pytest.approx(2 * one)
    # sb-cnn: 800 training clips (8 folds) x 50 epochs x 10 ms; x5 with the 4 deformations
    sb = 800 * 50 * 10 / 1000
    assert one == pytest.approx(sb + 800 * 100 * 10 / 1000 + 5 * sb + 900 * 40 * 10 / 1000)


# ------------------------------------------------------------------ the command ------


def test_help_explains_specs_and_the_grid(capsys):
    from urbansound.pipeline.cli import main

    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    for fragment in (
        "table1",
        "--models",
        "--augment",
        "--seeds",
        "--profile",
        "[[configuration]]",
    ):
        assert fragment in text, fragment


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["study"], ["give a SPEC"]),
        (["study", "table1", "--models", "sb-cnn"], ["not both"]),
        (["study", "--augment", "study"], ["give --models too"]),
        (["study", "--models", "sb-cnn,nope"], ["unknown model 'nope'"]),
    ],
)
def test_bad_arguments_are_one_line(argv, fragments, capsys):
    refused_in_one_line(argv, capsys, *fragments)


def test_a_bad_spec_file_is_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('models = ["sb-cnn"]\naugment = "nosuch"\n')
    refused_in_one_line(["study", path, "--dry-run"], capsys, str(path), "'nosuch'")


def test_dry_run_shows_the_trainings_and_their_cost_and_writes_nothing(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    out = tmp_path / "out"
    code = main(["study", "table1", "--profile", "quick", "--dry-run", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "16 trainings (4 configurations × 4 test folds" in text
    assert "3 features stage(s)" in text and "roughly" in text
    assert not out.exists()


# ------------------------------------------------------------ the compiled study -----

from urbansound.pipeline.pipeline import TASK_RESOURCES, ClusterOptions  # noqa: E402


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from urbansound.pipeline.study import compile_study

    path = tmp_path_factory.mktemp("study") / "study.yaml"
    study = resolve(BUILTIN_SPECS["table1"], config_for)
    # retries asked for explicitly: the default is ClusterOptions' to decide
    cluster = ClusterOptions(retries=2)
    compile_study(path, study, image="registry.example.com/urbansound:test", cluster=cluster)
    return yaml.safe_load(path.read_text())


def _tasks(spec):
    out = {}
    for comp in spec["components"].values():
        out.update(comp.get("dag", {}).get("tasks", {}))
    out.update(spec["root"]["dag"]["tasks"])
    return out


def _kind(executor: str) -> str:
    for prefix, kind in (
        ("exec-start-", "mlflow"),
        ("exec-finish-", "mlflow"),
        ("exec-ingest", "ingest"),
        ("exec-features", "features"),
        ("exec-train", "train"),
        ("exec-evaluate", "evaluate"),
        ("exec-compare", "evaluate"),
    ):
        if executor.startswith(prefix):
            return kind
    raise AssertionError(executor)


def test_compiled_study_runs_every_task_in_the_image_with_its_command(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == "registry.example.com/urbansound:test", name
        assert container["command"], name
        assert "pip install" not in " ".join(container["command"]), name


def test_compiled_study_shares_features_and_fans_out_per_configuration(compiled):
    tasks = _tasks(compiled)
    features = [n for n in tasks if n.startswith("features-component")]
    assert len(features) == 3  # one per feature group, not per configuration
    loops = [t for t in tasks.values() if "parameterIterator" in t]
    assert len(loops) == 4  # one fold loop per configuration, over ingest's folds
    for loop in loops:
        assert "ingest-component" in loop["parameterIterator"]["items"]["inputParameter"]
    compare = tasks["compare-study-component"]  # fan-in: every configuration's evaluation
    rows = compare["inputs"]["parameters"]["rows"]["runtimeValue"]["constant"]
    assert len(rows) == 4 and all("evaluate-configuration-component" in r for r in rows)


def test_compiled_study_requests_resources_retries_and_gpus_as_run_does(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        res = executor["container"]["resources"]
        want = TASK_RESOURCES[_kind(name)]
        assert res["resourceCpuRequest"] == want.cpu_request, name
        assert res["resourceMemoryRequest"] == want.memory_request, name
        has_gpu = "accelerator" in res
        assert has_gpu == (_kind(name) == "train"), name
    retried = {
        n: t for n, t in _tasks(compiled).items() if "componentRef" in t and "-component" in n
    }
    assert len(retried) == len(executors)  # every task of a component, none left out
    for name, task in retried.items():
        assert task["retryPolicy"]["maxRetryCount"] == 2, name
    finish = _tasks(compiled)["finish-run-component"]
    assert finish["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


def test_the_local_study_pipeline_has_no_retries_resources_or_gpu(tmp_path):
    from kfp import compiler

    from urbansound.pipeline.containers import source_digest
    from urbansound.pipeline.pipeline import SOURCE_DIGEST_ENV
    from urbansound.pipeline.study import create_study_pipeline

    study = resolve(BUILTIN_SPECS["table1"], _quick)
    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(create_study_pipeline(study, gpu=False, parallelism=1), str(path))
    spec = yaml.safe_load(path.read_text())
    assert not any("retryPolicy" in t for t in _tasks(spec).values())
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert not executor["container"].get("resources"), name
        # keyed on the package's code, as the run's tasks (test_pipeline.py)
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env == {SOURCE_DIGEST_ENV: source_digest()}, name


def test_compile_option_writes_the_cluster_yaml(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    path = tmp_path / "study.yaml"
    assert main(["study", "--models", "sb-cnn,improved", "--compile", str(path)]) == 0
    spec = yaml.safe_load(path.read_text())
    assert spec["pipelineInfo"]["name"] == "urbansound-study"


def test_compile_option_takes_the_cluster_options_and_the_full_recipes(tmp_path, capsys):
    """`study --compile` mounts claims and retries as `compile` does, and, with no --data,
    compiles every model's own recipe (a cluster never trains on the demo data)."""
    from urbansound.pipeline.cli import main

    path = tmp_path / "study.yaml"
    argv = ["study", "--models", "sb-cnn", "--compile", path, "--pvc", "us8k:/mnt/data"]
    assert main([str(a) for a in argv + ["--retries", "1", "--image", "reg/us:1"]]) == 0
    docs = list(yaml.safe_load_all(path.read_text()))
    spec, platform = docs[0], docs[1]["platforms"]["kubernetes"]
    assert set(platform["deploymentSpec"]["executors"]) == set(spec["deploymentSpec"]["executors"])
    assert all(t["retryPolicy"]["maxRetryCount"] == 1 for t in _component_tasks(spec).values())
    start = _component_tasks(spec)["start-configuration-component"]
    config_json = start["inputs"]["parameters"]["config_json"]["runtimeValue"]["constant"]
    assert Config.from_json(config_json).train.epochs == config_for("sb-cnn").train.epochs


# ------------------------------------------------------------ submitted to a cluster --

from conftest import KfpResponse, intercept_kfp  # noqa: E402

from urbansound.config import Config  # noqa: E402

SUBMIT = ["--submit", "--host", "http://kfp.invalid"]


def _component_tasks(spec):
    return {n: t for n, t in _tasks(spec).items() if "componentRef" in t and "-component" in n}


def _submitted(calls):
    """The run request kfp.Client sent: (its body, the pipeline spec, the platform spec)."""
    body = next(c for c in calls if c[0] == "POST" and c[1].endswith("/runs"))[2]
    spec = body["pipeline_spec"]
    platform = spec.get("platform_spec", {}).get("platforms", {}).get("kubernetes", {})
    return body, spec.get("pipeline_spec", spec), platform


def test_submit_sends_the_study_s_pipeline_with_submit_s_cluster_options(monkeypatch, capsys):
    """`study table1 --submit` down to the HTTP request kfp's client would send: the
    study's pipeline (every configuration's tasks), the arguments `submit` passes (no
    config_json: the configurations are compiled in), a GPU on training tasks only, the
    image, requests, limits, retries and mounts in every task, as `submit` sets them."""
    from urbansound.pipeline.cli import main

    calls = intercept_kfp(monkeypatch, run_id="run-19")
    argv = [
        "study",
        "table1",
        *SUBMIT,
        "--data",
        "/mnt/data/UrbanSound8K",
        "--pvc",
        "us8k:/mnt/data",
        "--data-version",
        "2026-11-01",
        "--image",
        "reg.example.com/urbansound:1-gpu",
        "--tracking-uri",
        "http://mlflow.mlflow:5000",
        "--pipeline-root",
        "gs://bucket/root",
        "--experiment",
        "studies",
        "--retries",
        "2",
        "--folds",
        "1,2",
        "--strict",
        "--beam-arg=--direct_num_workers=4",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "submitted study table1 (4 configurations" in out and "run-19" in out
    body, spec, platform = _submitted(calls)
    assert spec["pipelineInfo"]["name"] == "urbansound-study"
    assert body["display_name"] == "urbansound study table1"
    runtime = body["runtime_config"]
    assert runtime["pipeline_root"] == "gs://bucket/root"
    assert runtime["parameters"] == {
        "data_root": "/mnt/data/UrbanSound8K",
        "test_folds": [1, 2],
        "tracking_uri": "http://mlflow.mlflow:5000",
        "beam_args": ["--direct_num_workers=4"],
        "strict": True,
        "dataset_fingerprint": "version=2026-11-01",
    }
    assert set(runtime["parameters"]) <= set(spec["root"]["inputDefinitions"]["parameters"])
    # every configuration of the spec: its MLflow run, its fold loop, its trainings
    study = resolve(BUILTIN_SPECS["table1"], config_for)
    shown = {t["taskInfo"]["name"] for t in _tasks(spec).values()}
    for c in study.configurations:
        assert {f"mlflow-{c.slug}", f"train-{c.slug}", f"evaluate-{c.slug}"} <= shown, c.slug
    assert len([t for t in _tasks(spec).values() if "parameterIterator" in t]) == 4
    executors = spec["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == "reg.example.com/urbansound:1-gpu", name
        want = TASK_RESOURCES[_kind(name)]
        assert container["resources"]["resourceCpuRequest"] == want.cpu_request, name
        assert container["resources"]["resourceMemoryLimit"] == want.memory_limit, name
        assert ("accelerator" in container["resources"]) == (_kind(name) == "train"), name
        mounts = platform["deploymentSpec"]["executors"][name]["pvcMount"]
        assert [(m["constant"], m["mountPath"]) for m in mounts] == [("us8k", "/mnt/data")]
    tasks = _component_tasks(spec)
    assert tasks and all(t["retryPolicy"]["maxRetryCount"] == 2 for t in tasks.values())
    assert body["experiment_id"] == "exp-1"
    assert any(
        m == "POST" and "/experiments" in u and b["display_name"] == "studies" for m, u, b in calls
    )


def test_submit_no_cache_turns_kfp_s_cache_off_in_every_task(monkeypatch, capsys):
    from urbansound.pipeline.cli import main

    calls = intercept_kfp(monkeypatch)
    argv = ["study", "--models", "sb-cnn", *SUBMIT, "--data", "gs://b/us8k", "--no-cache"]
    assert main(argv) == 0, capsys.readouterr().err
    _, spec, _ = _submitted(calls)
    cached = [
        n
        for n, t in _component_tasks(spec).items()
        if t.get("cachingOptions", {}).get("enableCache")
    ]
    assert cached == []


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--submit", "--data", "gs://b/d"], ["--submit needs --host URL"]),
        (["--submit", "--host", "http://kfp.invalid"], ["--submit needs --data PATH"]),
        (["--host", "http://kfp.invalid"], ["--host is for a submission: add --submit"]),
        (["--pvc", "us8k:/mnt/data"], ["--pvc is for a cluster: add --submit or --compile"]),
        ([*SUBMIT, "--data", "gs://b/d", "--dry-run"], ["--dry-run and --submit: give one"]),
        ([*SUBMIT, "--data", "/elsewhere/us8k", "--pvc", "us8k:/mnt/data"], ["not under"]),
        ([*SUBMIT, "--data", "gs://b/d", "--image", "Us:1"], ["--image 'Us:1': not an image"]),
        ([*SUBMIT, "--data", "gs://b/d", "--tracking-uri", "mlflow:5000"], ["expected a URI"]),
        ([*SUBMIT, "--data", "gs://b/d", "--pipeline-root", "bucket"], ["--pipeline-root"]),
        (["--submit", "--host", "kfp:8080", "--data", "gs://b/d"], ["--host 'kfp:8080'"]),
        ([*SUBMIT, "--data", "gs://b/d", "--experiment", " "], ["--experiment: empty"]),
    ],
)
def test_a_bad_submission_is_one_line_and_nothing_is_sent(monkeypatch, capsys, extra, fragments):
    calls = intercept_kfp(monkeypatch)
    line = refused_in_one_line(["study", "table1", *extra], capsys, *fragments)
    assert line.startswith("urbansound study: error: "), line
    assert calls == []


def test_a_bad_spec_is_refused_before_the_cluster_is_contacted(monkeypatch, tmp_path, capsys):
    calls = intercept_kfp(monkeypatch)
    path = tmp_path / "s.toml"
    path.write_text('models = ["sb-cnn"]\naugment = "nosuch"\n')
    refused_in_one_line(["study", path, *SUBMIT, "--data", "gs://b/d"], capsys, "'nosuch'")
    assert calls == []


def test_a_refusing_cluster_is_one_line_with_the_status(monkeypatch, capsys):
    import kfp_server_api.rest
    from kfp_server_api.exceptions import ApiException

    def refuse(self, method, url, **kwargs):
        answer = KfpResponse({"error": "denied"})
        answer.status, answer.reason = 403, "Forbidden"
        raise ApiException(http_resp=answer)

    monkeypatch.setattr(kfp_server_api.rest.RESTClientObject, "request", refuse)
    line = refused_in_one_line(
        ["study", "table1", *SUBMIT, "--data", "gs://b/d", "--data-version", "v1"], capsys
    )
    assert line == (
        "urbansound study: error: http://kfp.invalid: cannot submit (HTTP 403 Forbidden: "
        "forbidden: the cluster refuses this client)"
    )


# ------------------------------------------------------------------ end to end -------


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """Two configurations (sb-cnn, improved: one shared features stage) × one test fold,
    two epochs, on 3 folds × 3 clips per class of the built-in data; then the same command
    again (a resumed study: nothing trains)."""
    from urbansound.demo_data import write_demo_dataset
    from urbansound.pipeline.cli import main

    work = tmp_path_factory.mktemp("study")
    write_demo_dataset(work / "demo", folds=(1, 2, 3), clips_per_class=3, seed=1)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    argv = [
        "study",
        "--models",
        "sb-cnn,improved",
        "--profile",
        "quick",
        "--folds",
        "1",
        "--data",
        str(work / "demo"),
        "--out",
        str(work / "out"),
        "--tracking-uri",
        uri,
    ]
    outputs = []
    for _ in range(2):
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = main(argv)
        outputs.append((code, stdout.getvalue()))
    return work, uri, outputs


@pytest.mark.e2e
def test_study_runs_prints_cost_and_the_table(finished_study):
    _work, _uri, outputs = finished_study
    code, text = outputs[0]
    assert code == 0, text
    assert "2 trainings (2 configurations × 1 test folds 1)" in text
    table = text[text.index("model  ") :]
    assert "\nsb-cnn " in table and "\nimproved " in table and "study: baseline (SB-CNN)" in table
    assert "box plot: " in text and "per-class accuracy: " in text


@pytest.mark.e2e
def test_study_computes_features_once_and_writes_the_comparison(finished_study):
    work, _uri, _ = finished_study
    root = work / "out" / "pipeline_root"
    run_dir = min(p for p in root.iterdir() if p.name.startswith("urbansound-study-"))
    assert len(list(run_dir.glob("features-component*"))) == 1
    (comparison,) = run_dir.glob("compare-study-component/comparison")
    names = {p.name for p in comparison.iterdir()}
    assert {
        "comparison.txt",
        "comparison.json",
        "fold_accuracy_boxplot.png",
        "comparison.html",
    } <= names


@pytest.mark.e2e
def test_mlflow_has_a_study_run_a_run_per_configuration_and_their_folds(finished_study):
    from mlflow.tracking import MlflowClient

    from urbansound.pipeline.compare import load_runs

    _work, uri, _ = finished_study
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("urbansound")
    runs = client.search_runs([exp.experiment_id])
    (study,) = [r for r in runs if r.data.tags.get("urbansound.kind") == "study"]
    assert study.info.status == "FINISHED"
    configurations = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == study.info.run_id]
    assert sorted(r.info.run_name for r in configurations) == ["improved", "sb-cnn"]
    for configuration in configurations:
        assert configuration.info.status == "FINISHED"
        assert configuration.data.tags["urbansound.kind"] == "configuration"
        folds = [
            r for r in runs if r.data.tags.get("mlflow.parentRunId") == configuration.info.run_id
        ]
        assert [r.data.tags["fold"] for r in folds] == ["1"]
        assert "test_accuracy" in folds[0].data.metrics
    artifacts = {a.path for a in client.list_artifacts(study.info.run_id)}
    assert {"comparison.txt", "fold_accuracy_boxplot.png", "report.json"} <= artifacts
    # `compare` reads a study run as its configurations, and the experiment as them too
    by_study = load_runs(uri, [study.info.run_id])
    assert sorted(r.model for r in by_study) == ["improved", "sb-cnn"]
    assert all(r.fold_accuracies and r.per_class for r in by_study)
    assert sorted(r.model for r in load_runs(uri)) == ["improved", "sb-cnn"]


@pytest.mark.e2e
def test_a_rerun_resumes_and_trains_nothing_again(finished_study):
    _work, _uri, outputs = finished_study
    code, text = outputs[1]
    assert code == 0, text
    first_table = outputs[0][1][outputs[0][1].index("model  ") :].split("\n\n")[0]
    assert first_table in text
    log = re.sub(r"\x1b\[[0-9;]*m", "", Path(_work / "out" / "study.log").read_text())
    # over both commands, each configuration's training ran once: the rerun's came from the cache
    for task in ("train-component", "train-component-2"):
        assert log.count(f"Executing task '{task}'") == 1, task
        assert re.search(f"Task '?{task}'? cache hit", log), task
    assert "finished earlier; it is not reopened" in log
