"""The error analysis page (issue 18) as a reader sees it: evaluate's ``report.html`` opened
from disk (no server, no network) in a real headless Chromium, Debian's `chromium`, which
`make test` installs.  Every player must load its clip (Chromium decodes the FLAC data URI:
its duration is the clip's), every image must decode, and the numbers the page shows must be
summary.json's.

Where chromium is not installed or cannot start, the test is skipped with the reason, except
under CI (CI=true), where that is a failure: CI installs it (as tests/test_ui_browser.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import numpy as np
import pytest
from conftest import CHROMIUM_BASE_FLAGS, chromium_unavailable, tone

CHROMIUM_FLAGS = [
    *CHROMIUM_BASE_FLAGS,
    "--window-size=1300,1000",
    "--virtual-time-budget=15000",  # the players load their metadata before the DOM is dumped
]
CHROMIUM_TIMEOUT_S = 120  # a loaded 2-core machine
CLIP_SECONDS = 1.5
PROBE = """<script>
// the test's own probe (not part of the page): what Chromium made of each player and image
window.addEventListener("load", () => {
  const players = [...document.querySelectorAll("audio")];
  const report = () => {
    document.body.dataset.durations = players.map(a => a.duration.toFixed(3)).join(" ");
    document.body.dataset.images = [...document.images].map(i => i.naturalWidth).join(" ");
  };
  let pending = players.filter(a => a.readyState < 1).length;
  players.forEach(a => { a.addEventListener("loadedmetadata", () => { if (--pending === 0) report(); });
                         a.addEventListener("error", () => { document.body.dataset.error = a.error.code; }); });
  if (!pending) report();
});
</script>"""


def _results():
    """Two folds of 4 classes, 12 clips each, probabilities drawn at random (mostly wrong)."""
    from urbansound.metrics import confusion_matrix
    from urbansound.training import FoldResult

    rng = np.random.default_rng(7)
    names = ["air", "bark", "car", "drill"]
    results = []
    for fold in (1, 2):
        y_true = [i % 4 for i in range(12)]
        p = np.round(rng.dirichlet(np.ones(4) * 0.5, size=12), 6)
        y_pred = p.argmax(axis=1).tolist()
        results.append(
            FoldResult(
                test_fold=fold,
                validation_fold=None,
                train_folds=[3 - fold],
                test_accuracy=float(np.mean(np.equal(y_true, y_pred))),
                test_loss=1.0,
                y_true=y_true,
                y_pred=y_pred,
                confusion_matrix=confusion_matrix(y_true, y_pred, 4).tolist(),
                history={"loss": [1.0], "accuracy": [0.5]},
                best_epoch=1,
                epochs_run=1,
                n_train=12,
                n_validation=0,
                n_test=12,
                parameters=1,
                class_names=names,
                salience=[1 + i % 2 for i in range(12)],
                file_names=[f"{fold}{i:02d}-{y_true[i]}-0-0.wav" for i in range(12)],
                probabilities=p.tolist(),
            )
        )
    return results


def test_the_report_plays_every_mistake_and_shows_summary_json(chromium, tmp_path):
    from urbansound.evaluation import evaluate_folds

    def audio(keys):  # a tone per clip at the project's rate (played at 16 kHz)
        return {key: (tone(200 + 40 * i, CLIP_SECONDS, 22050), 22050) for i, key in enumerate(keys)}

    evaluation = tmp_path / "evaluation"
    evaluate_folds(_results(), evaluation, audio=audio)
    summary = json.loads((evaluation / "summary.json").read_text())
    page = (evaluation / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    home = tmp_path / "chromium-home"
    home.mkdir()
    try:
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, "--dump-dom", probed.as_uri()],
            capture_output=True,
            text=True,
            timeout=CHROMIUM_TIMEOUT_S,
            env={**os.environ, "HOME": str(home)},
        )
    except subprocess.TimeoutExpired:
        chromium_unavailable(f"no page within {CHROMIUM_TIMEOUT_S} s")
    if done.returncode != 0 or "<html" not in done.stdout:
        chromium_unavailable(f"could not start (exit {done.returncode}): {done.stderr[-800:]}")
    dom = done.stdout
    (tmp_path / "dom.html").write_text(dom)  # for a look after a failure

    mistakes = sum(
        t != p for r in _results() for t, p in zip(r.y_true, r.y_pred)
    )  # every one has a probability
    assert 0 < mistakes < 30
    assert len(re.findall(r"<audio controls", dom)) == mistakes
    assert len(re.findall(r'<img class="logmel"', dom)) == mistakes
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert "data-error" not in body, body
    durations = re.search(r'data-durations="([^"]*)"', body)
    assert durations, "the players never loaded their metadata"
    assert [float(d) for d in durations.group(1).split()] == pytest.approx(
        [CLIP_SECONDS] * mistakes, abs=0.01
    )
    widths = [int(w) for w in re.search(r'data-images="([^"]*)"', body).group(1).split()]
    assert len(widths) == mistakes + 1 and min(widths) > 100  # the log-mels and the diagram

    # the numbers shown are summary.json's: exactly in data-value, as a percentage in the text
    for fold, accuracy in summary["folds"].items():
        row = re.search(rf'<tr class="fold" data-fold="{fold}">(.*?)</tr>', dom, re.S)
        assert row, fold
        assert f'data-value="{accuracy!r}">{accuracy:.1%}<' in row.group(1)
    for key in ("mean", "median", "std"):
        assert f'class="{key}" data-value="{summary[key]!r}">{summary[key]:.1%}<' in dom
    for name, value in summary["by_salience"].items():
        row = re.search(rf'<tr data-salience="{name}">(.*?)</tr>', dom, re.S)
        assert f'data-value="{value["accuracy"]!r}"' in row.group(1)
    ece = summary["calibration"]["ece"]
    assert f'class="ece" data-value="{ece!r}">{ece:.1%}<' in dom
    for name, recall in summary["per_class"].items():
        row = re.search(rf'<tr data-class="{name}">(.*?)</tr>', dom, re.S)
        assert f'class="recall" data-value="{recall!r}"' in row.group(1), name
