"""An error analysis a researcher can listen to: the out-of-fold predictions and one HTML page.

After cross-validation every test clip has one prediction (the model of its test fold).
The evaluate stage writes them as ``predictions.csv`` (:data:`COLUMNS`, one row per test
clip) and builds ``report.html`` from them (:func:`build_report`): one self-contained page
(every image and sound a ``data:`` URI, no script, no external URL) with

- the fold accuracies and their mean / median / std, as ``summary.json`` has them;
- the confusion matrix (a table up to :data:`TABLE_UP_TO` classes, else an image);
- per-class precision, recall and F1 (:func:`precision_recall_f1`);
- accuracy by salience (foreground / background);
- a reliability diagram and the expected calibration error (:func:`calibration`);
- the :data:`N_MISTAKES` most confident mistakes, each with a player of the clip (FLAC,
  at most :data:`AUDIO_RATE` Hz and :data:`AUDIO_SECONDS` s) and its log-mel image.

**Expected calibration error** (ECE): the confidence of a prediction is the probability
its model gave the predicted class.  The predictions are put in :data:`ECE_BINS` bins of
equal width by confidence, ``(k/10, (k+1)/10]`` (the first also takes 0); with ``n_k``
predictions in bin k, ``acc_k`` the fraction of them that are right and ``conf_k`` their
mean confidence, ``ECE = Σ_k (n_k / N) · |acc_k − conf_k|`` over the N predictions (0 for
a perfectly calibrated model; a model right 60 % of the time that always says 0.9 has 0.3).

Pure: the audio comes from a caller's :data:`AudioSource` (:func:`records_audio` reads
ingest's TFRecords, :func:`dataset_audio` the dataset's files); matplotlib draws with its
Agg backend into memory.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from urbansound.config import DataConfig, FeatureConfig
from urbansound.metrics import confusion_matrix, normalize_rows

PREDICTIONS_FILE = "predictions.csv"
REPORT_FILE = "report.html"
GENERATOR = "urbansound report"
"""``<meta name="generator">`` of every page written here: how a rerun knows a file is ours."""
TOP_K = 3
"""Classes (with their probabilities) each row of ``predictions.csv`` lists."""
N_MISTAKES = 30
ECE_BINS = 10
AUDIO_RATE = 16000
"""Hz: a clip recorded at a higher rate is resampled to this for its player."""
AUDIO_SECONDS = 10.0
"""A player (and its log-mel image) holds at most a clip's first this many seconds."""
TABLE_UP_TO = 30
"""The confusion matrix is an HTML table up to this many classes, an image beyond."""
SALIENCE_NAMES = {1: "foreground", 2: "background"}
DEFAULT_FEATURES = FeatureConfig()
"""The log-mel images' window, hop and bands unless the caller gives the run's."""

COLUMNS: tuple[str, ...] = (
    "fold",
    "file",
    "salience",
    "true_index",
    "true_class",
    "predicted_index",
    "predicted_class",
    "probability",
    *(f"top{k}_{part}" for k in range(1, TOP_K + 1) for part in ("class", "probability")),
)
"""``predictions.csv``'s header.  ``file``: the clip as the dataset lists it (UrbanSound8K:
its file name in ``audio/fold<k>/``; other layouts: its path in the dataset folder);
``salience`` 1 foreground, 2 background, 0 unknown; ``probability`` of the predicted
class; ``top<k>_class`` / ``top<k>_probability`` the k-th most probable class (empty
beyond the class count).  The file name and probabilities are empty for folds trained
before they were recorded."""

ClipKey = tuple[int, str]
"""A test clip: (fold, file)."""
Audio = tuple[np.ndarray, int]
"""A clip's samples, float32 [shape=(n,)] in -1..1, and its sample rate in Hz."""
AudioSource = Callable[[Sequence[ClipKey]], Mapping[ClipKey, Audio]]
"""Given the clips wanted, the audio of those it has (a clip it lacks gets no player)."""


@dataclass(frozen=True)
class Prediction:
    """One test clip's out-of-fold prediction (a row of ``predictions.csv``)."""

    fold: int
    file: str
    salience: int
    true_index: int
    true_class: str
    predicted_index: int
    predicted_class: str
    probability: float | None  # of the predicted class, 0..1; None: not recorded
    top: tuple[tuple[str, float], ...] = ()  # up to TOP_K (class, probability), best first

    @property
    def correct(self) -> bool:
        return self.true_index == self.predicted_index

    @property
    def key(self) -> ClipKey:
        return (self.fold, self.file)


def prediction_rows(
    fold: int,
    class_names: Sequence[str],
    y_true: Sequence[int],
    y_pred: Sequence[int],
    *,
    file_names: Sequence[str] = (),
    salience: Sequence[int] = (),
    probabilities: Sequence[Sequence[float]] = (),
) -> list[Prediction]:
    """The rows of one test fold.  ``probabilities`` [shape=(n, n_classes)] (0..1) and
    ``file_names`` / ``salience`` [shape=(n,)] may be empty (not recorded): the rows then
    have no probability, an empty file name or salience 0."""
    n = len(y_true)
    for what, values in (
        ("y_pred", y_pred),
        ("file_names", file_names),
        ("salience", salience),
        ("probabilities", probabilities),
    ):
        if len(values) not in (0, n) or (what == "y_pred" and len(values) != n):
            raise ValueError(f"test fold {fold}: {len(values)} {what} for {n} test clips")
    rows = []
    for i in range(n):
        true, pred = int(y_true[i]), int(y_pred[i])
        probability: float | None = None
        top: tuple[tuple[str, float], ...] = ()
        if len(probabilities):
            p = np.asarray(probabilities[i], dtype=np.float64)
            if p.shape != (len(class_names),):
                raise ValueError(
                    f"test fold {fold}: {p.size} probabilities for {len(class_names)} classes"
                )
            order = sorted(range(len(p)), key=lambda c: (-p[c], c))[:TOP_K]
            probability = float(p[pred])
            top = tuple((class_names[c], float(p[c])) for c in order)
        rows.append(
            Prediction(
                fold=int(fold),
                file=str(file_names[i]) if len(file_names) else "",
                salience=int(salience[i]) if len(salience) else 0,
                true_index=true,
                true_class=class_names[true],
                predicted_index=pred,
                predicted_class=class_names[pred],
                probability=probability,
                top=top,
            )
        )
    return rows


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def write_predictions(rows: Iterable[Prediction], path: str | os.PathLike) -> None:
    """Write ``rows`` as ``predictions.csv`` (:data:`COLUMNS`, UTF-8, one row per clip)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            top = [item for k in range(TOP_K) for item in _top_cells(r.top, k)]
            writer.writerow(
                [
                    r.fold,
                    r.file,
                    r.salience,
                    r.true_index,
                    r.true_class,
                    r.predicted_index,
                    r.predicted_class,
                    _number(r.probability),
                    *top,
                ]
            )


def _top_cells(top: Sequence[tuple[str, float]], k: int) -> list[str]:
    return [top[k][0], _number(top[k][1])] if k < len(top) else ["", ""]


def read_predictions(path: str | os.PathLike) -> list[Prediction]:
    """The rows of a ``predictions.csv`` that :func:`write_predictions` wrote.

    Raises
    ------
    ValueError
        one line naming the file (and the line) and the reason: another header, a field
        that is not a number, a probability outside 0..1.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header[: len(COLUMNS)]) != COLUMNS:
            raise ValueError(f"{path}: not a predictions.csv (header {str(header)[:80]})")
        rows = []
        for number, cells in enumerate(reader, start=2):
            if not cells:
                continue
            try:
                rows.append(_parse_row(dict(zip(COLUMNS, cells))))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: line {number}: {exc}") from None
    return rows


def _probability(text: str) -> float | None:
    if text == "":
        return None
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"probability {text!r} is outside 0..1")
    return value


def _parse_row(cells: dict[str, str]) -> Prediction:
    top = []
    for k in range(1, TOP_K + 1):
        name, value = cells.get(f"top{k}_class", ""), _probability(cells[f"top{k}_probability"])
        if name and value is not None:
            top.append((name, value))
    return Prediction(
        fold=int(cells["fold"]),
        file=cells["file"],
        salience=int(cells["salience"] or 0),
        true_index=int(cells["true_index"]),
        true_class=cells["true_class"],
        predicted_index=int(cells["predicted_index"]),
        predicted_class=cells["predicted_class"],
        probability=_probability(cells["probability"]),
        top=tuple(top),
    )


# ---------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------


def confusion_of(rows: Sequence[Prediction], n_classes: int) -> np.ndarray:
    """Counts [shape=(n_classes, n_classes)], int64: row = true class, column = predicted."""
    return confusion_matrix(
        [r.true_index for r in rows], [r.predicted_index for r in rows], n_classes
    )


def precision_recall_f1(counts: np.ndarray) -> list[dict]:
    """Per class of a confusion matrix (row = true, column = predicted): ``{"precision",
    "recall", "f1", "support", "predicted"}``, fractions 0..1 and clip counts.  Precision
    is None for a class never predicted, recall for a class with no clip; F1 (their
    harmonic mean, 0 when both are 0) is None when either is."""
    counts = np.asarray(counts, dtype=np.int64)
    out = []
    for c in range(counts.shape[0]):
        hits = int(counts[c, c])
        support, predicted = int(counts[c].sum()), int(counts[:, c].sum())
        precision = hits / predicted if predicted else None
        recall = hits / support if support else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(
            {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
                "predicted": predicted,
            }
        )
    return out


@dataclass(frozen=True)
class CalibrationBin:
    """Predictions whose confidence lies in (lower, upper]: how many, the fraction right
    and their mean confidence (None when the bin is empty)."""

    lower: float
    upper: float
    count: int
    accuracy: float | None
    confidence: float | None


def calibration(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> tuple[float, list[CalibrationBin]]:
    """Expected calibration error and its bins (see the module's docstring).

    confidences : [shape=(n,)] probability of each predicted class, 0..1.
    correct : [shape=(n,)] whether each prediction is right.

    Returns
    -------
    (ece in 0..1, ``bins`` :class:`CalibrationBin` from low to high confidence).
    """
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.shape != right.shape:
        raise ValueError(f"{conf.size} confidences for {right.size} outcomes")
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError("a confidence lies outside 0..1")
    edges = np.arange(bins + 1) / bins  # k / bins exactly, so 0.3 falls in (0.2, 0.3]
    index = np.searchsorted(edges[1:-1], conf, side="left")
    ece, out = 0.0, []
    for k in range(bins):
        members = index == k
        n = int(members.sum())
        accuracy = float(right[members].mean()) if n else None
        confidence = float(conf[members].mean()) if n else None
        if n:
            ece += n / conf.size * abs(float(accuracy or 0.0) - float(confidence or 0.0))
        out.append(CalibrationBin(float(edges[k]), float(edges[k + 1]), n, accuracy, confidence))
    return ece, out


def calibrated_rows(rows: Sequence[Prediction]) -> list[Prediction]:
    """The rows that carry a probability (folds trained before it was recorded have none)."""
    return [r for r in rows if r.probability is not None]


def expected_calibration_error(rows: Sequence[Prediction], bins: int = ECE_BINS) -> float | None:
    """:func:`calibration`'s ECE of the rows with a probability; None when none has one."""
    known = calibrated_rows(rows)
    if not known:
        return None
    return calibration([float(r.probability or 0.0) for r in known], [r.correct for r in known])[0]


def most_confident_mistakes(rows: Sequence[Prediction], n: int = N_MISTAKES) -> list[Prediction]:
    """At most ``n`` wrong predictions with a probability, most confident first (ties:
    by fold, then file)."""
    wrong = [r for r in calibrated_rows(rows) if not r.correct]
    wrong.sort(key=lambda r: (-float(r.probability or 0.0), r.fold, r.file))
    return wrong[:n]


# ---------------------------------------------------------------------------
# audio and images as data: URIs
# ---------------------------------------------------------------------------


def _clip(y: np.ndarray, sample_rate: int, max_seconds: float) -> np.ndarray:
    return np.asarray(y, dtype=np.float64).reshape(-1)[: int(round(max_seconds * sample_rate))]


def audio_data_uri(
    y: np.ndarray,
    sample_rate: int,
    *,
    max_rate: int = AUDIO_RATE,
    max_seconds: float = AUDIO_SECONDS,
) -> str:
    """``data:audio/flac;base64,…``: the first ``max_seconds`` of ``y`` (float [shape=(n,)],
    -1..1, at ``sample_rate`` Hz; samples beyond ±1 are clipped) as 16-bit FLAC, resampled
    to ``max_rate`` Hz when its rate is higher.

    Raises ValueError for a clip with no sample."""
    import soundfile as sf

    from urbansound.audio import resample

    samples = _clip(y, sample_rate, max_seconds)
    if not samples.size:
        raise ValueError("a clip with no sample has no sound to play")
    rate = int(sample_rate)
    if rate > max_rate:
        samples, rate = resample(samples, orig_sr=rate, target_sr=max_rate), max_rate
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate, format="FLAC", subtype="PCM_16")
    return "data:audio/flac;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def clip_logmel(
    y: np.ndarray,
    sample_rate: int,
    *,
    features: FeatureConfig = DEFAULT_FEATURES,
    max_seconds: float = AUDIO_SECONDS,
) -> np.ndarray:
    """The log-mel of the first ``max_seconds`` of a whole clip (what its player plays):
    the front end's window, hop and bands (``features``), as many frames as the clip
    holds (a clip shorter than one window is zero-padded to one frame).

    Returns float32 [shape=(n_mels, n_frames)], dB below the clip's peak."""
    from urbansound.features import log_mel

    samples = _clip(y, sample_rate, max_seconds)
    if samples.size < features.n_fft:
        samples = np.pad(samples, (0, features.n_fft - samples.size))
    frames = 1 + (samples.size - features.n_fft) // features.hop_length
    fmax = features.fmax if features.fmax is None else min(features.fmax, sample_rate / 2)
    return log_mel(
        samples, sample_rate=sample_rate, features=replace(features, n_frames=frames, fmax=fmax)
    )


def logmel_data_uri(
    y: np.ndarray,
    sample_rate: int,
    *,
    features: FeatureConfig = DEFAULT_FEATURES,
    max_seconds: float = AUDIO_SECONDS,
) -> str:
    """``data:image/png;base64,…``: :func:`clip_logmel` drawn 320 × 140 pixels (time in
    seconds across, mel bands up)."""
    logmel = clip_logmel(y, sample_rate, features=features, max_seconds=max_seconds)
    seconds = logmel.shape[1] * features.hop_length / sample_rate
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.2, 1.4), dpi=100)
    ax.imshow(
        logmel,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0.0, seconds, 0.0, float(logmel.shape[0])),
    )
    ax.set_xlabel("s", fontsize=7, labelpad=1)
    ax.set_ylabel("mel band", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=6, length=2, pad=1)
    fig.tight_layout(pad=0.3)
    try:
        return _png_uri(fig)
    finally:
        plt.close(fig)


def reliability_data_uri(bins: Sequence[CalibrationBin], ece: float) -> str:
    """``data:image/png;base64,…``: accuracy per confidence bin against the diagonal of a
    perfectly calibrated model, with each bin's count."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=100)
    width = bins[0].upper - bins[0].lower if bins else 0.1
    centres = [(b.lower + b.upper) / 2 for b in bins]
    ax.bar(
        centres,
        [b.accuracy or 0.0 for b in bins],
        width=width * 0.95,
        color="tab:blue",
        alpha=0.8,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for b, x in zip(bins, centres):
        if b.count:
            ax.text(x, (b.accuracy or 0.0) + 0.02, str(b.count), ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability: ECE {ece:.1%} ({len(bins)} bins)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    try:
        return _png_uri(fig)
    finally:
        plt.close(fig)


def confusion_data_uri(counts: np.ndarray, class_names: Sequence[str]) -> str:
    """``data:image/png;base64,…``: the confusion matrix as :func:`plot_confusion_matrix`
    draws it (for more classes than a table can show)."""
    import tempfile

    from urbansound.metrics import plot_confusion_matrix

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "confusion.png"
        plot_confusion_matrix(counts, class_names, path, title="all test folds")
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ---------------------------------------------------------------------------
# where the audio comes from
# ---------------------------------------------------------------------------


def records_audio(directory: str | os.PathLike) -> AudioSource:
    """An :data:`AudioSource` reading ingest's output (``fold<k>*.tfrecord`` of decoded
    clips at the run's sample rate): exactly the audio the models were tested on.  Only
    the folds of the clips asked for are read."""

    def read(keys: Sequence[ClipKey]) -> dict[ClipKey, Audio]:
        from urbansound.records import decode_waveform, fold_files, iter_records

        wanted: dict[int, set[str]] = {}
        for fold, name in keys:
            wanted.setdefault(int(fold), set()).add(name)
        found: dict[ClipKey, Audio] = {}
        for fold, names in sorted(wanted.items()):
            paths = fold_files(directory, fold)
            for raw in iter_records(paths) if paths else ():
                record = decode_waveform(raw)
                if record.file_name in names:
                    found[(fold, record.file_name)] = (record.waveform, record.sample_rate)
        return found

    return read


def dataset_audio(
    root: str | os.PathLike, data: DataConfig = DataConfig(), *, sample_rate: int = 22050
) -> AudioSource:
    """An :data:`AudioSource` decoding the clips from the dataset folder ``root`` (listed in
    the layout ``data`` names, decoded at ``sample_rate`` Hz as ingest does).  The files
    are read as they are now: a clip changed since the run plays its new content.

    Raises (when called) :class:`urbansound.listing.DatasetError` when ``root`` cannot be
    listed; a clip that is missing or no longer decodes is left out."""

    def read(keys: Sequence[ClipKey]) -> dict[ClipKey, Audio]:
        from urbansound.audio import AudioError, load_audio
        from urbansound.layouts import scan

        paths = {(c.fold, c.file_name): c.path for c in scan(root, data).clips}
        found: dict[ClipKey, Audio] = {}
        for key in keys:
            path = paths.get((int(key[0]), key[1]))
            if path is None:
                continue
            try:
                found[key] = (load_audio(path, sample_rate=sample_rate), sample_rate)
            except (AudioError, OSError):
                continue
        return found

    return read


# ---------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em;
     border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
table.confusion td { min-width: 2em; text-align: center; }
table.confusion td.diagonal { outline: 2px solid #2a6; outline-offset: -2px; }
table.confusion th.predicted { writing-mode: vertical-rl; transform: rotate(180deg);
     text-align: left; }
p.note { color: #555; }
ol.mistakes { list-style: none; padding: 0; display: grid;
     grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
li.mistake { border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
li.mistake audio { width: 100%; } li.mistake img { display: block; }
.wrong { color: #b22; } .right { color: #262; } td.best { font-weight: bold; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _cell(value: float | None, css: str = "") -> str:
    """A table cell showing ``value`` as a percentage, its exact value in ``data-value``."""
    attrs = f' class="{css}"' if css else ""
    if value is None:
        return f'<td{attrs} data-value="">—</td>'
    return f'<td{attrs} data-value="{float(value)!r}">{_percent(value)}</td>'


def page(title: str, body: Iterable[str]) -> str:
    """A whole self-contained HTML document (inline style, no script, no external URL)."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta name="generator" content="{GENERATOR}">',
            f"<title>{_e(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head><body>",
            f"<h1>{_e(title)}</h1>",
            *body,
            "</body></html>",
            "",
        ]
    )


def is_report(path: str | os.PathLike) -> bool:
    """True when ``path`` is a page this module wrote (its generator tag in the first
    kilobyte): the one kind of existing file a command writing a page may replace."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in head


def _summary_section(summary: dict, n_rows: int, ece: float | None) -> list[str]:
    folds = summary.get("folds") or {}
    out = [
        '<h2 id="summary">Accuracy</h2>',
        '<table class="summary"><tr><th class="name">test fold</th><th>accuracy</th></tr>',
    ]
    for fold, accuracy in folds.items():
        out.append(
            f'<tr class="fold" data-fold="{_e(fold)}"><td class="name">{_e(fold)}</td>'
            f"{_cell(accuracy, 'accuracy')}</tr>"
        )
    for key in ("mean", "median", "std"):
        if key in summary:
            out.append(
                f'<tr class="{key}"><th class="name">{key}</th>{_cell(summary[key], key)}</tr>'
            )
    out.append("</table>")
    clips = summary.get("n_test_examples", n_rows)
    out.append(
        f"<p>{_e(clips)} test clips over {len(folds)} test fold(s); each clip is predicted by "
        f"the model of its own test fold (out of fold).</p>"
    )
    if ece is not None:
        out.append(f'<p>Expected calibration error: <b class="ece">{ece:.1%}</b> (see below).</p>')
    for warning in summary.get("warnings") or []:
        out.append(f'<p class="note">{_e(warning)}</p>')
    return out


def _confusion_section(counts: np.ndarray, class_names: Sequence[str]) -> list[str]:
    out = [
        '<h2 id="confusion">Confusion matrix</h2>',
        "<p>Rows: true class; columns: predicted class; every test fold summed. "
        "Shading: the row's fraction.</p>",
    ]
    n = len(class_names)
    if n > TABLE_UP_TO:
        return out + [
            f'<img class="confusion" alt="confusion matrix" '
            f'src="{confusion_data_uri(counts, class_names)}">'
        ]
    shares = normalize_rows(counts)
    out.append('<table class="confusion"><tr><th class="name">true \\ predicted</th>')
    out += [f'<th class="predicted">{_e(name)}</th>' for name in class_names]
    out.append("</tr>")
    for i, name in enumerate(class_names):
        cells = []
        for j in range(n):
            share = float(shares[i, j])
            css = ' class="diagonal"' if i == j else ""
            colour = f"rgba(33,102,172,{share:.3f})"
            text = "#fff" if share > 0.5 else "#222"
            cells.append(
                f'<td{css} style="background:{colour};color:{text}" '
                f'title="{_e(name)} as {_e(class_names[j])}: {share:.0%}">{int(counts[i, j])}</td>'
            )
        out.append(f'<tr><th class="name">{_e(name)}</th>{"".join(cells)}</tr>')
    out.append("</table>")
    return out


def _per_class_section(counts: np.ndarray, class_names: Sequence[str]) -> list[str]:
    stats = precision_recall_f1(counts)
    out = [
        '<h2 id="per-class">Per class</h2>',
        "<p>Precision: of the clips predicted as the class, the fraction that are; recall "
        "(the class's accuracy): of the class's clips, the fraction predicted as it; F1: "
        "their harmonic mean.</p>",
        '<table class="per-class"><tr><th class="name">class</th><th>precision</th>'
        "<th>recall</th><th>F1</th><th>clips</th><th>predicted</th></tr>",
    ]
    for name, s in zip(class_names, stats):
        out.append(
            f'<tr data-class="{_e(name)}"><td class="name">{_e(name)}</td>'
            f"{_cell(s['precision'], 'precision')}{_cell(s['recall'], 'recall')}"
            f"{_cell(s['f1'], 'f1')}<td>{s['support']}</td><td>{s['predicted']}</td></tr>"
        )
    for key in ("precision", "recall", "f1"):
        defined = [s[key] for s in stats if s[key] is not None]
        stats_mean = float(np.mean(defined)) if defined else None
        out.append(
            f'<tr class="macro"><th class="name">macro mean {key}</th>{_cell(stats_mean, key)}'
            f'<td colspan="4"></td></tr>'
        )
    out.append("</table>")
    return out


def _salience_section(summary: dict) -> list[str]:
    by_salience = summary.get("by_salience") or {}
    out = ['<h2 id="salience">Accuracy by salience</h2>']
    if not by_salience:
        return out + ['<p class="note">The dataset does not say which clips are foreground.</p>']
    out.append(
        '<table class="salience"><tr><th class="name">salience</th><th>accuracy</th>'
        "<th>clips</th></tr>"
    )
    for name, value in by_salience.items():
        out.append(
            f'<tr data-salience="{_e(name)}"><td class="name">{_e(name)}</td>'
            f"{_cell(value.get('accuracy'), 'accuracy')}<td>{_e(value.get('n', ''))}</td></tr>"
        )
    return out + ["</table>"]


def _calibration_section(rows: Sequence[Prediction]) -> list[str]:
    known = calibrated_rows(rows)
    out = ['<h2 id="calibration">Calibration</h2>']
    if not known:
        return out + ['<p class="note">No probability was recorded for these folds.</p>']
    ece, bins = calibration(
        [float(r.probability or 0.0) for r in known], [r.correct for r in known]
    )
    out += [
        f'<p>Expected calibration error (ECE): <b class="ece" data-value="{ece!r}">{ece:.1%}</b>'
        f" over {len(known)} test clips. The confidence of a prediction is the probability "
        f"its model gave the predicted class; the clips are put in {len(bins)} bins of equal "
        f"width by confidence, (k/{len(bins)}, (k+1)/{len(bins)}]; ECE = Σ<sub>k</sub> "
        f"(n<sub>k</sub>/N) · |accuracy<sub>k</sub> − mean confidence<sub>k</sub>|. "
        f"0 is a perfectly calibrated model.</p>",
        f'<img class="reliability" alt="reliability diagram" '
        f'src="{reliability_data_uri(bins, ece)}">',
        '<table class="bins"><tr><th>confidence</th><th>clips</th><th>accuracy</th>'
        "<th>mean confidence</th></tr>",
    ]
    for b in bins:
        out.append(
            f"<tr><td>{b.lower:.1f}–{b.upper:.1f}</td><td>{b.count}</td>"
            f"{_cell(b.accuracy)}{_cell(b.confidence)}</tr>"
        )
    out.append("</table>")
    if len(known) < len(rows):
        out.append(
            f'<p class="note">{len(rows) - len(known)} clips of folds trained before '
            f"probabilities were recorded are left out.</p>"
        )
    return out


def _mistake_item(rank: int, row: Prediction, audio: Audio | None, features: FeatureConfig) -> str:
    top = ", ".join(f"{_e(name)} {p:.0%}" for name, p in row.top)
    salience = SALIENCE_NAMES.get(row.salience, "")
    media = ['<p class="note">audio not available</p>']
    if audio is not None:
        y, rate = audio
        try:
            media = [
                f'<audio controls preload="metadata" src="{audio_data_uri(y, rate)}"></audio>',
                f'<img class="logmel" alt="log-mel of {_e(row.file)}" '
                f'src="{logmel_data_uri(y, rate, features=features)}">',
            ]
        except ValueError as exc:
            media = [f'<p class="note">audio not playable: {_e(exc)}</p>']
    return "\n".join(
        [
            f'<li class="mistake" data-rank="{rank}" data-fold="{row.fold}" '
            f'data-file="{_e(row.file)}" data-probability="{float(row.probability or 0.0)!r}">',
            f"<b>{rank}.</b> <code>{_e(row.file)}</code> (fold {row.fold}"
            + (f", {salience}" if salience else "")
            + ")<br>",
            f'true <b class="right">{_e(row.true_class)}</b>, predicted '
            f'<b class="wrong">{_e(row.predicted_class)}</b> '
            f'<span class="probability">{_percent(row.probability)}</span><br>',
            f"<small>top {len(row.top)}: {top}</small>",
            *media,
            "</li>",
        ]
    )


def _mistakes_section(
    rows: Sequence[Prediction],
    audio: AudioSource | None,
    n_mistakes: int,
    features: FeatureConfig,
    audio_note: str,
) -> list[str]:
    mistakes = most_confident_mistakes(rows, n_mistakes)
    wrong = sum(not r.correct for r in rows)
    out = [
        f'<h2 id="mistakes">The {len(mistakes)} most confident mistakes</h2>',
        f"<p>{wrong} of {len(rows)} test clips are wrong; here the ones their model was "
        f"surest of, most confident first. Each player holds the clip's first "
        f"{AUDIO_SECONDS:g} s (at most {AUDIO_RATE // 1000} kHz); the image is its log-mel "
        f"(the front end's bands and hop over the whole clip).</p>",
    ]
    if audio_note:
        out.append(f'<p class="note">{_e(audio_note)}</p>')
    found: dict[ClipKey, Audio] = {}
    if audio is not None and mistakes:
        try:
            found = dict(audio([r.key for r in mistakes]))
        except (OSError, ValueError) as exc:  # the page is still worth having without sound
            out.append(f'<p class="note">audio could not be read: {_e(exc)}</p>')
    out.append('<ol class="mistakes">')
    out += [
        _mistake_item(rank, row, found.get(row.key), features)
        for rank, row in enumerate(mistakes, start=1)
    ]
    out.append("</ol>")
    return out


def build_report(
    rows: Sequence[Prediction],
    summary: dict,
    class_names: Sequence[str],
    audio: AudioSource | None = None,
    *,
    title: str = "",
    n_mistakes: int = N_MISTAKES,
    features: FeatureConfig = DEFAULT_FEATURES,
    audio_note: str = "",
) -> str:
    """The error analysis as one self-contained HTML page (see the module's docstring).

    Parameters
    ----------
    rows : every test clip's prediction (``predictions.csv``).
    summary : ``summary.json`` of the same evaluation: its fold accuracies, mean / median /
        std and accuracy by salience are shown as they are (each in a ``data-value``
        attribute, exactly; as a percentage in the text).
    class_names : in label order.
    audio : where the mistakes' clips come from (None: no players).
    n_mistakes : how many of the most confident mistakes are listed.
    features : window, hop and bands of the log-mel images.
    audio_note : a line said above the mistakes (e.g. where their audio came from).
    """
    n = len(class_names)
    for r in rows:
        if not (0 <= r.true_index < n and 0 <= r.predicted_index < n):
            raise ValueError(
                f"fold {r.fold} {r.file or 'clip'}: class index outside 0..{n - 1} "
                f"({r.true_index}, {r.predicted_index})"
            )
    counts = confusion_of(rows, n)
    known = calibrated_rows(rows)
    ece = expected_calibration_error(rows)
    folds = ", ".join(str(f) for f in (summary.get("folds") or {}))
    title = title or f"urbansound evaluation: test folds {folds}"
    body = [
        '<p class="note">Sections: <a href="#summary">accuracy</a> · <a href="#confusion">'
        'confusion matrix</a> · <a href="#per-class">per class</a> · <a href="#salience">'
        'salience</a> · <a href="#calibration">calibration</a> · <a href="#mistakes">'
        f"mistakes</a>. {len(rows)} test clips, {len(known)} with probabilities.</p>",
        *_summary_section(summary, len(rows), ece),
        *_confusion_section(counts, class_names),
        *_per_class_section(counts, class_names),
        *_salience_section(summary),
        *_calibration_section(rows),
        *_mistakes_section(rows, audio, n_mistakes, features, audio_note),
    ]
    return page(title, body)


def comparison_page(
    labels: Sequence[str],
    class_names: Sequence[str],
    accuracies: Sequence[Mapping[str, float]],
    means: Sequence[float | None],
    *,
    title: str = "urbansound comparison: accuracy per class",
) -> str:
    """Per-class accuracy of several runs side by side, in :func:`build_report`'s style.

    labels : one per run (the table's columns); class_names : the rows;
    accuracies : per run, class name → accuracy (0..1; a class missing is shown "—");
    means : per run, the mean of its fold accuracies (the last row)."""
    head = "".join(f"<th>{_e(label)}</th>" for label in labels)
    rows = []
    for name in class_names:
        values = [a.get(name) for a in accuracies]
        defined = [v for v in values if v is not None]
        best = max(defined) if defined else None
        cells = "".join(
            _cell(v, "best" if v is not None and v == best and len(defined) > 1 else "")
            for v in values
        )
        rows.append(f'<tr data-class="{_e(name)}"><td class="name">{_e(name)}</td>{cells}</tr>')
    mean_cells = "".join(_cell(m, "mean") for m in means)
    body = [
        "<p>Accuracy (recall) of each class over every test fold of each run; the best of "
        "each row in bold. Last row: the mean of the runs' fold accuracies.</p>",
        '<table class="comparison"><tr><th class="name">class</th>' + head + "</tr>",
        *rows,
        f'<tr class="mean"><th class="name">mean fold accuracy</th>{mean_cells}</tr>',
        "</table>",
    ]
    return page(title, body)
