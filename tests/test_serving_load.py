"""The served model under a burst: ``mlflow models serve`` on 127.0.0.1 gets 200 requests,
8 at a time, of mixed good and bad rows (bench/serving_load.py's :func:`request_mix`,
the burst that script measures).

Checked, never timed: every good row's probabilities equal ``predict``'s for the same clip;
every bad row gets HTTP 400 naming the row and the reason; the resident memory of the
server's process tree, sampled from /proc every 50 ms through the burst, stays under
:data:`RSS_GROWTH_BOUND` above what it held after its first request; and the server still
answers afterwards.  About a minute (the server imports TensorFlow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import serving_load as load

REQUESTS, CONCURRENCY = 200, 8
RSS_GROWTH_BOUND = 512 * 2**20
"""Bytes the server's process tree may grow by during the burst.  Each of the requests in
flight (the scoring server runs up to min(32, CPUs + 4) predictions at once) holds its
rows (under 1 MB here), one batch of at most 32 log-mels (2 MiB) and TensorFlow's scratch
for one call; measured growth was 70-80 MiB on 2 cores.  Before the rows were bounded,
one row with ``sample_rate`` 44 alone took 2.7-6 GB."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving-load")
    uri, model_uri, keras_path = load.log_model(folder / "store")
    clips = load.write_clips(folder / "clips")
    return {
        "uri": uri,
        "model_uri": model_uri,
        "folder": folder,
        "clips": clips,
        "expected": load.expected_probabilities(keras_path, clips),
    }


def test_a_burst_of_good_and_bad_rows(setup):
    from urbansound.config import CLASS_NAMES

    cases = load.request_mix(setup["clips"])
    assert sum(c.good for c in cases) == 7 and sum(not c.good for c in cases) == 6
    try:
        server, url, log = load.start_server(setup["uri"], setup["model_uri"], setup["folder"])
    except load.ServerExited as exc:
        if "address already in use" in str(exc).lower():
            pytest.skip("the port was taken before the server bound it")
        raise
    try:
        first = load.send(url, cases[0])  # TensorFlow traces the model on its first call
        assert load.check(first, setup["expected"], CLASS_NAMES) is None
        settled = load.group_rss_bytes(server.pid)
        assert settled > 100 * 2**20  # the sampler sees the process tree (TensorFlow)
        with load.RssSampler(server.pid) as rss:
            answers = load.burst(url, cases, REQUESTS, CONCURRENCY)
        after = load.send(url, cases[3])  # still answers, and correctly
        assert server.poll() is None
    finally:
        load.stop_server(server)
    wrong = [w for w in (load.check(a, setup["expected"], CLASS_NAMES) for a in answers) if w]
    assert not wrong, "\n".join(wrong[:10])
    assert len(answers) == REQUESTS
    assert sum(a.status == 200 for a in answers) == sum(a.case.good for a in answers) > 0
    assert {a.case.name for a in answers if a.status == 400} == {
        c.name for c in cases if not c.good
    }
    assert load.check(after, setup["expected"], CLASS_NAMES) is None
    assert rss.samples >= 5
    assert rss.peak - settled < RSS_GROWTH_BOUND, (
        f"peak {rss.peak / 2**20:.0f} MiB, {settled / 2**20:.0f} MiB before the burst"
    )
    assert "Traceback" not in log.read_text(errors="replace")
