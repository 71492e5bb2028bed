"""bench/learning_curve.py: the points of a learning curve from recipe-search rows (mean and
std over seeds of the mean over validation folds) and the fit of accuracy on log2(clips).
No training here."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import learning_curve


def rows_on_a_line(intercept: float, slope: float) -> list[dict]:
    """Two seeds at 250, 500 and 1,000 clips; per seed the folds average to the line ± 0.01."""
    rows = []
    for name, clips, fraction in (("q", 250, 0.25), ("h", 500, 0.5), ("all", 1000, 1.0)):
        for seed, offset in ((0, 0.01), (1, -0.01)):
            line = intercept + slope * math.log2(clips) + offset
            for fold, fold_offset in ((1, 0.02), (2, -0.02)):
                rows.append(
                    {
                        "candidate": name,
                        "seed": seed,
                        "validation_fold": fold,
                        "accuracy": line + fold_offset,
                        "n_train": clips,
                        "train_fraction": fraction,
                    }
                )
    return rows


def test_points_are_the_mean_over_seeds_of_the_mean_over_folds():
    points = learning_curve.curve_points(rows_on_a_line(0.1, 0.05), ["all", "q", "h"])
    assert [p["clips"] for p in points] == [250, 500, 1000]  # sorted by size
    quarter = points[0]
    expected = 0.1 + 0.05 * math.log2(250)
    assert quarter["per_seed"] == pytest.approx([expected + 0.01, expected - 0.01])
    assert quarter["mean"] == pytest.approx(expected)
    assert quarter["std"] == pytest.approx(0.01 * math.sqrt(2))


def test_the_fit_recovers_the_gain_per_doubling(tmp_path):
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows_on_a_line(0.1, 0.05)))
    out = tmp_path / "curve.json"
    plot = tmp_path / "curve.png"
    assert (
        learning_curve.main(
            [
                "--candidates",
                "q,h,all",
                "--results",
                str(results),
                "--at",
                "2000",
                "--json",
                str(out),
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["fit"]["slope_per_doubling"] == pytest.approx(0.05)
    assert result["fit"]["intercept"] == pytest.approx(0.1)
    assert result["at"]["accuracy"] == pytest.approx(0.1 + 0.05 * math.log2(2000))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_size_is_not_a_curve():
    rows = [r for r in rows_on_a_line(0.1, 0.05) if r["candidate"] == "all"]
    with pytest.raises(SystemExit, match="two sizes"):
        learning_curve.fit_log2(learning_curve.curve_points(rows, ["all"]))


def test_an_unknown_candidate_is_named():
    with pytest.raises(SystemExit, match="'nope'"):
        learning_curve.curve_points(rows_on_a_line(0.1, 0.05), ["nope"])


def test_seeds_select_the_same_seeds_for_every_point():
    rows = rows_on_a_line(0.1, 0.05)
    points = learning_curve.curve_points(rows, ["q", "h", "all"], seeds={1})
    assert [len(p["per_seed"]) for p in points] == [1, 1, 1]
    assert points[0]["per_seed"] == pytest.approx([0.1 + 0.05 * math.log2(250) - 0.01])


def test_the_outputs_never_overwrite_the_results(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in rows_on_a_line(0.1, 0.05))
    results.write_text(text)
    for extra in (
        ["--json", str(results)],
        ["--plot", str(results)],
        ["--json", str(tmp_path / "a"), "--plot", str(tmp_path / "a")],
    ):
        with pytest.raises(SystemExit):
            learning_curve.main(["--candidates", "q,h,all", "--results", str(results), *extra])
    err = capsys.readouterr().err
    assert "would overwrite the results file" in err and "name the same file" in err
    assert results.read_text() == text  # untouched
    assert not (tmp_path / "a").exists()
