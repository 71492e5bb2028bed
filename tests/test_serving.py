"""The logged model serves raw audio (components/serving.py, components/model_logging.py),
and `urbansound register` puts a run's model in the registry (pipeline/registry.py).

Everything runs against a temporary sqlite store with runs these tests create, the way the
pipeline's train task logs them (a parent run, fold runs with the configuration as params,
log_fold_result with config.json beside the model)."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import free_port

from urbansound.config import CLASS_NAMES, Config

mlflow = pytest.importorskip("mlflow")

CONFIG = Config().override(**{"audio.pad_mode": "zeros", "train.model": "sb-cnn"})
"""Not the defaults, so that a model served with the wrong configuration would differ."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 4 s clip of the built-in data (44.1 kHz stereo or other native formats), longer
    than one 3 s window: the windows are averaged."""
    from urbansound.demo_data import write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, folds=(1,), clips_per_class=1, seed=0)
    clips = sorted((root / "audio" / "fold1").glob("*.wav"))
    longest = max(clips, key=lambda p: sf.info(p).duration)
    assert sf.info(longest).duration > CONFIG.audio.clip_seconds
    return longest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A seeded sb-cnn (band statistics set, no training needed to give distinct
    probabilities) saved as a train task saves it: model.keras and config.json."""
    from urbansound.models import build_model
    from urbansound.training import CONFIG_FILE, MODEL_FILE

    folder = tmp_path_factory.mktemp("fold1")
    model = build_model(
        "sb-cnn",
        seed=0,
        band_mean=np.full(128, -40.0, np.float32),
        band_variance=np.full(128, 400.0, np.float32),
    )
    model.save(folder / MODEL_FILE)
    (folder / CONFIG_FILE).write_text(CONFIG.to_json())
    return folder / MODEL_FILE


def _result(fold: int, accuracy: float):
    from urbansound.training import FoldResult

    return FoldResult(
        test_fold=fold,
        validation_fold=None,
        train_folds=[9],
        test_accuracy=accuracy,
        test_loss=1.0,
        y_true=[0],
        y_pred=[0],
        confusion_matrix=np.eye(10, dtype=int).tolist(),
        history={"loss": [1.0], "accuracy": [accuracy]},
        best_epoch=1,
        epochs_run=1,
        n_train=1,
        n_validation=0,
        n_test=1,
        parameters=1,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory, trained):
    """A parent run with fold 1 (accuracy 0.6, logged model), fold 2 (0.8, logged model)
    and fold 3 (still running, no model)."""
    from urbansound.components import fold_logging, runs

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    parent = runs.start_parent_run(uri, "serving-test", CONFIG.flat())
    folds = {}
    for fold, accuracy in ((1, 0.6), (2, 0.8)):
        folds[fold] = runs.start_fold_run(uri, parent, fold, CONFIG.flat())
        fold_logging.log_fold_result(uri, folds[fold], _result(fold, accuracy), str(trained))
    folds[3] = runs.start_fold_run(uri, parent, 3, CONFIG.flat())
    return {"uri": uri, "parent": parent, "folds": folds}


@pytest.fixture(scope="module")
def expected(trained, clip):
    """What `urbansound predict`'s library path gives for the clip."""
    import keras

    from urbansound.predict import keras_classifier, predict_file

    model = keras.models.load_model(trained, compile=False)
    return predict_file(clip, keras_classifier(model), config=CONFIG)


@pytest.fixture(scope="module")
def served(store):
    mlflow.set_tracking_uri(store["uri"])
    return mlflow.pyfunc.load_model(f"runs:/{store['folds'][1]}/model")


def _probabilities(frame, row=0):
    return np.array([frame[name].iloc[row] for name in CLASS_NAMES])


def test_the_logged_model_is_a_pyfunc_with_artifacts_signature_and_example(store):
    from urbansound.training import CONFIG_FILE

    mlflow.set_tracking_uri(store["uri"])
    info = mlflow.models.get_model_info(f"runs:/{store['folds'][1]}/model")
    pyfunc = info.flavors["python_function"]
    assert set(pyfunc["artifacts"]) == {"keras_model", "config", "class_names"}
    assert pyfunc["artifacts"]["config"]["path"].endswith(CONFIG_FILE)
    inputs = {c["name"]: c for c in info.signature.inputs.to_dict()}
    assert set(inputs) == {"path", "waveform", "sample_rate"}
    assert not any(c["required"] for c in inputs.values())
    outputs = [c["name"] for c in info.signature.outputs.to_dict()]
    assert outputs == ["class", "probability", "duration_s", "windows", *CLASS_NAMES]
    assert info.signature.params.to_dict()[0]["name"] == "hop_s"
    assert info.saved_input_example_info is not None  # the short waveform


def test_the_served_model_carries_the_training_configuration(served):
    model = served.unwrap_python_model()
    assert model.config == CONFIG  # the config.json beside model.keras, not the defaults
    assert model.class_names == CLASS_NAMES


def test_by_path_and_by_waveform_it_gives_predicts_probabilities(served, clip, expected):
    import pandas as pd

    by_path = served.predict(pd.DataFrame({"path": [str(clip)]}))
    assert _probabilities(by_path) == pytest.approx(expected.probabilities, abs=1e-5)
    assert by_path["class"][0] == expected.label
    assert by_path["probability"][0] == pytest.approx(expected.probabilities.max(), abs=1e-5)
    assert by_path["windows"][0] == len(expected.starts_s) == 2  # 4 s: two 3 s windows
    # the samples as decoded at the file's own rate and channels: mixed down and
    # resampled as ingest does
    samples, rate = sf.read(clip, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float64)  # as the decoder mixes down
    by_waveform = served.predict(pd.DataFrame({"waveform": [mono.tolist()], "sample_rate": [rate]}))
    assert _probabilities(by_waveform) == pytest.approx(expected.probabilities, abs=1e-5)
    assert by_waveform["duration_s"][0] == pytest.approx(expected.duration_s, abs=1e-3)


def test_rows_of_both_kinds_in_one_call_and_the_hop_param(served, clip, expected):
    import pandas as pd

    from urbansound.predict import read_audio

    y = read_audio(clip, sample_rate=CONFIG.audio.sample_rate)
    long = np.tile(y, 3)[: 10 * CONFIG.audio.sample_rate]  # 10 s
    frame = pd.DataFrame(
        {
            "path": [str(clip), None],
            "waveform": [None, long.tolist()],
            "sample_rate": [None, CONFIG.audio.sample_rate],
        }
    )
    out = served.predict(frame)
    assert len(out) == 2
    assert _probabilities(out, 0) == pytest.approx(expected.probabilities, abs=1e-5)
    assert out["windows"].tolist() == [2, 6]  # 10 s at hop 1.5 s: 0, 1.5, 3, 4.5, 6, 7
    assert served.predict(frame, params={"hop_s": 3.0})["windows"].tolist() == [2, 4]


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"sample_rate": [22050]}, "input row 0: give either 'path' or 'waveform'"),
        ({"path": ["/nonexistent/x.wav"]}, "input row 0: /nonexistent/x.wav: cannot read file"),
        (
            {"waveform": [[0.0] * 4000], "sample_rate": [8000]},
            "input row 0: waveform: silent (every sample is zero)",
        ),
    ],
)
def test_an_unusable_row_is_one_line_naming_the_row(served, row, reason):
    import pandas as pd
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        served.predict(pd.DataFrame(row))
    assert reason in str(refused.value) and "\n" not in str(refused.value)


def test_a_bad_hop_is_refused_as_predict_refuses_it(served, clip):
    import pandas as pd
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        served.predict(pd.DataFrame({"path": [str(clip)]}), params={"hop_s": 0.0})
    assert "input row 0: hop must be > 0 and <= the window (3 s)" in str(refused.value)


def test_urbansound_predict_takes_the_logged_model(store, clip, expected, capsys):
    from urbansound.pipeline.cli import main

    code = main(
        [
            "predict",
            f"runs:/{store['folds'][2]}/model",
            str(clip),
            "--json",
            "--tracking-uri",
            store["uri"],
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"configuration: the params of run {store['folds'][2]}" in captured.err
    row = json.loads(captured.out)
    assert row["class"] == expected.label
    assert row["probability"] == pytest.approx(expected.probabilities.max(), abs=1e-6)


# ---------------------------------------------------------------------------
# mlflow models serve
# ---------------------------------------------------------------------------


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def test_mlflow_models_serve_answers_with_the_probabilities(store, clip, expected, tmp_path):
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    if not mlflow_cli.exists():
        pytest.skip(f"no mlflow command beside {sys.executable}")
    port = free_port()
    log = tmp_path / "serve.log"
    # MLflow starts uvicorn by name: the venv's bin must be on PATH, as when it is activated
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=store["uri"],
        PATH=f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [
                str(mlflow_cli),
                "models",
                "serve",
                "-m",
                f"runs:/{store['folds'][1]}/model",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )  # its own process group: the workers die with it
    try:
        deadline = time.time() + 240  # importing TensorFlow and loading the model
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None:
                text = log.read_text(errors="replace")
                if "address already in use" in text.lower():
                    pytest.skip(f"port {port} was taken before the server bound it")
                pytest.fail(f"mlflow models serve exited with {server.returncode}:\n{text[-3000:]}")
            if time.time() > deadline:
                pytest.fail(
                    f"no answer on /ping within 240 s:\n{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(1)
        url = f"http://127.0.0.1:{port}/invocations"
        answer = _post(url, {"dataframe_split": {"columns": ["path"], "data": [[str(clip)]]}})
        (row,) = answer["predictions"]
        assert row["class"] == expected.label
        got = np.array([row[name] for name in CLASS_NAMES])
        assert got == pytest.approx(expected.probabilities, abs=1e-5)
        samples, rate = sf.read(clip, dtype="float32", always_2d=True)
        answer = _post(
            url,
            {
                "dataframe_records": [
                    {
                        "waveform": samples.mean(axis=1, dtype=np.float64).tolist(),
                        "sample_rate": rate,
                    }
                ],
                "params": {"hop_s": 3.0},
            },
        )
        (row,) = answer["predictions"]
        got = np.array([row[name] for name in CLASS_NAMES])
        assert got == pytest.approx(expected.probabilities, abs=1e-5)  # 4 s: the same windows
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(url, {"dataframe_split": {"columns": ["path"], "data": [["/nowhere.wav"]]}})
        assert refused.value.code == 400
        assert "input row 0: /nowhere.wav" in refused.value.read().decode()
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# ---------------------------------------------------------------------------
# urbansound register
# ---------------------------------------------------------------------------


def test_register_a_parent_run_takes_the_best_fold(store, clip, expected, capsys):
    from urbansound.pipeline.cli import main

    code = main(
        [
            "register",
            store["parent"],
            "--name",
            "urban",
            "--alias",
            "champion",
            "--tracking-uri",
            store["uri"],
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "fold 2 (test_accuracy 0.800, the best of 2 folds with a test accuracy)" in out
    assert store["folds"][2] in out and out.strip().splitlines()[-1] == "models:/urban@champion"
    client = mlflow.MlflowClient(store["uri"])
    version = client.get_model_version_by_alias("urban", "champion")
    assert version.tags["fold"] == "2" and version.tags["parent_run_id"] == store["parent"]
    code = main(
        ["predict", "models:/urban@champion", str(clip), "--json", "--tracking-uri", store["uri"]]
    )
    row = json.loads(capsys.readouterr().out)
    assert code == 0 and row["class"] == expected.label


def test_register_a_fold_of_a_parent_or_a_fold_run(store, capsys):
    from urbansound.pipeline.cli import main

    assert (
        main(
            [
                "register",
                store["parent"],
                "--name",
                "urban-f1",
                "--fold",
                "1",
                "--tracking-uri",
                store["uri"],
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "fold 1 (test_accuracy 0.600, chosen with --fold)" in out
    assert out.strip().splitlines()[-1] == "models:/urban-f1/1"
    assert (
        main(["register", store["folds"][2], "--name", "urban-f1", "--tracking-uri", store["uri"]])
        == 0
    )
    assert capsys.readouterr().out.strip().splitlines()[-1] == "models:/urban-f1/2"


@pytest.mark.parametrize(
    "args, reason",
    [
        (
            lambda s: ["0123456789abcdef0123456789abcdef"],
            "0123456789abcdef0123456789abcdef: no such run in sqlite:///",
        ),
        (lambda s: [s["folds"][3]], "no logged model (status RUNNING"),
        (lambda s: [s["parent"], "--fold", "7"], "no fold 7 in this pipeline run (folds: 1, 2, 3)"),
        (lambda s: [s["parent"], "--fold", "3"], "no logged model"),
        (lambda s: [s["folds"][1], "--fold", "2"], "a run of fold 1, not fold 2"),
    ],
)
def test_register_refuses_in_one_line(store, capsys, args, reason):
    from urbansound.pipeline.cli import main

    code = main(["register", *args(store), "--name", "refused", "--tracking-uri", store["uri"]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("urbansound register: error: ") and reason in err[0]


def test_register_in_a_store_that_does_not_exist_is_one_line(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    code = main(
        ["register", "abc", "--name", "x", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no MLflow store at" in err and "\n" not in err
    assert not (tmp_path / "none.db").exists()
