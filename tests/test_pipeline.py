"""The pipeline definition: compiled graph, cluster settings, submission (no cluster here)."""

from pathlib import Path

import pytest
import yaml
from conftest import intercept_kfp

from urbansound.config import Config
from urbansound.pipeline.kubeflow_runner import compile_pipeline, submit


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    compile_pipeline(path, image="registry.example.com/urbansound:test")
    return yaml.safe_load(path.read_text())


def _tasks(spec):
    """Every task of every DAG in the compiled spec, by name."""
    out = {}
    for comp in spec["components"].values():
        out.update(comp.get("dag", {}).get("tasks", {}))
    out.update(spec["root"]["dag"]["tasks"])
    return out


def test_train_fans_out_over_ingest_folds_with_parallel_for(compiled):
    tasks = _tasks(compiled)
    loop = next(t for t in tasks.values() if "parameterIterator" in t)
    iterator = loop["parameterIterator"]["items"]["inputParameter"]
    assert "ingest-component" in iterator  # the folds come from ingest, not a constant
    loop_component = compiled["components"][loop["componentRef"]["name"]]
    assert "train-component" in loop_component["dag"]["tasks"]


def test_evaluate_collects_every_fold_result(compiled):
    evaluate = _tasks(compiled)["evaluate-component"]
    artifact = evaluate["inputs"]["artifacts"]["fold_results"]["taskOutputArtifact"]
    assert artifact["outputArtifactKey"] == "pipelinechannel--train-component-fold_result"


def test_each_train_task_requests_one_gpu(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    train = executors["exec-train-component"]["container"]["resources"]
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert int(train["accelerator"]["resourceCount"]) == 1
    others = [
        name
        for name, e in executors.items()
        if "accelerator" in e["container"].get("resources", {})
    ]
    assert others == ["exec-train-component"]


def test_every_component_runs_in_the_project_image_without_pip_installing_kfp(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    assert len(executors) == 6
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == "registry.example.com/urbansound:test", name
        assert "pip install" not in " ".join(container["command"]), name


def test_mlflow_run_is_closed_by_an_exit_handler(compiled):
    tasks = _tasks(compiled)
    finish = tasks["finish-run-component"]
    assert finish["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


def test_pipeline_parameters_default_to_the_config(compiled):
    params = compiled["root"]["inputDefinitions"]["parameters"]
    assert Config.from_json(params["config_json"]["defaultValue"]) == Config()
    assert set(params) == {
        "data_root",
        "config_json",
        "test_folds",
        "strict",
        "beam_args",
        "tracking_uri",
        "run_key",
        "dataset_fingerprint",
        "digest_cache",
    }


def test_submit_sends_the_compiled_package_and_arguments(tmp_path, monkeypatch):
    """kfp.Client's HTTP calls are intercepted: the request it would send a cluster is checked."""
    import kfp

    calls = intercept_kfp(monkeypatch, run_id="run-42")
    package = compile_pipeline(tmp_path / "p.yaml", image="img:1")
    config = Config().override(**{"train.epochs": 7})
    client = kfp.Client(host="http://kfp.invalid")
    result = submit(
        "http://kfp.invalid",
        data_root="/mnt/us8k",
        package_path=package,
        experiment="urbansound",
        pipeline_root="gs://bucket/root",
        config=config,
        test_folds=[1, 2],
        tracking_uri="http://mlflow:5000",
        client=client,
    )
    assert result.run_id == "run-42"
    run_call = next(c for c in calls if c[0] == "POST" and c[1].endswith("/runs"))
    body = run_call[2]
    runtime = body["runtime_config"]
    assert runtime["pipeline_root"] == "gs://bucket/root"
    assert runtime["parameters"]["data_root"] == "/mnt/us8k"
    assert runtime["parameters"]["test_folds"] == [1, 2]
    assert Config.from_json(runtime["parameters"]["config_json"]).train.epochs == 7
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "urbansound"
    assert body["experiment_id"] == "exp-1"


# ------------------------------------------------------------- cluster settings -------

from urbansound.pipeline.kubeflow_runner import cache_key, check_data_on_volumes, parse_pvc  # noqa: E402
from urbansound.pipeline.pipeline import TASK_RESOURCES  # noqa: E402

_KIND = {
    "exec-start-run-component": "mlflow",
    "exec-finish-run-component": "mlflow",
    "exec-ingest-component": "ingest",
    "exec-features-component": "features",
    "exec-train-component": "train",
    "exec-evaluate-component": "evaluate",
}


def _bytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * factor
    return float(quantity)


def _cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_every_task_requests_cpu_and_memory_within_its_limits(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    assert set(executors) == set(_KIND)
    for name, executor in executors.items():
        res = executor["container"]["resources"]
        want = TASK_RESOURCES[_KIND[name]]
        assert res["resourceCpuRequest"] == want.cpu_request, name
        assert res["resourceMemoryRequest"] == want.memory_request, name
        assert _cores(res["resourceCpuRequest"]) <= _cores(res["resourceCpuLimit"]), name
        assert _bytes(res["resourceMemoryRequest"]) <= _bytes(res["resourceMemoryLimit"]), name
    # The CPU-bound stages get several cores; the MLflow bookkeeping tasks a fraction of one.
    cpu = {
        n: _cores(e["container"]["resources"]["resourceCpuRequest"]) for n, e in executors.items()
    }
    assert cpu["exec-ingest-component"] >= 4 and cpu["exec-features-component"] >= 4
    assert cpu["exec-start-run-component"] < 1 and cpu["exec-finish-run-component"] < 1
    memory = _bytes(
        executors["exec-train-component"]["container"]["resources"]["resourceMemoryRequest"]
    )
    assert memory >= 16 * 2**30


def _component_tasks(spec) -> dict:
    return {
        name: task
        for name, task in _tasks(spec).items()
        if "componentRef" in task and name.endswith("-component")
    }


def test_no_task_is_retried_by_default(compiled):
    """kfp's retry policy has no condition on the exit code: a retried task that stopped on
    bad input (exit code 2) would only fail again, so the package asks for no retries."""
    tasks = _component_tasks(compiled)
    assert len(tasks) == 6
    assert {name: task.get("retryPolicy") for name, task in tasks.items()} == dict.fromkeys(tasks)


def _assert_retried(spec, times: int) -> None:
    tasks = _component_tasks(spec)
    assert len(tasks) == 6
    for name, task in tasks.items():
        policy = task["retryPolicy"]
        assert policy["maxRetryCount"] == times, name
        assert policy["backoffDuration"] == "60s" and policy["backoffFactor"] == 2.0, name
        assert policy["backoffMaxDuration"] == "600s", name


def test_retries_when_asked_compile(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    out = tmp_path / "p.yaml"
    assert main(["compile", "-o", str(out), "--retries", "2"]) == 0
    assert f"wrote {out}, 2 retries of a failed task" in capsys.readouterr().out
    _assert_retried(yaml.safe_load(out.read_text()), 2)


def test_retries_when_asked_submit(monkeypatch):
    from urbansound.pipeline.cli import main

    calls = intercept_kfp(monkeypatch)
    argv = ["submit", "--host", "http://kfp.invalid", "--data", "gs://b/us8k"]
    assert main([*argv, "--data-version", "v1", "--retries", "1"]) == 0
    (body,) = [c[2] for c in calls if c[0] == "POST" and c[1].endswith("/runs")]
    _assert_retried(body["pipeline_spec"], 1)
    calls.clear()
    assert main([*argv, "--data-version", "v1"]) == 0
    (body,) = [c[2] for c in calls if c[0] == "POST" and c[1].endswith("/runs")]
    assert not any("retryPolicy" in t for t in _tasks(body["pipeline_spec"]).values())


@pytest.mark.parametrize(
    "value, says",
    [
        ("6", "must be in 0..5, got 6"),
        ("-1", "must be in 0..5, got -1"),
        ("two", "takes a whole number, not 'two'"),
    ],
)
def test_retries_out_of_bounds_are_refused(tmp_path, capsys, value, says):
    from urbansound.pipeline.cli import main

    out = tmp_path / "p.yaml"
    with pytest.raises(SystemExit) as stopped:
        main(["compile", "-o", str(out), "--retries", value])
    assert stopped.value.code == 2
    assert f"argument --retries: {says}" in capsys.readouterr().err
    assert not out.exists()


def test_the_local_pipeline_has_no_retries_resources_or_gpu(tmp_path):
    """Locally a retry would only repeat a user's error (kfp's local runner honours
    set_retry): the cluster settings are the compiled package's alone."""
    from kfp import compiler

    from urbansound.pipeline.pipeline import create_pipeline

    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(create_pipeline(gpu=False, parallelism=1), str(path))
    spec = yaml.safe_load(path.read_text())
    assert not any("retryPolicy" in t for t in _tasks(spec).values())
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert not executor["container"].get("resources"), name


def test_every_task_is_keyed_on_the_package_code(tmp_path, monkeypatch):
    """kfp's local cache keys on each task's command, inputs and environment; the code the
    components import (urbansound/) is in none of them but this variable, so a changed
    library is another cache key and another run key (local_runner.pipeline_fingerprint)."""
    from urbansound.config import Config
    from urbansound.pipeline import local_runner, pipeline
    from urbansound.pipeline.containers import source_digest

    def executor_envs(spec):
        return {
            name: {e["name"]: e["value"] for e in executor["container"].get("env", [])}
            for name, executor in spec["deploymentSpec"]["executors"].items()
        }

    for spec in (compiled_local(tmp_path), compiled_cluster(tmp_path)):
        envs = executor_envs(spec)
        assert len(envs) >= 6  # start, ingest, features, train, evaluate, finish
        for name, env in envs.items():
            assert env == {pipeline.SOURCE_DIGEST_ENV: source_digest()}, name
    before = local_runner.pipeline_fingerprint(Config())
    monkeypatch.setattr(pipeline, "_source_digest", lambda: "0123456789abcdef")
    assert local_runner.pipeline_fingerprint(Config()) != before


def compiled_local(tmp_path):
    from kfp import compiler

    from urbansound.pipeline.pipeline import create_pipeline

    path = tmp_path / "local-env.yaml"
    compiler.Compiler().compile(create_pipeline(gpu=False, parallelism=1), str(path))
    return yaml.safe_load(path.read_text())


def compiled_cluster(tmp_path):
    path = tmp_path / "cluster-env.yaml"
    compile_pipeline(path, image="registry.example.com/urbansound:test")
    return yaml.safe_load(path.read_text())


def test_pvc_is_mounted_in_every_task(tmp_path):
    from urbansound.pipeline.pipeline import ClusterOptions

    path = compile_pipeline(
        tmp_path / "p.yaml",
        image="img:1",
        cluster=ClusterOptions(pvcs=(("us8k-data", "/mnt/data"), ("scratch", "/scratch"))),
    )
    pipeline_spec, platform = yaml.safe_load_all(Path(path).read_text())
    executors = pipeline_spec["deploymentSpec"]["executors"]
    mounts = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(mounts) == set(executors)
    for name, executor in mounts.items():
        got = [
            (m["pvcNameParameter"]["runtimeValue"]["constant"], m["mountPath"])
            for m in executor["pvcMount"]
        ]
        assert got == [("us8k-data", "/mnt/data"), ("scratch", "/scratch")], name


def test_without_pvc_the_package_is_one_document(compiled, tmp_path):
    path = compile_pipeline(tmp_path / "p.yaml", image="img:1")
    assert len(list(yaml.safe_load_all(Path(path).read_text()))) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("us8k", "expected NAME:/mount/path"),
        (":/mnt", "expected NAME:/mount/path"),
        ("us8k:", "expected NAME:/mount/path"),
        ("US8K:/mnt", "not a Kubernetes claim name"),
        ("us_8k:/mnt", "not a Kubernetes claim name"),
        ("us8k:mnt/data", "must be absolute"),
        ("us8k:/mnt/../etc", "must be absolute"),
    ],
)
def test_bad_pvc_is_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_pvc(text)


def test_pvc_parses_name_and_path():
    assert parse_pvc("us8k-data.v2:/mnt/data/") == ("us8k-data.v2", "/mnt/data")


def test_data_must_lie_under_a_mounted_claim():
    from urbansound.config import ConfigError

    pvcs = [("us8k", "/mnt/data")]
    check_data_on_volumes("/mnt/data/UrbanSound8K", pvcs)
    check_data_on_volumes("/mnt/data", pvcs)
    check_data_on_volumes("gs://bucket/us8k", pvcs)  # FileSystems, no volume needed
    check_data_on_volumes("/anywhere", [])  # no claim: the image's own path
    with pytest.raises(
        ConfigError,
        match=r"--data /mnt/database: not under a mounted claim "
        r"\(us8k:/mnt/data\)",
    ):
        check_data_on_volumes("/mnt/database", pvcs)


def test_cache_key_combines_version_and_listing():
    assert cache_key() == ""
    assert cache_key(data_version="2024-05") == "version=2024-05"
    assert cache_key(local_fingerprint="ab12") == "listing=ab12"
    assert cache_key(data_version="v3", local_fingerprint="ab12") == "version=v3;listing=ab12"


def _run_body(calls):
    return next(c for c in calls if c[0] == "POST" and c[1].endswith("/runs"))[2]


def _cached_tasks(body):
    """Names of the component tasks of a run request whose results kfp may serve from cache."""
    spec = body["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)  # with a platform spec, both travel side by side
    return {
        name
        for name, task in _tasks(spec).items()
        if name.endswith("-component") and task.get("cachingOptions", {}).get("enableCache")
    }


def test_submit_cli_sends_mounts_fingerprint_and_cache_setting(monkeypatch, capsys):
    """`urbansound submit --pvc ... --data-version ...` end to end down to the HTTP request
    kfp's client would send: the platform spec (the mount) travels with the pipeline, the
    fingerprint is an argument, and --no-cache turns kfp's cache off for the run."""
    from urbansound.pipeline.cli import main

    calls = intercept_kfp(monkeypatch)
    code = main(
        [
            "submit",
            "--host",
            "http://kfp.invalid",
            "--pvc",
            "us8k:/mnt/data",
            "--data",
            "/mnt/data/UrbanSound8K",
            "--data-version",
            "2026-11-01",
            "--image",
            "reg/us:1-gpu",
            "--folds",
            "1,2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    body = _run_body(calls)
    params = body["runtime_config"]["parameters"]
    assert params["dataset_fingerprint"] == "version=2026-11-01"
    assert params["data_root"] == "/mnt/data/UrbanSound8K"
    platform = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    mounts = platform["deploymentSpec"]["executors"]["exec-ingest-component"]["pvcMount"]
    assert [(m["constant"], m["mountPath"]) for m in mounts] == [("us8k", "/mnt/data")]
    assert _cached_tasks(body) == {
        "ingest-component",
        "features-component",
        "train-component",
        "evaluate-component",
    }
    assert "submitted run run-7" in capsys.readouterr().out

    calls.clear()
    assert (
        main(["submit", "--host", "http://kfp.invalid", "--data", "gs://b/us8k", "--no-cache"]) == 0
    )
    body = _run_body(calls)
    assert body["runtime_config"]["parameters"]["dataset_fingerprint"] == ""
    assert _cached_tasks(body) == set()


def test_submit_fingerprints_a_local_copy_and_warns_without_any(monkeypatch, capsys, tmp_path):
    from urbansound.dataset import dataset_fingerprint
    from urbansound.demo_data import write_demo_dataset
    from urbansound.layouts import list_clips
    from urbansound.pipeline.cli import main

    data = tmp_path / "us8k"
    write_demo_dataset(data)
    clips, _ = list_clips(data)
    calls = intercept_kfp(monkeypatch)
    assert (
        main(
            ["submit", "--host", "http://kfp.invalid", "--data", str(data), "--data-version", "v1"]
        )
        == 0
    )
    sent = _run_body(calls)["runtime_config"]["parameters"]["dataset_fingerprint"]
    assert sent == f"version=v1;listing={dataset_fingerprint(clips)}"
    # A changed clip (another size) is another key: kfp's cache does not serve the old one.
    wav = sorted((data / "audio").rglob("*.wav"))[0]
    wav.write_bytes(wav.read_bytes() + b"\0\0")
    calls.clear()
    assert (
        main(
            ["submit", "--host", "http://kfp.invalid", "--data", str(data), "--data-version", "v1"]
        )
        == 0
    )
    changed = _run_body(calls)["runtime_config"]["parameters"]["dataset_fingerprint"]
    assert changed.startswith("version=v1;listing=") and changed != sent
    capsys.readouterr()

    calls.clear()
    assert main(["submit", "--host", "http://kfp.invalid", "--data", "/not/here/us8k"]) == 0
    err = capsys.readouterr().err
    assert "warning: /not/here/us8k is not readable here and no --data-version" in err


def test_submit_rejects_bad_mounts_in_one_line(monkeypatch, capsys):
    from urbansound.pipeline.cli import main

    calls = intercept_kfp(monkeypatch)
    assert (
        main(
            [
                "submit",
                "--host",
                "http://kfp.invalid",
                "--pvc",
                "us8k:/mnt/data",
                "--data",
                "/data/us8k",
                "--data-version",
                "v1",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "urbansound submit: error: --data /data/us8k: not under a mounted claim "
        "(us8k:/mnt/data); the pods would not see it"
    ]
    assert calls == []  # nothing was sent
    with pytest.raises(SystemExit) as exc:
        main(["submit", "--host", "h", "--data", "/d", "--pvc", "Bad_Name:/mnt"])
    assert exc.value.code == 2
    assert "not a Kubernetes claim name" in capsys.readouterr().err


def test_submit_runs_features_on_the_cluster_s_dask_scheduler(monkeypatch, capsys):
    """`submit --beam-runner dask --dask-address ADDR` sends Beam's Dask runner, named in
    full, as the features stage's options; the address is the one the pods reach, so it is
    not dialled from here, only checked for shape."""
    from urbansound.beam_features import DASK_RUNNER
    from urbansound.pipeline.cli import main

    calls = intercept_kfp(monkeypatch)
    assert (
        main(
            [
                "submit",
                "--host",
                "http://kfp.invalid",
                "--data",
                "gs://b/us8k",
                "--data-version",
                "v1",
                "--beam-runner",
                "dask",
                "--dask-address",
                "tcp://dask-scheduler.dask:8786",
            ]
        )
        == 0
    )
    params = _run_body(calls)["runtime_config"]["parameters"]
    assert params["beam_args"][:2] == [
        f"--runner={DASK_RUNNER}",
        "--dask_client_address=tcp://dask-scheduler.dask:8786",
    ]
    capsys.readouterr()

    calls.clear()
    assert (
        main(
            [
                "submit",
                "--host",
                "http://kfp.invalid",
                "--data",
                "gs://b/us8k",
                "--beam-runner",
                "dask",
                "--dask-address",
                "dask-scheduler:8786",
            ]
        )
        == 2
    )
    assert "expected tcp://HOST:PORT" in capsys.readouterr().err
    assert (
        main(
            [
                "submit",
                "--host",
                "http://kfp.invalid",
                "--data",
                "gs://b/us8k",
                "--beam-runner",
                "dask",
            ]
        )
        == 2
    )
    assert "--beam-runner dask needs --dask-address" in capsys.readouterr().err
    assert calls == []


def test_compile_cli_mounts_claims_too(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    out = tmp_path / "p.yaml"
    assert main(["compile", "-o", str(out), "--pvc", "us8k:/mnt/data"]) == 0
    assert f"wrote {out}, mounts us8k at /mnt/data" in capsys.readouterr().out
    _, platform = yaml.safe_load_all(out.read_text())
    mounts = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all(
        [(m["pvcNameParameter"]["runtimeValue"]["constant"], m["mountPath"]) for m in e["pvcMount"]]
        == [("us8k", "/mnt/data")]
        for e in mounts.values()
    )
