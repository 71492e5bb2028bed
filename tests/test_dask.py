"""The features stage on a real ``dask.distributed`` cluster (Beam's Dask runner).

Issue 7: a LocalCluster of two worker processes on 127.0.0.1 runs the stage (with a
deformation) and writes the same examples as the default runner, record for record;
``urbansound features --beam-runner dask --dask-address ...`` gets there from the
command line, and an address where no scheduler answers is one line, exit code 2.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from urbansound.config import Config

NOISE = "background_noise_traffic"  # synthesised noise: needs no binary
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


@pytest.fixture(scope="module")
def default_output(waveforms):
    """The default runner's output (one process)."""
    from urbansound.beam_features import run_features
    from urbansound.records import fold_files, iter_records

    config = Config().override(**{"augment.deformations": (NOISE,)})
    manifest = run_features(
        waveforms / "wave",
        waveforms / "default",
        config=config,
        beam_args=["--runner=FnApiRunner"],
        deform_folds=[2, 3],
        clips_per_shard=5,
    )
    return manifest, {
        f: sorted(iter_records(fold_files(waveforms / "default", f))) for f in (1, 2, 3)
    }


def test_the_stage_on_a_dask_cluster_equals_the_default_runner(waveforms, cluster, default_output):
    from distributed import Client

    from urbansound.beam_features import dask_beam_args, run_features
    from urbansound.records import fold_files, iter_records

    config = Config().override(**{"augment.deformations": (NOISE,)})
    manifest = run_features(
        waveforms / "wave",
        waveforms / "dask",
        config=config,
        beam_args=dask_beam_args(cluster.scheduler_address),
        deform_folds=[2, 3],
        clips_per_shard=5,
    )
    records = {f: sorted(iter_records(fold_files(waveforms / "dask", f))) for f in (1, 2, 3)}
    expected_manifest, expected = default_output
    assert records == expected  # record for record, byte for byte
    assert sum(len(v) for v in records.values()) == 50  # 30 originals + 20 noisy copies
    # no Beam metrics on Dask: the counts come from the shards themselves, exactly
    assert (
        manifest["folds"]
        == expected_manifest["folds"]
        == {
            "1": {"original": 10},
            "2": {"original": 10, NOISE: 10},
            "3": {"original": 10, NOISE: 10},
        }
    )
    assert manifest["shards"] == {"1": 2, "2": 2, "3": 2}
    # both worker processes of the cluster wrote shards (none ran in this process)
    with Client(cluster.scheduler_address, timeout=30) as client:
        pids = set(client.run(os.getpid).values())
    assert manifest["workers"] == 2 and len(pids) == 2 and os.getpid() not in pids


def test_features_command_on_dask_is_quiet_and_logs_to_a_file(waveforms, cluster, default_output):
    """The command as a user runs it (its own process): a few lines of its own on the
    terminal, nothing of Beam's, Dask's or TensorFlow's."""
    from urbansound.records import fold_files, iter_records

    out = waveforms / "cli"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "urbansound.pipeline.cli",
            "features",
            "--data",
            str(waveforms / "wave"),
            "--out",
            str(out),
            "--augment",
            NOISE,
            "--beam-runner",
            "dask",
            "--dask-address",
            cluster.scheduler_address,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) <= 8, lines
    assert not any("INFO" in ln or "cuda" in ln.lower() or "apitools" in ln for ln in lines)
    assert lines[0] == f"Dask scheduler {cluster.scheduler_address}: 2 workers"
    assert lines[1] == f"full log: {out / 'features.log'}  (-v shows it here)"
    assert lines[-2].startswith("features: 30/30 clips (")
    assert lines[-1].startswith("60 logmel examples in")  # every fold deformed
    assert (out / "features.log").exists()  # what the driver had to say (little: the
    # workers import TensorFlow and Beam's workers, and their output is the cluster's)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["workers"] == 2
    # --augment deforms every fold here (no run to say which folds train): compare the
    # folds the default run deformed too
    assert {f: sorted(iter_records(fold_files(out, f))) for f in (2, 3)} == {
        f: default_output[1][f] for f in (2, 3)
    }


def test_an_address_where_no_scheduler_answers_is_one_line(tmp_path, capsys):
    from urbansound.pipeline.cli import main

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(
        [
            "features",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--beam-runner",
            "dask",
            "--dask-address",
            f"tcp://127.0.0.1:{port}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        f"urbansound features: error: --dask-address tcp://127.0.0.1:{port}: no "
        f"Dask scheduler answers (Connection refused)"
    ]
    assert not (tmp_path / "o").exists()  # nothing started


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--beam-runner", "dask"], "--beam-runner dask needs --dask-address tcp://HOST:PORT"),
        (
            ["--dask-address", "127.0.0.1:8786"],
            "--dask-address 127.0.0.1:8786: expected tcp://HOST:PORT",
        ),
        (
            ["--beam-runner", "local", "--dask-address", "tcp://127.0.0.1:8786"],
            "--dask-address needs --beam-runner dask",
        ),
        (
            [
                "--beam-runner",
                "dask",
                "--dask-address",
                "tcp://127.0.0.1:8786",
                "--beam-arg=--runner=FnApiRunner",
            ],
            "--beam-runner dask and --beam-arg=--runner=FnApiRunner name two runners",
        ),
    ],
)
def test_runner_options_that_cannot_work_are_one_line(tmp_path, capsys, argv, message):
    from urbansound.pipeline.cli import main

    for command in (
        ["features", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        ["run", "--out", str(tmp_path / "o")],
    ):
        code = main(command + argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
        assert not (tmp_path / "o").exists()


def test_run_hands_the_dask_runner_to_the_features_task(
    waveforms, cluster, tmp_path, monkeypatch, capsys
):
    """``urbansound run --beam-runner dask --dask-address A`` gives the pipeline Beam's
    Dask runner at A (the run itself is stopped at the hand-over)."""
    import urbansound.pipeline.local_runner as local_runner
    from urbansound.pipeline.cli import main

    handed = {}

    class Stop(KeyboardInterrupt):
        pass

    def run_local(data, **kwargs):
        handed.update(kwargs)
        raise Stop

    monkeypatch.setattr(local_runner, "run_local", run_local)
    code = main(
        [
            "run",
            "--data",
            str(waveforms / "data"),
            "--out",
            str(tmp_path / "o"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
            "--beam-runner",
            "dask",
            "--dask-address",
            cluster.scheduler_address,
        ]
    )
    assert code == 130  # the stand-in's interruption
    assert handed["beam_args"] == [
        "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
        f"--dask_client_address={cluster.scheduler_address}",
    ]
    assert f"Dask scheduler {cluster.scheduler_address}: 2 workers" in capsys.readouterr().out
