"""The pipeline definition: compiled graph, cluster settings, submission (no cluster here)."""
import json

import pytest
import yaml

from pipeline.kubeflow_runner import compile_pipeline, submit
from urbansound.config import Config


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
    others = [name for name, e in executors.items()
              if "accelerator" in e["container"].get("resources", {})]
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
    assert set(params) == {"data_root", "config_json", "test_folds", "strict", "beam_args",
                           "tracking_uri", "run_key", "dataset_fingerprint"}


class _FakeResponse:
    def __init__(self, payload):
        self.status, self.reason = 200, "OK"
        self.data = json.dumps(payload).encode()

    def getheaders(self):
        return {}

    def getheader(self, name, default=None):
        return default


def test_submit_sends_the_compiled_package_and_arguments(tmp_path, monkeypatch):
    """kfp.Client's HTTP calls are intercepted: the request it would send a cluster is checked."""
    import kfp
    import kfp_server_api.rest

    calls = []

    def fake_request(self, method, url, query_params=None, headers=None, body=None, **kwargs):
        calls.append((method, url, body))
        if url.endswith("/healthz"):
            return _FakeResponse({"multi_user": False})
        if "/experiments" in url and method == "GET":
            return _FakeResponse({"experiments": []})
        if "/experiments" in url and method == "POST":
            return _FakeResponse({"experiment_id": "exp-1", "display_name": "urbansound"})
        if "/runs" in url and method == "POST":
            return _FakeResponse({"run_id": "run-42", "display_name": body.get("display_name")})
        raise AssertionError(f"unexpected call {method} {url}")

    monkeypatch.setattr(kfp_server_api.rest.RESTClientObject, "request", fake_request)
    package = compile_pipeline(tmp_path / "p.yaml", image="img:1")
    config = Config().override(**{"train.epochs": 7})
    client = kfp.Client(host="http://kfp.invalid")
    result = submit("http://kfp.invalid", data_root="/mnt/us8k", package_path=package,
                    experiment="urbansound", pipeline_root="gs://bucket/root", config=config,
                    test_folds=[1, 2], tracking_uri="http://mlflow:5000", client=client)
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
