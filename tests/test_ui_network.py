"""`urbansound ui` beyond this machine: a warning that the UI has no login, the addresses
that reach it instead of 0.0.0.0, and MLflow told to allow them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from conftest import free_port

from urbansound.pipeline import ui_network
from urbansound.pipeline.cli import main
from urbansound.pipeline.commands.ui import ui_command


@pytest.fixture
def started(monkeypatch):
    """subprocess.call recorded instead of starting MLflow; the machine's addresses fixed."""
    seen = []
    monkeypatch.setattr(subprocess, "call", lambda command: seen.append(command) or 0)
    monkeypatch.setattr(
        ui_network,
        "machine_addresses",
        lambda: ["teamhost", "teamhost.lab.example", "10.1.2.3", "fd00::7"],
    )
    return seen


def _option(command, name):
    return command[command.index(name) + 1] if name in command else None


def test_every_interface_warns_and_prints_reachable_addresses(started, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["ui", "--host", "0.0.0.0", "--port", "5055", "--tracking-uri", uri]) == 0
    out, err = capsys.readouterr()
    assert "0.0.0.0" not in out.replace("--host 0.0.0.0", "")
    assert f"MLflow UI for {uri}: http://teamhost:5055  (Ctrl-C stops it)" in out
    assert "  also: http://teamhost.lab.example:5055" in out
    assert "  also: http://10.1.2.3:5055" in out
    assert "fd00::7" not in out  # 0.0.0.0 listens on IPv4 only
    assert err.strip() == (
        f"warning: MLflow's UI has no authentication: anyone who can reach this port can "
        f"read, change and delete every run and model in {uri}. Use it on a trusted network, "
        f"or put it behind a login (mlflow server --app-name basic-auth, or a reverse proxy "
        f"with authentication: see the README)"
    )
    (command,) = started
    assert _option(command, "--host") == "0.0.0.0" and _option(command, "--port") == "5055"
    hosts = _option(command, "--allowed-hosts").split(",")
    assert {
        "teamhost:5055",
        "teamhost.lab.example:5055",
        "10.1.2.3:5055",
        "localhost:*",
        "127.0.0.1:*",
    } <= set(hosts)
    assert _option(command, "--cors-allowed-origins").split(",") == [
        "http://teamhost:5055",
        "http://teamhost.lab.example:5055",
        "http://10.1.2.3:5055",
    ]


def test_ipv6_wildcard_prints_bracketed_addresses(started, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["ui", "--host", "::", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "  also: http://[fd00::7]:5000" in out
    assert "[fd00::7]:5000" in _option(started[0], "--allowed-hosts").split(",")


def test_given_allowed_hosts_and_origins_are_passed_as_they_are(started, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (
        main(
            [
                "ui",
                "--host",
                "0.0.0.0",
                "--tracking-uri",
                uri,
                "--allowed-hosts",
                "mlflow.team.example,192.168.*",
                "--cors-allowed-origins",
                "https://mlflow.team.example",
            ]
        )
        == 0
    )
    command = started[0]
    assert _option(command, "--allowed-hosts") == "mlflow.team.example,192.168.*"
    assert _option(command, "--cors-allowed-origins") == "https://mlflow.team.example"
    assert "warning: MLflow's UI has no authentication" in capsys.readouterr().err


def test_loopback_says_nothing_and_adds_nothing(started, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["ui", "--tracking-uri", uri]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"MLflow UI for {uri}: http://127.0.0.1:5000  (Ctrl-C stops it)"
    assert err == ""
    assert "--allowed-hosts" not in started[0] and "--cors-allowed-origins" not in started[0]


def test_a_port_out_of_range_is_one_line(started, capsys):
    assert main(["ui", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "urbansound ui: error: --port 70000: must be 1..65535"
    assert started == []


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.1.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("teamhost", False),
    ],
)
def test_loopback_is_told_from_other_addresses(host, loopback):
    assert ui_network.is_loopback(host) is loopback


def test_reachable_addresses():
    machine = ["teamhost", "10.1.2.3", "fd00::7"]
    assert ui_network.reachable_addresses("0.0.0.0", machine) == ["teamhost", "10.1.2.3"]
    assert ui_network.reachable_addresses("::", machine) == machine
    assert ui_network.reachable_addresses("10.9.9.9", machine) == ["10.9.9.9"]
    real = ui_network.machine_addresses()  # this machine: its name first, no loopback
    assert real[0] == socket.gethostname() or ui_network.is_loopback(socket.gethostname())
    assert not any(ui_network.is_loopback(a) for a in real)


def _status(port: int, host_header: str, path: str = "/") -> int:
    """The HTTP status of GET ``path`` sent with ``host_header`` (/health is exempt from
    MLflow's host check; the UI's page is not)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host_header}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_mlflow_takes_the_options_and_answers_the_allowed_names(tmp_path):
    """The command line runs: MLflow 3.17 accepts both options, answers a Host header it
    was told to allow and refuses (403) one it was not."""
    port = free_port()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    addresses = ["teamhost.lab.example"]
    command = ui_command(
        uri,
        "127.0.0.1",
        port,
        allowed_hosts=",".join(ui_network.allowed_hosts(addresses, port)),
        cors_origins=",".join(ui_network.cors_origins(addresses, port)),
    )
    server = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _status(port, f"127.0.0.1:{port}", "/health") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, "mlflow ui exited"
            assert time.monotonic() < deadline, "mlflow ui did not answer in 60 s"
            time.sleep(0.5)
        assert _status(port, f"teamhost.lab.example:{port}") == 200
        assert _status(port, f"elsewhere.example:{port}") == 403
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
