"""The served model's work per request is bounded (components/serving.py): a row's
``sample_rate`` must be a finite whole number of Hz in 1,000..768,000 (as paths and
``listen`` take), a waveform row at most 10 minutes, and one call at most
``MAX_REQUEST_WINDOWS`` windows, all rows together; a row beyond is refused naming it
(HTTP 400 when served), before its audio is decoded or resampled.  A plain list of paths
is accepted where it reaches the model, and refused in one line (never an empty table)
where MLflow's signature has already dropped it.

The model is a seeded, untrained sb-cnn logged the way the train task logs it."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from conftest import one_clip_result

from urbansound.config import CLASS_NAMES, Config

mlflow = pytest.importorskip("mlflow")

CONFIG = Config().override(**{"audio.pad_mode": "zeros", "train.model": "sb-cnn"})
SR = CONFIG.audio.sample_rate


def tone(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A 440 Hz tone with a little noise, float32 [shape=(n,)]."""
    t = np.arange(int(round(seconds * rate))) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fold run whose logged model is the pyfunc (as components.fold_logging logs it)."""
    from urbansound.components import fold_logging, runs
    from urbansound.models import build_model
    from urbansound.training import CONFIG_FILE, MODEL_FILE

    folder = tmp_path_factory.mktemp("fold1")
    build_model(
        "sb-cnn",
        seed=0,
        band_mean=np.full(128, -40.0, np.float32),
        band_variance=np.full(128, 400.0, np.float32),
    ).save(folder / MODEL_FILE)
    (folder / CONFIG_FILE).write_text(CONFIG.to_json())
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    parent = runs.start_parent_run(uri, "serving-bounds", CONFIG.flat())
    run = runs.start_fold_run(uri, parent, 1, CONFIG.flat())
    result = one_clip_result()
    fold_logging.log_fold_result(uri, run, result, str(folder / MODEL_FILE))
    return {"uri": uri, "run": run, "keras": folder / MODEL_FILE}


@pytest.fixture(scope="module")
def served(store):
    mlflow.set_tracking_uri(store["uri"])
    return mlflow.pyfunc.load_model(f"runs:/{store['run']}/model")


@pytest.fixture()
def classifier(served):
    """The AudioClassifier inside the pyfunc, with its model calls counted."""
    model = served.unwrap_python_model()
    inner = model._classify
    calls = []

    def counted(x):
        calls.append(len(x))
        return inner(x)

    model._classify = counted
    model.calls = calls
    yield model
    model._classify = inner


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for name, seconds in (("short", 1.0), ("four", 4.0), ("ten", 10.0), ("minute", 60.0)):
        out[name] = folder / f"{name}.wav"
        sf.write(out[name], tone(seconds, SR), SR, subtype="PCM_16")
    return out


def _refusal(call) -> str:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        call()
    assert refused.value.get_http_status_code() == 400
    message = str(refused.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------
# sample_rate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rate", [1, 44, 999, 768_001, 2e9, math.inf, -math.inf, 22050.5, -22050, "fast"]
)
def test_an_implausible_sample_rate_is_400_naming_the_row(served, classifier, rate):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "waveform": [tone(0.5, 8000).tolist(), tone(1.0, 1000).tolist()],
            "sample_rate": [8000, rate],
        }
    )
    message = _refusal(lambda: classifier.predict(None, frame))
    assert message.startswith(
        "input row 1: 'sample_rate' must be a whole number of Hz in 1,000..768,000, not "
    )
    assert classifier.calls == [1]  # row 0 only: row 1 was never resampled nor classified


def test_the_rate_bounds_themselves_are_accepted(classifier):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "waveform": [tone(1.0, 1000).tolist(), tone(0.1, 768_000).tolist()],
            "sample_rate": [1000, 768_000],
        }
    )
    out = classifier.predict(None, frame)
    assert out["windows"].tolist() == [1, 1]
    assert out["duration_s"].tolist() == pytest.approx([1.0, 0.1], abs=1e-3)


def test_a_rate_of_44_does_not_resample_to_thousands_of_windows(classifier):
    """The issue's case: 3 s of samples sent with ``sample_rate`` 44 (for 44,100) would be
    resampled to 33 million samples and 2,000 windows; now nothing is allocated for it."""
    row = {"waveform": tone(3.0, 44_100).tolist(), "sample_rate": 44}
    tracemalloc.start()
    try:
        message = _refusal(lambda: classifier.predict(None, [row]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == (
        "input row 0: 'sample_rate' must be a whole number of Hz in 1,000..768,000, not '44'"
    )
    assert peak < 8 * 2**20  # bytes: no resampled copy (it would be 132 MB)
    assert classifier.calls == []


# ---------------------------------------------------------------------------
# windows and length
# ---------------------------------------------------------------------------


def test_a_waveform_longer_than_ten_minutes_is_refused_before_conversion(classifier):
    message = _refusal(
        lambda: classifier.predict(
            None, [{"waveform": np.full(601_000, 0.1).tolist(), "sample_rate": 1000}]
        )
    )
    assert message == "input row 0: waveform: too long (601 s > 600 s)"


def test_a_row_of_more_windows_than_a_request_may_have_is_refused_before_any(classifier):
    """A 10-minute row at a hop of 20 ms: 29,851 windows; refused from its length, with
    nothing decoded, resampled or classified, in a few MB."""
    row = {"waveform": tone(600.0, 1000).tolist(), "sample_rate": 1000}
    tracemalloc.start()
    try:
        message = _refusal(lambda: classifier.predict(None, [row], params={"hop_s": 0.02}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == (
        "input row 0: 29,851 windows is more than the 2,400 one request may "
        "classify: send a shorter recording or a longer hop_s"
    )
    assert peak < 8 * 2**20  # the resampled row would be 53 MB
    assert classifier.calls == []


def test_a_path_row_is_counted_from_its_header_before_decoding(classifier, clips):
    import pandas as pd

    from urbansound.windows import count_windows

    want = count_windows(60 * SR, window=CONFIG.audio.clip_samples, hop=441)  # hop 20 ms
    assert want == 2851
    message = _refusal(
        lambda: classifier.predict(
            None,
            pd.DataFrame({"path": [str(clips["short"]), str(clips["minute"])]}),
            params={"hop_s": 0.02},
        )
    )
    assert message == (
        f"input row 1: {want:,} windows is more than the 2,400 one request "
        f"may classify: send a shorter recording or a longer hop_s"
    )
    assert sum(classifier.calls) == 1  # row 0's one window


def test_the_windows_of_all_rows_together_are_capped(classifier, clips, monkeypatch):
    import pandas as pd

    import urbansound.predict as predict

    monkeypatch.setattr(predict, "MAX_REQUEST_WINDOWS", 8)
    frame = pd.DataFrame(
        {
            "path": [str(clips["four"]), None, None],
            "waveform": [None, tone(10.0, SR).tolist(), tone(4.0, 16000).tolist()],
            "sample_rate": [None, SR, 16000],
        }
    )
    message = _refusal(lambda: classifier.predict(None, frame))
    # 2 + 6 windows fit exactly; row 2's 2 more do not
    assert message == (
        "input row 2: 2 windows after the 8 of the rows before it is more "
        "than the 8 one request may classify: send this row in another request"
    )
    assert sum(classifier.calls) == 8
    ok = classifier.predict(None, frame.iloc[:2])
    assert ok["windows"].tolist() == [2, 6]


def test_a_header_that_understates_the_length_is_stopped_while_decoding(
    classifier, clips, monkeypatch
):
    """The cap holds while decoding: a file whose header the check could not trust."""
    import pandas as pd

    import urbansound.predict as predict

    monkeypatch.setattr(predict, "file_windows", lambda *a, **k: 1)  # the header "says" 1
    monkeypatch.setattr(predict, "MAX_REQUEST_WINDOWS", 3)
    message = _refusal(
        lambda: classifier.predict(None, pd.DataFrame({"path": [str(clips["ten"])]}))
    )
    assert message == "input row 0: more than 3 windows, the most this request may still classify"
    assert sum(classifier.calls) <= 3


def test_predict_waveform_blocks_stops_at_max_windows_before_classifying_more():
    from urbansound.predict import predict_waveform_blocks

    seen = []

    def classify(x):
        seen.append(len(x))
        return np.full((len(x), 10), 0.1, np.float32)

    blocks = [tone(1.0, SR, seed=i) for i in range(10)]  # 10 s: 6 windows at hop 1.5 s
    with pytest.raises(ValueError, match="more than 4 windows"):
        predict_waveform_blocks(blocks, classify, config=CONFIG, max_windows=4, batch_size=2)
    assert sum(seen) == 4
    _, _, p = predict_waveform_blocks(blocks, classify, config=CONFIG, max_windows=6)
    assert p.shape == (6, 10)


def test_count_windows_equals_the_windows_made():
    from urbansound.windows import count_windows, window_starts

    for n, w, h in [(1, 5, 2), (5, 5, 2), (6, 5, 2), (7, 5, 2), (100, 7, 3), (10**6, 66150, 1)]:
        assert count_windows(n, window=w, hop=h) == len(window_starts(n, window=w, hop=h))


@pytest.mark.parametrize(
    "hop, reason",
    [
        (0.001, "hop 0.001 s is shorter than 20 ms: 1,000 windows per second of audio"),
        (1e-9, "hop 1e-09 s is shorter than 20 ms: 1,000,000,000 windows per second of audio"),
        (0.0, "hop must be > 0 and <= the window (3 s), not 0.0"),
    ],
)
def test_a_hop_of_a_few_samples_is_refused(classifier, clips, hop, reason):
    import pandas as pd

    message = _refusal(
        lambda: classifier.predict(
            None, pd.DataFrame({"path": [str(clips["short"])]}), params={"hop_s": hop}
        )
    )
    assert message == f"input row 0: {reason}"
    assert classifier.calls == []


def test_a_bad_hop_param_is_one_line_not_a_traceback(classifier, clips):
    import pandas as pd

    message = _refusal(
        lambda: classifier.predict(
            None, pd.DataFrame({"path": [str(clips["short"])]}), params={"hop_s": "fast"}
        )
    )
    assert message == "param hop_s must be a number of seconds, not 'fast'"


# ---------------------------------------------------------------------------
# a plain list of paths
# ---------------------------------------------------------------------------


def test_a_list_of_paths_is_taken_as_the_path_column(classifier, clips):
    import pandas as pd

    paths = [str(clips["four"]), str(clips["short"])]
    want = classifier.predict(None, pd.DataFrame({"path": paths}))
    for given in (
        paths,
        tuple(paths),
        pd.Series(paths),
        np.array(paths),
        pd.DataFrame(paths),
        pd.DataFrame({"0": paths}),
    ):
        got = classifier.predict(None, given)
        pd.testing.assert_frame_equal(got, want)
    assert want["windows"].tolist() == [2, 1]


def test_through_the_pyfunc_a_list_of_paths_is_refused_not_an_empty_table(served, clips):
    """MLflow's signature drops the column a list becomes (named 0) before the model sees
    it; the answer must not be an empty table with only a logged warning."""
    import pandas as pd

    for given in (
        [str(clips["four"])],
        pd.Series([str(clips["four"])]),
        pd.DataFrame([str(clips["four"])]),
    ):
        message = _refusal(lambda given=given: served.predict(given))
        assert message.startswith(
            "no 'path' or 'waveform' column in the input (columns: []); "
            "a served model drops the columns its signature does not "
            "name (a misspelt one, or the column 0 a plain list of paths "
            "becomes): send a 'path' column, e.g. {\"dataframe_split\""
        )
    message = _refusal(lambda: served.predict(pd.DataFrame({"paths": [str(clips["four"])]})))
    assert message.startswith("no 'path' or 'waveform' column in the input")
    out = served.predict(pd.DataFrame({"path": [str(clips["four"])]}))
    assert out["class"][0] in CLASS_NAMES and out["windows"][0] == 2
