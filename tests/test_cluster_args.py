"""`submit` and `compile` check every argument before they contact a cluster, and a
cluster that cannot be reached or refuses is one line naming the host and the reason."""

from __future__ import annotations

import socket

import pytest
from conftest import KfpResponse, intercept_kfp

from urbansound.pipeline.cli import main

GOOD = ["submit", "--host", "http://kfp.invalid", "--data", "gs://b/us8k", "--data-version", "v1"]


@pytest.fixture
def calls(monkeypatch):
    """Every request kfp.Client sends (method, url, body), answered as a KFP API would."""
    return intercept_kfp(monkeypatch)


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def test_good_arguments_reach_the_cluster(calls, capsys):
    assert (
        main(
            GOOD
            + ["--image", "ghcr.io/team/urbansound:1.0-gpu", "--pipeline-root", "gs://bucket/root"]
        )
        == 0
    )
    assert any(url.endswith("/runs") for _, url, _ in calls)
    assert "submitted run run-7" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image", "urbansound :1"], "--image 'urbansound :1': not an image reference"),
        (["--image", "Urbansound:1"], "--image 'Urbansound:1': not an image reference"),
        (["--image", "reg.io/us:"], "--image 'reg.io/us:': not an image reference"),
        (["--image", "us@sha256:abc"], "--image 'us@sha256:abc': not an image reference"),
        (["--data-version", "v1\nv2"], "--data-version 'v1\\nv2': has a control character"),
        (["--data-version", "v" * 300], "--data-version 'vvvvvvvv"),
        (["--experiment", "a\tb"], "--experiment 'a\\tb': has a control character"),
        (["--experiment", " "], "--experiment: empty"),
        (["--pipeline-root", "bucket/root"], "--pipeline-root 'bucket/root': expected a URI"),
        (["--pipeline-root", "gs://b/r oot"], "--pipeline-root 'gs://b/r oot': expected a URI"),
        (["--tracking-uri", "mlflow:5000"], "--tracking-uri 'mlflow:5000': expected a URI"),
        (["--host", "kfp.example.com"], "--host 'kfp.example.com': expected the KFP API endpoint"),
        (
            ["--host", "http://kfp\n.example.com"],
            "--host 'http://kfp\\n.example.com': has a control character",
        ),
        (["--host", "ftp://kfp:21"], "--host 'ftp://kfp:21': expected the KFP API endpoint"),
    ],
)
def test_a_bad_argument_is_one_line_and_nothing_is_contacted(calls, capsys, extra, message):
    code = main(GOOD + extra)
    line = _one_error_line(capsys)
    assert code == 2
    assert line.startswith(f"urbansound submit: error: {message}"), line
    assert len(line) < 300
    assert calls == []  # no healthz, no experiment lookup: nothing was sent


def test_a_long_value_is_quoted_only_in_part(calls, capsys):
    assert main(GOOD + ["--data-version", "v" * 5000]) == 2
    line = _one_error_line(capsys)
    assert "(5,000 characters): longer than 200 characters" in line and len(line) < 250


def test_the_data_path_may_hold_no_newline(calls, capsys):
    assert main(["submit", "--host", "http://kfp.invalid", "--data", "/mnt/a\nb"]) == 2
    assert "--data '/mnt/a\\nb': has a control character" in _one_error_line(capsys)
    assert calls == []


def test_compile_refuses_a_bad_image_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert main(["compile", "-o", str(out), "--image", "my image:1"]) == 2
    assert _one_error_line(capsys) == (
        "urbansound compile: error: --image 'my image:1': not an image reference "
        "([registry[:port]/]name[:tag][@sha256:digest], lower-case name, no spaces; "
        "e.g. ghcr.io/team/urbansound:1.0)"
    )
    assert not out.exists()
    assert (
        main(["compile", "-o", str(out), "--image", "localhost:5000/team/us@sha256:" + "a" * 64])
        == 0
    )
    assert "localhost:5000/team/us@sha256:" in out.read_text()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_one_line_naming_it(capsys):
    """A real connection to a closed local port (refused at once): no urllib3 traceback."""
    host = f"http://127.0.0.1:{_closed_port()}"
    code = main(["submit", "--host", host, "--data", "gs://b/us8k", "--data-version", "v1"])
    line = _one_error_line(capsys)
    assert code == 2
    assert line == (
        f"urbansound submit: error: {host}: cannot submit (connection refused "
        f"(is the KFP API there, e.g. kubectl port-forward?))"
    )


@pytest.mark.parametrize(
    "status, reason, says",
    [
        (
            401,
            "Unauthorized",
            "HTTP 401 Unauthorized: not authenticated: this client sends no credentials",
        ),
        (403, "Forbidden", "HTTP 403 Forbidden: forbidden: the cluster refuses this client"),
        (
            404,
            "Not Found",
            "HTTP 404 Not Found: no KFP API at this address (is it the pipelines endpoint?)",
        ),
    ],
)
def test_a_refusing_cluster_is_one_line_with_the_status(monkeypatch, capsys, status, reason, says):
    """As kfp_server_api raises it for a non-2xx answer (with the response's body)."""
    import kfp_server_api.rest
    from kfp_server_api.exceptions import ApiException

    def refuse(self, method, url, **kwargs):
        answer = KfpResponse({"error": "denied", "details": ["x" * 3000]})
        answer.status, answer.reason = status, reason
        raise ApiException(http_resp=answer)

    monkeypatch.setattr(kfp_server_api.rest.RESTClientObject, "request", refuse)
    assert main(GOOD) == 2
    assert _one_error_line(capsys) == (
        f"urbansound submit: error: http://kfp.invalid: cannot submit ({says})"
    )


def test_an_unresolvable_host_says_so():
    import urllib3

    from urbansound.pipeline.kubeflow_runner import connection_error

    pool = urllib3.HTTPConnectionPool("no-such-host.invalid", 80, retries=0)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as failed:
        pool.request("GET", "/")
    assert connection_error("http://no-such-host.invalid", failed.value) == (
        "http://no-such-host.invalid: cannot submit (the host name does not resolve)"
    )
    assert connection_error("h", ValueError("a bug")) is None  # not turned into a line


def test_a_mount_path_with_a_newline_is_refused():
    from urbansound.pipeline.kubeflow_runner import parse_pvc

    with pytest.raises(ValueError, match="the mount path has a control character"):
        parse_pvc("us8k:/mnt/da\nta")
