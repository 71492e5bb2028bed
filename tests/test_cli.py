"""The command line: help, argument errors, clear one-line failures, the UI's address."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pipeline.cli import build_parser, main, ui_command

COMMANDS = ["run", "demo-data", "ingest", "features", "ui", "compile", "submit"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: urbansound {command}")
    assert len(out.splitlines()) > 4


@pytest.mark.parametrize("folds", ["0", "11", "1,x", ""])
def test_bad_folds_are_refused_by_the_parser(folds, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--folds", folds])
    assert exit_info.value.code == 2
    assert "--folds" in capsys.readouterr().err


def test_run_on_a_missing_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["run", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / "nowhere") in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_model_is_a_config_error_naming_the_choices(tmp_path, capsys):
    code = main(["run", "--data", str(tmp_path), "--model", "resnet9000"])
    err = capsys.readouterr().err
    assert code == 2
    assert "resnet9000" in err and "baseline" in err


def test_unwritable_output_location_names_the_path(tmp_path, capsys):
    from urbansound.demo_data import write_demo_dataset

    write_demo_dataset(tmp_path / "data", folds=(1, 2, 3), clips_per_class=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["run", "--data", str(tmp_path / "data"), "--out", str(blocker / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(blocker / "out") in err
    assert "Traceback" not in err


def test_ui_command_binds_loopback_by_default_and_serves_artifacts_beside_the_db():
    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1"
    command = ui_command("sqlite:////data/mlflow.db", args.host, args.port)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--default-artifact-root") + 1] == "file:///data/mlartifacts"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port):
    """Local addresses with a socket in LISTEN state on ``port`` (from /proc/net/tcp)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.append(address)
    return found


def test_ui_serves_on_127_0_0_1_only(tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "ui", "--tracking-uri",
         f"sqlite:///{tmp_path / 'mlflow.db'}", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow UI did not answer on 127.0.0.1")
        # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex
        assert set(_listening_addresses(port)) == {"0100007F"}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
