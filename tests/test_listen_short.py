"""``listen`` refuses a stream of less than 20 ms (urbansound.audio.MIN_SECONDS), as
``predict`` and ingest refuse such a clip, instead of padding a single sample into a
3 s window and classifying it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from urbansound.audio import MIN_SECONDS, AudioError, check_duration, prepare_waveform
from urbansound.config import CLASS_NAMES, Config
from urbansound.live import pcm_blocks, resample_blocks, stream_windows
from urbansound.predict import read_audio

SR = 22050
URBANSOUND = str(Path(sys.executable).with_name("urbansound"))


def pcm(n_samples: int, rate: int = SR) -> bytes:
    """``n_samples`` of a tone as S16_LE bytes."""
    t = np.arange(n_samples) / rate
    return np.round(0.3 * np.sin(2 * np.pi * 440 * t) * 32767 + 1000).astype("<i2").tobytes()


def live(data: bytes, rate: int = SR):
    blocks = resample_blocks(pcm_blocks([(data, 0.0)]), rate, SR)
    return list(stream_windows(blocks, config=Config()))


@pytest.mark.parametrize("data, ms", [(pcm(1), "0.0"), (pcm(100), "4.5"), (pcm(440), "19.9546")])
def test_a_stream_shorter_than_20_ms_is_an_error_naming_it(data, ms):
    with pytest.raises(AudioError) as refused:
        live(data)
    assert str(refused.value) == f"<stdin>: too short ({ms} ms < 20 ms)"


def test_a_stream_of_20_ms_is_one_padded_window():
    n = math.ceil(MIN_SECONDS * SR)  # 441 samples
    (window,) = live(pcm(n))
    assert (window.start, window.end) == (0, n) and window.samples.size == 3 * SR


def test_a_resampled_stream_is_measured_at_the_models_rate():
    with pytest.raises(AudioError, match=r"^<stdin>: too short \(12\.5 ms < 20 ms\)$"):
        live(pcm(100, 8000), 8000)  # 100 samples at 8 kHz
    (window,) = live(pcm(160, 8000), 8000)  # 20 ms
    assert window.end == 441


def test_listen_predict_and_ingest_share_the_rule(tmp_path):
    """The same 10 ms is refused by the three readers, in the same words."""
    y = np.full(int(0.01 * SR), 0.1, np.float32)
    clip = tmp_path / "short.wav"
    sf.write(clip, y, SR)
    reasons = []
    for read in (
        lambda: read_audio(clip),  # predict's decoder
        lambda: prepare_waveform(y, SR, sample_rate=SR),  # ingest / served rows
        lambda: live(pcm(y.size)),
        lambda: check_duration("x", 0.01),
    ):
        with pytest.raises(AudioError) as refused:
            read()
        reasons.append(refused.value.reason)
    assert set(reasons) == {"too short (10.0 ms < 20 ms)"}


def test_cli_two_bytes_on_stdin_are_refused_not_classified(model_dir):
    proc = subprocess.run(
        [URBANSOUND, "listen", str(model_dir), "--input", "-"],
        input=pcm(1),
        capture_output=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 2, err[-2000:]
    assert not any(line.split()[2:3] == [c] for line in out.splitlines() for c in CLASS_NAMES)
    assert err.strip().splitlines()[-1] == (
        "urbansound listen: error: <stdin>: too short (0.0 ms < 20 ms)"
    )
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["listen", "predict"])
def test_a_hop_of_a_few_samples_is_one_line(model_dir, tmp_path, capsys, command):
    """A hop under 20 ms would make a window every few samples (listen could never keep up
    with the stream); both commands refuse it before reading any audio."""
    from urbansound.pipeline.cli import main

    wav = tmp_path / "a.wav"
    sf.write(wav, np.frombuffer(pcm(SR), "<i2"), SR, subtype="PCM_16")
    args = (
        ["listen", str(model_dir), "--input", str(wav), "--no-realtime"]
        if command == "listen"
        else ["predict", str(model_dir), str(wav)]
    )
    assert main([*args, "--hop", "0.0001"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err[-1].startswith(f"urbansound {command}: error: ")
    assert err[-1].endswith(
        "hop 0.0001 s is shorter than 20 ms: 10,000 windows per second of audio"
    )
    assert not any(c in captured.out for c in CLASS_NAMES)
