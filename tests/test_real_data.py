"""Real UrbanSound8K clips (../shared/data/us8k-real-dev); skipped when that folder is absent."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "us8k-real-dev"

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (REAL / "materialize.py").exists(), reason=f"{REAL} is not here"),
]


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    """The original-format clips (folds 4-6: 11-96 kHz, mono/stereo, 16/24-bit) as WAV."""
    dest = tmp_path_factory.mktemp("us8k")
    subprocess.run(
        [sys.executable, str(REAL / "materialize.py"), str(dest), "--folds", "4,5,6"],
        check=True,
        capture_output=True,
    )
    return dest


def test_every_original_format_clip_is_ingested_at_its_true_length(real_tree, tmp_path):
    from urbansound.ingest import ingest
    from urbansound.records import decode_waveform, fold_files, iter_records

    with open(real_tree / "metadata" / "UrbanSound8K.csv") as fh:
        rows = {r["slice_file_name"]: r for r in csv.DictReader(fh)}
    result = ingest(real_tree, tmp_path / "out", workers=2)
    assert result.rejections == []
    assert result.counts == {4: 40, 5: 40, 6: 40}
    for fold in (4, 5, 6):
        for raw in iter_records(fold_files(tmp_path / "out", fold)):
            rec = decode_waveform(raw)
            row = rows[rec.file_name]
            expected = float(row["end"]) - float(row["start"])
            assert rec.sample_rate == 22050
            # the CSV's start/end come from the source recording: within 10 ms of the clip
            assert abs(len(rec.waveform) / 22050 - expected) < 0.01, rec.file_name
            assert rec.label == int(row["classID"])
            # resampling a clipped recording overshoots full scale a little (Gibbs), no more
            assert np.isfinite(rec.waveform).all() and np.abs(rec.waveform).max() < 1.5


def test_real_clip_features_have_the_study_shape_and_range(real_tree):
    from urbansound.audio import load_audio
    from urbansound.config import Config
    from urbansound.features import waveform_to_logmel

    clips = sorted((real_tree / "audio" / "fold5").glob("*.wav"))[:10]
    for path in clips:
        config = Config()
        S = waveform_to_logmel(load_audio(path, sample_rate=config.audio.sample_rate), config)
        assert S.shape == (128, 128) and S.dtype == np.float32
        assert S.max() == 0.0 and S.min() >= -80.0
        # a real sound fills the spectrogram: most cells are above the floor
        assert (S > -79.9).mean() > 0.5, path.name
