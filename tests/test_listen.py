"""urbansound listen: the live windower equals predict's offline windows, arrival times,
pacing, the summary, and the CLI on a PCM stream through stdin (a subprocess, as
``arecord | urbansound listen`` runs it).

The model is an untrained SB-CNN (seeded): what is checked is the streaming around it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from urbansound.audio import AudioError
from urbansound.config import CLASS_NAMES, Config, config_for
from urbansound.live import (
    ListenStats,
    TimedBlock,
    file_blocks,
    pcm_blocks,
    resample_blocks,
    stream_windows,
    warm_up,
)
from urbansound.pipeline.cli import main
from urbansound.predict import hop_samples, stream_audio
from urbansound.windows import iter_windows

SR = 22050
URBANSOUND = str(Path(sys.executable).with_name("urbansound"))


def signal_int16(seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    """A tone with noise, as int16 [shape=(n,)]."""
    t = np.arange(int(round(seconds * rate))) / rate
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(seed).standard_normal(
        t.size
    )
    return np.round(y * 32767).astype("<i2")


def chunks_of(data: bytes, sizes, times=None):
    """``data`` cut into chunks of the sizes given, cycled (odd sizes split samples)."""
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append((data[i : i + n], float(k) if times is None else times[k]))
        i, k = i + n, k + 1
    return out


def offline_windows(path, config=Config(), hop_s=1.5):
    a = config.audio
    return list(
        iter_windows(
            stream_audio(path, sample_rate=a.sample_rate),
            window=a.clip_samples,
            hop=hop_samples(hop_s, config),
            pad_mode=a.pad_mode,
        )
    )


# ---------------------------------------------------------------------------
# the library
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate, seconds", [(SR, 10.3), (44100, 10.3), (16000, 4.0), (SR, 1.0)])
def test_live_windows_equal_the_offline_windows(tmp_path, rate, seconds):
    """The same int16 samples as a WAV file through predict's path and as PCM bytes in
    odd-sized chunks through the live path: the same windows, the same samples."""
    pcm = signal_int16(seconds, rate)
    wav = tmp_path / "a.wav"
    sf.write(wav, pcm, rate, subtype="PCM_16")
    offline = offline_windows(wav)
    blocks = resample_blocks(pcm_blocks(chunks_of(pcm.tobytes(), [1001, 4410, 7])), rate, SR)
    live = list(stream_windows(blocks, config=Config()))
    assert [(w.start, w.end) for w in live] == [(s, e) for s, e, _ in offline]
    for w, (_, _, y) in zip(live, offline):
        np.testing.assert_array_equal(w.samples, y)
    if seconds == 10.3 and rate == SR:
        assert [w.start / SR for w in live] == [0, 1.5, 3, 4.5, 6, 7.3]


def test_a_window_arrives_with_the_block_holding_its_last_sample():
    pcm = signal_int16(5.0).tobytes()
    size = SR * 2 // 2  # 0.5 s per chunk, arriving at t = 100 + k
    blocks = pcm_blocks(chunks_of(pcm, [size], times=[100.0 + k for k in range(20)]))
    live = list(stream_windows(blocks, config=Config()))
    # window 0 ends at 3.0 s: the 6th chunk (k=5) holds sample 66,149; window 1 (1.5-4.5 s)
    # ends in chunk 8; the end-aligned last (2-5 s) comes with the last chunk (k=9)
    assert [(w.start, w.end, w.arrived) for w in live] == [
        (0, 66150, 105.0),
        (33075, 99225, 108.0),
        (44100, 110250, 109.0),
    ]


def test_pcm_chunks_split_inside_samples_decode_like_the_whole():
    pcm = signal_int16(0.3)
    info = {}
    y = np.concatenate(
        [b.samples for b in pcm_blocks(chunks_of(pcm.tobytes(), [3, 5, 1]), info=info)]
    )
    np.testing.assert_array_equal(y, pcm.astype(np.float32) / 32768)
    assert info == {"bytes": pcm.nbytes, "trailing_bytes": 0}


def test_a_stream_ending_inside_a_sample_is_reported_in_info():
    info = {}
    data = signal_int16(0.1).tobytes() + b"\x01"
    y = np.concatenate([b.samples for b in pcm_blocks([(data, 0.0)], info=info)])
    assert y.size == (len(data) - 1) // 2
    assert info == {"bytes": len(data), "trailing_bytes": 1}


def test_an_empty_stream_is_an_error_naming_it():
    with pytest.raises(AudioError, match=r"^<stdin>: the stream ended before its first sample$"):
        list(stream_windows(pcm_blocks([]), config=Config()))


def test_a_file_is_released_at_the_pace_of_a_recording(tmp_path):
    """A fake clock: each block is released no earlier than t0 + samples so far / rate,
    and the whole file takes its duration."""
    wav = tmp_path / "a.wav"
    sf.write(wav, signal_int16(2.0, 44100), 44100, subtype="PCM_16")
    now = [50.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    n, releases = 0, []
    for block in file_blocks(wav, sample_rate=SR, clock=lambda: now[0], sleep=sleep):
        n += block.samples.size
        releases.append((n, block.arrived))
    assert n == 2 * SR and len(releases) >= 30  # 50 ms blocks
    for n_so_far, t in releases:
        assert t == pytest.approx(50.0 + n_so_far / SR)
    assert sum(sleeps) == pytest.approx(2.0, abs=1e-9)
    # not paced: no sleep, the same samples
    sleeps.clear()
    fast = np.concatenate(
        [b.samples for b in file_blocks(wav, sample_rate=SR, realtime=False, sleep=sleep)]
    )
    assert not sleeps and fast.size == 2 * SR


def test_resampling_keeps_the_arrival_of_the_input_block():
    blocks = [TimedBlock(np.full(4410, 0.1, np.float32), float(k)) for k in range(5)]
    out = list(resample_blocks(blocks, 44100, SR))
    assert sum(b.samples.size for b in out) == 5 * 2205
    assert [b.arrived for b in out] == sorted(b.arrived for b in out)
    assert out[-1].arrived == 4.0


def test_warm_up_runs_the_front_end_and_the_model_once():
    seen = []
    warm_up(lambda x: seen.append(x.shape) or np.full((1, 10), 0.1), Config())
    assert seen == [(1, 128, 128, 1)]
    warm_up(lambda x: seen.append(x.shape), config_for("conv1d"))
    assert seen[-1] == (1, 48000, 1)  # the waveform front end: 3 s at 16 kHz


def test_stats_summary_latency_and_cpu_share():
    wall, cpu = [10.0], [1.0]
    stats = ListenStats(clock=lambda: wall[0], cpu_clock=lambda: cpu[0])
    for ms in range(1, 21):  # 1..20 ms
        stats.add(ms)
    wall[0], cpu[0] = 30.0, 2.0
    s = stats.summary()
    assert s["windows"] == 20 and s["latency_mean_ms"] == 10.5
    assert s["latency_p95_ms"] == pytest.approx(19.05) and s["latency_max_ms"] == 20
    assert s["wall_s"] == 20 and s["cpu_s"] == 1 and s["cpu_share"] == 0.05
    assert stats.line() == (
        "20 window(s) in 20.0 s; latency mean 10 ms, 95th percentile 19 ms, "
        "max 20 ms; CPU 5.0% of one core (1.0 s of process CPU time)"
    )


# ---------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------


def window_rows(stdout: str) -> list[tuple[float, float, str, float, float]]:
    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[2] in CLASS_NAMES:
            rows.append(
                (float(parts[0]), float(parts[1]), parts[2], float(parts[3]), float(parts[4]))
            )
    return rows


def listen(model_dir, data: bytes, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [URBANSOUND, "listen", str(model_dir), "--input", "-", *extra],
        input=data,
        capture_output=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_cli_classifies_a_pcm_stream_on_stdin(model_dir):
    proc = listen(model_dir, signal_int16(10.0).tobytes())
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = window_rows(out)
    assert [(r[0], r[1]) for r in rows] == [(0, 3), (1.5, 4.5), (3, 6), (4.5, 7.5), (6, 9), (7, 10)]
    for _, _, _, p, latency in rows:
        assert 0.1 <= p <= 1 and latency >= 0
    assert "listening to <stdin>: S16_LE mono at 22050 Hz: 3 s windows every 1.5 s" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("summary (end of stream): 6 window(s) in ")
    assert "latency mean " in summary and "95th percentile" in summary and "CPU " in summary


def test_cli_resamples_a_44_1_khz_stream_with_another_hop(model_dir):
    proc = listen(model_dir, signal_int16(5.0, 44100).tobytes(), "--rate", "44100", "--hop", "1")
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert [(r[0], r[1]) for r in window_rows(proc.stdout.decode())] == [(0, 3), (1, 4), (2, 5)]


def test_cli_a_stream_ending_inside_a_sample(model_dir):
    proc = listen(model_dir, signal_int16(4.0).tobytes() + b"\x07")
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 2
    assert len(window_rows(out)) == 2  # the audio before it is still classified
    assert "summary (end of stream): 2 window(s)" in out
    assert err.strip().splitlines()[-1] == (
        f"urbansound listen: error: <stdin>: the stream ended inside a sample "
        f"({4 * SR * 2 + 1} bytes is not a whole number of 2-byte S16_LE samples; the last "
        f"byte was dropped): is it 16-bit mono?"
    )


def test_cli_ctrl_c_ends_with_the_summary(model_dir):
    proc = subprocess.Popen(
        [URBANSOUND, "listen", str(model_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        proc.stdin.write(signal_int16(3.5).tobytes())  # one window; the pipe stays open
        proc.stdin.flush()
        lines = []
        for raw in proc.stdout:
            lines.append(raw.decode())
            if window_rows(raw.decode()):
                break
        proc.send_signal(signal.SIGINT)
        # read to the end with stdin still open: communicate() would close it, and an end
        # of stream racing the signal ends the run as "end of stream", not "interrupted"
        killer = threading.Timer(120, proc.kill)
        killer.start()
        rest = proc.stdout.read()
        proc.wait()
        killer.cancel()
    finally:
        proc.kill()
        proc.stdin.close()
    out = "".join(lines) + rest.decode()
    assert proc.returncode == 0
    rows = window_rows(out)
    assert rows[0][:2] == (0.0, 3.0)
    # Ctrl-C may land before or after the stream's tail is flushed: then the last 3 s
    # (0.5-3.5 s, aligned to the end, as at the end of a stream) is classified too
    assert len(rows) == 1 or (len(rows) == 2 and rows[1][:2] == (0.5, 3.5)), rows
    assert f"summary (interrupted): {len(rows)} window(s)" in out


def test_cli_a_file_not_paced(model_dir, tmp_path, capsys):
    wav = tmp_path / "street.wav"
    sf.write(wav, signal_int16(5.0, 48000), 48000, subtype="PCM_16")
    assert main(["listen", str(model_dir), "--input", str(wav), "--no-realtime"]) == 0
    out = capsys.readouterr().out
    assert f"listening to {wav}: 3 s windows every 1.5 s" in out
    assert [(r[0], r[1]) for r in window_rows(out)] == [(0, 3), (1.5, 4.5), (2, 5)]
    assert "summary (end of stream): 3 window(s)" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rate", "500"], "<stdin>: --rate 500: not a plausible sample rate (1000..768000 Hz)"),
        (["--rate", "0"], "<stdin>: --rate 0: not a plausible sample rate"),
        (
            ["--input", "a.wav", "--rate", "44100"],
            "--rate is for raw PCM on stdin (--input -); a.wav's header gives its rate",
        ),
        (["--input", "missing.flac"], "missing.flac: no such file"),
    ],
)
def test_cli_bad_rate_or_input_is_one_line(model_dir, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "a.wav", signal_int16(1.0), SR, subtype="PCM_16")
    assert main(["listen", str(model_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("urbansound listen: error: ")
    assert message in err


def test_cli_a_bad_hop_is_one_line(model_dir, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, signal_int16(1.0), SR, subtype="PCM_16")
    assert main(["listen", str(model_dir), "--input", str(wav), "--hop", "4"]) == 2
    assert "hop must be > 0 and <= the window (3 s)" in capsys.readouterr().err


def test_listen_has_help(capsys):
    with pytest.raises(SystemExit):
        main(["listen", "--help"])
    text = capsys.readouterr().out
    assert "arecord" in text and "--rate" in text and "--no-realtime" in text


def test_prefetch_stops_waiting_when_asked():
    """listen's Ctrl-C sets an event; a reader blocked on a silent pipe must not keep the
    consumer waiting for ever."""
    from urbansound.live import prefetch

    never = threading.Event()

    def silent_pipe():
        yield b"first"
        never.wait()  # a writer that went quiet with the pipe open
        yield b"never"

    stop = threading.Event()
    items = prefetch(silent_pipe(), stop=stop)
    assert next(items) == b"first"
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(KeyboardInterrupt):
        next(items)
    never.set()
