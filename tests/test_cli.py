"""The command line: help, argument errors, clear one-line failures, the UI's address."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from urbansound.pipeline.cli import build_parser, main
from urbansound.pipeline.commands.ui import ui_command

COMMANDS = [
    "run",
    "demo-data",
    "ingest",
    "features",
    "ui",
    "compile",
    "submit",
    "predict",
    "models",
    "compare",
    "export",
    "listen",
    "register",
    "train-final",
]


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
    assert "resnet9000" in err and "must be one of" in err


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
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "urbansound.pipeline.cli",
            "ui",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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


# ---- checks before anything is written (issue 10: defects 3, 4, 5, 7, 9) ----------------


def _tree(root):
    """Every path under ``root`` with its size and mtime: proof that nothing was written."""
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory):
    from urbansound.demo_data import write_demo_dataset

    root = tmp_path_factory.mktemp("three-folds")
    write_demo_dataset(root, folds=(1, 2, 3), clips_per_class=1, seed=3)
    return root


def _refused(argv, capsys, *, names):
    """Run the CLI; it must exit 2 with one stderr line naming ``names``, no traceback."""
    started = time.time()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    for name in names:
        assert str(name) in lines[0], lines[0]
    assert "Traceback" not in err and "marked FAILED" not in err
    return lines[0], time.time() - started


@pytest.mark.parametrize(
    "folds, options, needed",
    [
        ((1, 2), ["--model", "sb-cnn"], 3),  # the study's protocol: a validation fold too
        ((1, 10), ["--profile", "study"], 3),
        ((4,), [], 2),  # urbannet: a test and a training fold
    ],
)
def test_too_few_folds_is_a_dataset_error_before_any_task(folds, options, needed, tmp_path, capsys):
    from urbansound.demo_data import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, folds=folds, clips_per_class=1, seed=1)
    _line, took = _refused(
        ["run", "--data", str(data), "--out", str(tmp_path / "out"), *options],
        capsys,
        names=[data, f"at least {needed} folds", str(list(folds))],
    )
    assert not (tmp_path / "out").exists() and took < 30


def test_three_folds_of_which_one_has_only_rejected_rows_is_refused(tmp_path, capsys):
    from urbansound.demo_data import write_demo_dataset

    data = tmp_path / "data"
    write_demo_dataset(data, folds=(1, 2, 3), clips_per_class=1, seed=1)
    for wav in (data / "audio" / "fold3").iterdir():
        wav.unlink()  # every fold-3 row now names a missing file
    _refused(
        ["run", "--data", str(data), "--out", str(tmp_path / "out"), "--model", "sb-cnn"],
        capsys,
        names=[data, "folds present: [1, 2]"],
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folds", ["5", "1,4", "10"])
def test_a_test_fold_not_in_the_data_is_refused_with_integer_folds(
    folds, three_folds, tmp_path, capsys
):
    line, _ = _refused(
        ["run", "--data", str(three_folds), "--folds", folds, "--out", str(tmp_path / "out")],
        capsys,
        names=[three_folds, "--folds"],
    )
    assert ".0" not in line  # "[5]", not "[5.0]"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("inside", ["audio", "audio/fold1", "metadata", ".", "new/deeper"])
def test_output_inside_the_dataset_is_refused_before_writing_anything(
    inside, three_folds, tmp_path, capsys
):
    before = _tree(three_folds)
    out = three_folds / inside
    _refused(
        [
            "run",
            "--data",
            str(three_folds),
            "--out",
            str(out),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        capsys,
        names=[out.resolve(), "inside the dataset"],
    )
    assert _tree(three_folds) == before  # no run.log, no pipeline_root, no lock file


def test_output_through_a_link_into_the_dataset_is_refused(three_folds, tmp_path, capsys):
    before = _tree(three_folds)
    link = tmp_path / "looks-outside"
    link.symlink_to(three_folds / "audio")
    _refused(
        [
            "run",
            "--data",
            str(three_folds),
            "--out",
            str(link / "o"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        capsys,
        names=["inside the dataset"],
    )
    assert _tree(three_folds) == before


def test_a_tracking_store_inside_the_dataset_is_refused(three_folds, tmp_path, capsys):
    before = _tree(three_folds)
    uri = f"sqlite:///{three_folds / 'metadata' / 'mlflow.db'}"
    _refused(
        ["run", "--data", str(three_folds), "--out", str(tmp_path / "out"), "--tracking-uri", uri],
        capsys,
        names=[uri, "inside the dataset"],
    )
    assert _tree(three_folds) == before and not (tmp_path / "out").exists()


def _bad_uris(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are not the droids\n" * 100)
    return {
        "under a file": (f"sqlite:///{a_file}/mlflow.db", str(a_file)),
        "in /proc": ("sqlite:////proc/mlflow.db", "/proc"),
        "a folder": (f"sqlite:///{tmp_path}", str(tmp_path)),
        "not a database": (f"sqlite:///{not_a_db}", "not a usable sqlite database"),
        "a plain word": ("garbage", "not a tracking store URI"),
        "unknown scheme": ("foo://bar", "unsupported scheme"),
        "in memory": ("sqlite://", "in-memory"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "under a file",
        "in /proc",
        "a folder",
        "not a database",
        "a plain word",
        "unknown scheme",
        "in memory",
    ],
)
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_an_unusable_tracking_uri_is_one_line_before_anything_starts(
    case, how, three_folds, tmp_path, capsys, monkeypatch
):
    uri, reason = _bad_uris(tmp_path)[case]
    argv = ["run", "--data", str(three_folds), "--out", str(tmp_path / "out")]
    if how == "flag":
        argv += ["--tracking-uri", uri]
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _, took = _refused(argv, capsys, names=[uri, reason])
    assert took < 30
    assert not (tmp_path / "out").exists()


def _silent_server():
    """A TCP port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_tracking_server_fails_in_seconds_naming_it(
    kind, three_folds, tmp_path, capsys
):
    server = None
    if kind == "refused":
        uri = f"http://127.0.0.1:{free_port()}"
    else:
        server = _silent_server()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        _line, took = _refused(
            [
                "run",
                "--data",
                str(three_folds),
                "--out",
                str(tmp_path / "out"),
                "--tracking-uri",
                uri,
            ],
            capsys,
            names=[uri, "unreachable"],
        )
    finally:
        if server is not None:
            server.close()
    assert took < 30, took  # MLflow's own retries would take ≈ 4 minutes
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "beam_arg, reason",
    [
        ("--runner=NoSuchRunner", "unknown Beam runner"),
        ("--direct_num_workers=abc", "invalid int value"),
        ("--no_such_beam_option=1", "unknown Beam option"),
        ("runner=FnApiRunner", "not a Beam option"),
        ("--runner=apache_beam.runners.no_such_module.NoSuchRunner", "cannot be loaded"),
    ],
)
def test_bad_beam_options_are_refused_before_any_task(
    beam_arg, reason, three_folds, tmp_path, capsys
):
    _refused(
        [
            "run",
            "--data",
            str(three_folds),
            "--out",
            str(tmp_path / "out"),
            f"--beam-arg={beam_arg}",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
        ],
        capsys,
        names=[reason],
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.db").exists()


def test_valid_beam_options_pass_the_check():
    from urbansound.pipeline.preflight import check_beam_args

    check_beam_args(
        [
            "--runner=FnApiRunner",
            "--direct_num_workers=2",
            "--direct_running_mode=multi_processing",
        ],
        local=True,
    )
    # for a cluster, a runner this machine cannot load is the image's business
    check_beam_args(["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"], local=False)


def test_an_output_folder_in_use_is_refused_with_one_line(three_folds, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'pid 4242, since 12:00:00')\n"
            "print('locked', flush=True); time.sleep(60)",
            str(out / ".urbansound-run.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _tree(out)
        _refused(
            [
                "run",
                "--data",
                str(three_folds),
                "--out",
                str(out),
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'mlflow.db'}",
            ],
            capsys,
            names=[out, "in use", "pid 4242"],
        )
        assert _tree(out) == before  # no run.log, no pipeline_root
    finally:
        holder.kill()
        holder.wait()


def test_the_output_lock_is_released_when_its_holder_dies(tmp_path):
    from urbansound.pipeline.local_runner import OutputInUse, output_lock

    with output_lock(tmp_path):
        with pytest.raises(OutputInUse, match="in use"):
            with output_lock(tmp_path):
                pass
    with output_lock(tmp_path):  # released: free again
        pass


def test_the_console_keeps_errors_when_the_log_cannot_be_written(tmp_path):
    from urbansound.pipeline.console import ConsoleLog

    console = ConsoleLog(tmp_path / "a-file" / "run.log")
    (tmp_path / "a-file").write_text("blocks the log folder")
    with console:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; print('urbansound ingest: error: x.csv: broken', "
                "file=sys.stderr); print('OSError: [Errno 28] No space left on device: "
                "\\'/data/f.tfrecord\\'')",
            ]
        )
    assert console.log_error and "a-file" in console.log_error
    assert console.user_error() == "urbansound ingest: error: x.csv: broken"
    assert "/data/f.tfrecord" in console.storage_error()
    assert "No space left" in console.tail(5)


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            OSError(28, "No space left on device", "/mnt/o/fold1.tfrecord"),
            "/mnt/o/fold1.tfrecord: No space left on device",
        ),
        (
            RuntimeError("/mnt/o/fold2.tfrecord; No space left on device"),
            "/mnt/o/fold2.tfrecord: No space left on device",
        ),
        (
            RuntimeError("(sqlite3.OperationalError) database or disk is full"),
            "/s/mlflow.db: No space left on device (database or disk is full)",
        ),
        (OSError(30, "Read-only file system", "/ro/x"), "/ro/x: Read-only file system"),
        (ValueError("need at least 3 folds"), None),
    ],
)
def test_storage_errors_are_recognised_whoever_raises_them(error, expected):
    from urbansound.components.errors import storage_error

    assert storage_error(error, default_path="/s/mlflow.db") == expected


def test_a_storage_error_inside_a_component_is_one_line_and_exit_2(capsys):
    from urbansound.components.errors import user_errors

    with pytest.raises(SystemExit) as stopped:
        with user_errors("features"):
            try:
                raise OSError(28, "No space left on device", "/mnt/o/fold1.tfrecord")
            except OSError as exc:
                raise RuntimeError("a Beam worker failed") from exc
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "urbansound features: error: cannot write /mnt/o/fold1.tfrecord: No space left on device"
    )


def test_the_resume_key_follows_what_kfp_caches(tmp_path, monkeypatch):
    """Same output folder, arguments and code: the same MLflow parent is resumed; another
    --out (another cache) or other code is another run (issue 10, defect 9)."""
    import urbansound.pipeline.local_runner as runner
    from urbansound.config import Config

    config = Config()
    arguments = {"data_root": "/d", "config_json": config.to_json(), "test_folds": [1]}
    key = runner.resume_key(arguments, tmp_path / "a", config)
    assert runner.resume_key(dict(arguments), tmp_path / "a", config) == key
    assert runner.resume_key(arguments, tmp_path / "b", config) != key
    assert runner.resume_key(arguments | {"test_folds": [2]}, tmp_path / "a", config) != key
    monkeypatch.setattr(runner, "pipeline_fingerprint", lambda config: "changed component code")
    assert runner.resume_key(arguments, tmp_path / "a", config) != key


def test_the_console_echoes_the_stages_progress_lines_and_not_the_rest(tmp_path, capfd):
    """A local run's terminal shows ingest's and features' progress lines as the task
    subprocesses print them (urbansound.components.progress), and none of their other output."""
    from urbansound.components.progress import progress_line
    from urbansound.pipeline.console import ConsoleLog

    with ConsoleLog(tmp_path / "run.log"):
        subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent("""
            from urbansound.components.progress import progress_line
            p = progress_line("features", every_s=0)
            print("INFO:apache_beam: a line nobody needs")
            p(128, 1881); p(1881, 1881)
        """),
            ],
            cwd=str(Path(__file__).resolve().parents[1]),
        )
    shown = [ln.strip() for ln in capfd.readouterr().out.splitlines()]
    assert [ln for ln in shown if ln.startswith("features: ")] == [
        ln for ln in shown if "clips (" in ln
    ]
    assert [ln.split(" (")[0] for ln in shown if ln.startswith("features: ")] == [
        "features: 128/1881 clips",
        "features: 1881/1881 clips",
    ]
    assert not any("apache_beam" in ln for ln in shown)
    assert "a line nobody needs" in (tmp_path / "run.log").read_text()
    lines = []
    progress = progress_line("ingest", say=lines.append, every_s=3600)
    for done in range(1, 101):
        progress(done, 100)
    assert [ln.split(" (")[0] for ln in lines] == ["ingest: 1/100 clips", "ingest: 100/100 clips"]
