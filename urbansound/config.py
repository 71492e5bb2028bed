"""The one typed configuration of urbansound: every default lives here.

A :class:`Config` is frozen and made of small frozen sections (audio, features,
training, augmentation).  It round-trips through JSON (that is how it travels
between pipeline components and into MLflow params) and flattens to
``section.field`` keys for tracking.  Nothing here is ever evaluated as code:
:meth:`Config.from_json` accepts only known keys with values of the declared type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from urbansound.audio import MAX_RATE, MAX_SECONDS, MIN_RATE, MIN_SECONDS
from urbansound.deformations import (
    DEFORMATION_NAMES,
    DEFORMATION_SETS,
    parse_per_class,
    split_per_class,
)
from urbansound.messages import quoted
from urbansound.models import DEFAULT_MODEL, MODELS, OPTIMIZERS, SCHEDULES
from urbansound.precision import PRECISIONS

CLASS_NAMES: tuple[str, ...] = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)
"""The ten UrbanSound8K classes in ``classID`` order."""

ALL_FOLDS: tuple[int, ...] = tuple(range(1, 11))
"""The official UrbanSound8K folds."""


class ConfigError(ValueError):
    """A configuration value is unknown or has the wrong type or range."""


@dataclass(frozen=True)
class AudioConfig:
    """How every clip is brought to one representation before features.

    sample_rate : Hz every clip is resampled to (mono mix-down first).
    clip_seconds : fixed clip length in seconds; 3 s gives exactly 128 frames.
    pad_mode : how clips shorter than ``clip_seconds`` are filled: ``"loop"``
        repeats the clip (what the real dev copy of folds 1-2 already did),
        ``"zeros"`` pads with silence.  Longer clips keep their first seconds.
    """

    sample_rate: int = 22050
    clip_seconds: float = 3.0
    pad_mode: str = "loop"

    @property
    def clip_samples(self) -> int:
        """Samples per fixed-length clip (66,150 at the defaults)."""
        return int(round(self.sample_rate * self.clip_seconds))


@dataclass(frozen=True)
class FeatureConfig:
    """The study's log-mel spectrogram.

    The 23 ms window (512 samples at 22,050 Hz) is zero-padded to an FFT of
    1,024 points so the lowest of the 128 HTK mel bands are not empty; the hop
    is 23 ms too (no overlap, as in the study).  With ``center=False`` a 3 s clip
    gives exactly ``n_frames`` = 128 frames.
    """

    n_fft: int = 1024
    win_length: int = 512
    hop_length: int = 512
    n_mels: int = 128
    n_frames: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None: Nyquist (11,025 Hz at 22,050 Hz)
    top_db: float = 80.0  # dB floor below the clip's own peak
    amin: float = 1e-10  # power floor before log, avoids log(0) on silence
    # Models that take the waveform (input kind "waveform", e.g. conv1d) get the fixed-length
    # clip resampled to this rate: 16 kHz as Abdoli et al. 2019, 48,000 samples for 3 s.
    waveform_rate: int = 16000
    # Test-time averaging: > 0 cuts every original clip longer than audio.clip_seconds into
    # windows every window_hop_s seconds (plus one aligned to its end), as predict does; a
    # test clip is then classified by the mean of its windows' probabilities.  0: one window,
    # the clip's first clip_seconds (the study).  train.random_windows trains on them too.
    # The default is the default model's (its recipe in urbansound.models.MODELS).
    window_hop_s: float = MODELS[DEFAULT_MODEL].window_hop_s

    def waveform_samples(self, clip_seconds: float) -> int:
        """Samples of a waveform-input model's clip: 48,000 for 3 s at 16 kHz."""
        return int(round(self.waveform_rate * clip_seconds))


_DEFAULT_RECIPE = MODELS[DEFAULT_MODEL]


@dataclass(frozen=True)
class TrainConfig:
    """Model, optimiser, schedule and the cross-validation protocol.

    The defaults are the recipe of the default model in :data:`urbansound.models.MODELS`
    (the registry is the one place a model's recipe lives; :meth:`Config.for_model`
    takes another model's).  ``validation="fold"`` is the study's protocol: one
    non-test fold, drawn with the seed, is held out for early stopping after
    ``patience`` epochs without validation-accuracy gain (best weights restored);
    ``"none"`` trains every non-test fold on a fixed schedule.  Inputs are
    standardised per mel band with statistics of the training folds only
    (``normalize="per_band"``): without it the study's SGD stays at chance.
    ``schedule="one_cycle"``: warm-up over 10 % of the steps, then cosine decay.
    ``mixup_alpha``, ``spec_augment``, ``time_shift``: in-training augmentation of the
    training batches (:func:`urbansound.training_input.augment_batch`).
    """

    model: str = DEFAULT_MODEL
    optimizer: str = _DEFAULT_RECIPE.optimizer
    learning_rate: float = _DEFAULT_RECIPE.learning_rate
    weight_decay: float = _DEFAULT_RECIPE.weight_decay
    schedule: str = _DEFAULT_RECIPE.schedule
    batch_size: int = _DEFAULT_RECIPE.batch_size
    epochs: int = _DEFAULT_RECIPE.epochs
    patience: int = _DEFAULT_RECIPE.patience
    validation: str = _DEFAULT_RECIPE.validation
    mixup_alpha: float = _DEFAULT_RECIPE.mixup_alpha
    spec_augment: int = _DEFAULT_RECIPE.spec_augment
    time_shift: bool = _DEFAULT_RECIPE.time_shift
    # every epoch, one window of each training clip drawn at random from its windows
    # (features.window_hop_s apart, the last aligned to the clip's end), so a 4 s clip is
    # seen whole, not only its first audio.clip_seconds; needs features.window_hop_s > 0
    random_windows: bool = _DEFAULT_RECIPE.random_windows
    # With deformed copies (augment.deformations), how they train: "all": every
    # copy is an example of every epoch (the study; an epoch costs 1 + copies per clip), and
    # a clip with fewer copies than the most (a per-class policy) repeats its original to
    # match, so the classes keep their balance (training_input.original_repeats);
    # "draw": every epoch, one version of each training clip (its original or one of its
    # copies) drawn at random, so an epoch costs what unaugmented training costs
    deformed_copies: str = _DEFAULT_RECIPE.deformed_copies
    # with "draw": the probability that an epoch takes a clip's original rather than one of
    # its copies; None: every version equally likely (the original 1 in 1 + copies)
    original_share: float | None = _DEFAULT_RECIPE.original_share
    normalize: str = "per_band"
    seed: int = 0
    seeds: tuple[int, ...] = ()  # several: one model per seed, an ensemble (see member_seeds)
    # models per fold when seeds is empty: seeds seed·n … seed·n + n - 1, averaged (an ensemble)
    ensemble: int = _DEFAULT_RECIPE.ensemble
    # "memory": the training examples as arrays; "stream": read from the records each epoch
    # (tf.data, bounded memory); "auto": stream when they would take > 2 GiB
    input: str = "auto"
    # "float32"; "mixed_bfloat16": layers compute in bfloat16, weights stay float32 (fast on
    # CPUs with AVX-512 BF16 / AMX); "auto": mixed_bfloat16 where the CPU has those
    # instructions.  The saved model is float32 either way (urbansound.precision).
    precision: str = _DEFAULT_RECIPE.precision
    # Fine-tuning: a local model.keras whose weights start training (layers copied by name
    # where shapes match; not the per-band statistics; the softmax only when the class
    # count is equal); "" trains from scratch.  freeze_features: only the softmax trains.
    init_from: str = ""
    freeze_features: bool = False

    @property
    def member_seeds(self) -> tuple[int, ...]:
        """The seed of every model trained per fold: ``seeds`` when given, else ``ensemble``
        consecutive seeds from ``seed × ensemble`` (so two values of ``seed`` share no
        member); ``(seed,)`` for one model."""
        if self.seeds:
            return self.seeds
        return tuple((self.seed * self.ensemble + i) % 2**32 for i in range(self.ensemble))

    @property
    def augments_batches(self) -> bool:
        """True when training batches are augmented (mixup, masks, time shift, random windows,
        a drawn deformed copy)."""
        return (
            self.mixup_alpha > 0
            or self.spec_augment > 0
            or self.time_shift
            or self.random_windows
            or self.deformed_copies == "draw"
        )


PROFILES = ("default", "study", "quick")
"""``--profile``: ``default`` is each model's own recipe; ``study`` the study's protocol
(validation fold, early stopping after 15 epochs, the model's epochs); ``quick`` two
epochs, for tests and smoke runs."""


def train_config_for(model: str, profile: str = "default") -> TrainConfig:
    """The training section for ``model`` under ``profile`` (see :data:`PROFILES`)."""
    try:
        spec = MODELS[model]
    except KeyError:
        raise ConfigError(f"train.model must be one of {list(MODELS)}, not {model!r}") from None
    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {list(PROFILES)}, not {profile!r}")
    recipe: dict[str, Any] = dict(
        model=model,
        optimizer=spec.optimizer,
        learning_rate=spec.learning_rate,
        weight_decay=spec.weight_decay,
        schedule=spec.schedule,
        batch_size=spec.batch_size,
        epochs=spec.epochs,
        patience=spec.patience,
        validation=spec.validation,
        mixup_alpha=spec.mixup_alpha,
        spec_augment=spec.spec_augment,
        time_shift=spec.time_shift,
        random_windows=spec.random_windows,
        deformed_copies=spec.deformed_copies,
        original_share=spec.original_share,
        precision=spec.precision,
        ensemble=spec.ensemble,
    )
    if profile == "study":
        recipe.update(validation="fold", patience=15)
    elif profile == "quick":
        recipe.update(epochs=2, patience=1, ensemble=1)  # one model: a smoke run
    return TrainConfig(**recipe)


@dataclass(frozen=True)
class AugmentConfig:
    """Deformed copies of training clips (muda).  Empty = none.

    deformations : each name yields one deformed copy of every clip of the folds
        that train; the copies are only ever used when their source fold is a
        training fold.  Names and sets: :mod:`urbansound.deformations`.
    per_class : ``"<class>=<name>,<name>"`` entries: that class gets these
        deformations instead (``"<class>="``: none), the study's per-class choice.
    noise_dir : folder of background-noise recordings for ``background_noise_*``;
        empty: the built-in synthesised noises (never audio of the dataset).
    cache_dir : folder (or bucket URI) where each deformed copy's model input is kept,
        so that a rerun never recomputes a deformation it already has
        (:mod:`urbansound.deformation_cache`); empty: no cache.  ``urbansound run``
        uses ``<out>/cache/deformations`` unless this is set.
    """

    deformations: tuple[str, ...] = ()
    per_class: tuple[str, ...] = ()
    noise_dir: str = ""
    cache_dir: str = ""

    def all_deformations(self) -> tuple[str, ...]:
        """Every deformation some class uses, in first-use order."""
        names = list(self.deformations)
        for _, chosen, _ in split_per_class(self.per_class):
            names += chosen
        return tuple(dict.fromkeys(names))


LAYOUTS = ("auto", "urbansound8k", "esc50", "folders", "csv")
"""``data.layout``: ``auto`` tells the layout from the dataset folder
(:func:`urbansound.layouts.detect_layout`); the others name it."""

DEFAULT_GROUP_PATTERN = r"^(.+?)(?:[-_][0-9]+)*$"
"""The recording a file belongs to, for the folder-per-class split: the file name's stem
without its trailing ``-<number>`` / ``_<number>`` parts (``100032-3-0-0.wav`` → ``100032``,
``street_7.wav`` → ``street``)."""


@dataclass(frozen=True)
class DataConfig:
    """Where clips, class names and folds come from (:mod:`urbansound.layouts`).

    layout : one of :data:`LAYOUTS`.
    folds_from : folder-per-class layout: a CSV with columns ``file,fold`` (``file`` relative
        to the dataset folder, or a bare file name); empty: a seeded split into ``n_folds``
        folds grouped by recording.
    group_pattern : regular expression matched against a file name's stem; its first group
        (or the whole match) is the recording key: files with one key never go to two
        folds.  Default :data:`DEFAULT_GROUP_PATTERN`.
    n_folds : folds of the grouped split (2..10).
    split_seed : seed of the grouped split (separate from ``train.seed``, so that changing
        the training seed keeps the folds).
    class_names : the classes in label order; empty: the dataset's own (UrbanSound8K's ten
        for that layout, ESC-50's by target, folder or label names sorted).  Given, it fixes
        the order, and clips of other classes are rejected.
    """

    layout: str = "auto"
    folds_from: str = ""
    group_pattern: str = DEFAULT_GROUP_PATTERN
    n_folds: int = 5
    split_seed: int = 0
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything a run depends on, with the study's defaults."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes in label order: ``data.class_names``, else UrbanSound8K's ten."""
        return self.data.class_names or CLASS_NAMES

    @property
    def input_kind(self) -> str:
        """What the model takes, from the registry: ``"logmel"`` or ``"waveform"``."""
        return MODELS[self.train.model].input_kind

    # -- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (tuples become lists)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): equal configs give equal strings."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def flat(self) -> dict[str, Any]:
        """``{"train.epochs": 50, ...}``: the form MLflow params take."""
        out: dict[str, Any] = {}
        for section, values in self.to_dict().items():
            for key, value in values.items():
                out[f"{section}.{key}"] = value
        return out

    def fingerprint(self) -> str:
        """Short SHA-256 of the canonical JSON, to tag artifacts."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Parse JSON written by :meth:`to_json` (or a subset of its keys)."""
        try:
            data = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, or an integer of over 4,300 digits
            raise ConfigError(f"configuration is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Config:
        """:meth:`from_json` of the file ``path`` (a ``config.json``); every error names
        the file: ``"<path>: <reason>"``."""
        from urbansound.files import regular_file_problem

        problem = regular_file_problem(path)  # a FIFO is never opened
        if problem:
            raise ConfigError(f"{path}: {problem}")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        try:
            return cls.from_json(text)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build from a nested mapping; unknown keys and wrong types are errors."""
        if not isinstance(data, Mapping):
            raise ConfigError("configuration must be a JSON object")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(f"unknown configuration section(s): {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, values in data.items():
            # every section is field(default_factory=<its class>)
            section_type = sections[name].default_factory
            assert isinstance(section_type, type)
            kwargs[name] = _build_section(section_type, name, values)
        return cls(**kwargs).validated()

    def override(self, **dotted: Any) -> Config:
        """Copy with ``section.field`` values replaced, e.g.
        ``cfg.override(**{"train.epochs": 5})``.  ``None`` values are ignored."""
        data = self.to_dict()
        for key, value in dotted.items():
            if value is None:
                continue
            section, _, name = key.partition(".")
            if section not in data or name not in data[section]:
                raise ConfigError(f"unknown configuration key {key!r}")
            data[section][name] = list(value) if isinstance(value, tuple) else value
        return Config.from_dict(data)

    def validated(self) -> Config:
        """Return self after range checks; raise :class:`ConfigError` otherwise."""
        problem = out_of_bounds(self)  # first: the checks below compute with the values
        if problem:
            raise ConfigError(problem)
        t, a, f = self.train, self.audio, self.features
        # the relations between values and the choices; each value's own range is
        # out_of_bounds' (_RANGES)
        checks = [
            (a.pad_mode in ("loop", "zeros"), "audio.pad_mode must be 'loop' or 'zeros'"),
            (f.win_length <= f.n_fft, "features.win_length must be <= features.n_fft"),
            (
                0 <= f.fmin < a.sample_rate / 2,
                "features.fmin must be >= 0 and < audio.sample_rate / 2",
            ),
            (
                f.fmax is None or f.fmin < f.fmax <= a.sample_rate / 2,
                "features.fmax must be > features.fmin and <= audio.sample_rate / 2",
            ),
            (
                0 <= f.window_hop_s <= a.clip_seconds,
                "features.window_hop_s must be 0 (no test-time windows) or a hop of at most "
                "audio.clip_seconds",
            ),
            (
                not t.random_windows or f.window_hop_s > 0,
                "train.random_windows needs features.window_hop_s > 0 (the windows it draws from)",
            ),
            (
                t.deformed_copies in ("all", "draw"),
                "train.deformed_copies must be 'all' or 'draw'",
            ),
            (
                t.original_share is None or 0 <= t.original_share <= 1,
                "train.original_share must be a probability (0 to 1) or null",
            ),
            (
                t.original_share is None or t.deformed_copies == "draw",
                "train.original_share needs train.deformed_copies=draw",
            ),
            (0 <= t.spec_augment <= 8, "train.spec_augment must be 0..8 masks per axis"),
            (t.schedule in SCHEDULES, f"train.schedule must be one of {list(SCHEDULES)}"),
            (t.validation in ("fold", "none"), "train.validation must be 'fold' or 'none'"),
            (t.learning_rate > 0, "train.learning_rate must be > 0"),
            (len(set(t.seeds)) == len(t.seeds), "train.seeds must differ"),
            (t.optimizer in OPTIMIZERS, f"train.optimizer must be one of {list(OPTIMIZERS)}"),
            (t.normalize in ("per_band", "none"), "train.normalize must be 'per_band' or 'none'"),
            (
                t.input in ("auto", "memory", "stream"),
                "train.input must be 'auto', 'memory' or 'stream'",
            ),
            (
                t.precision in PRECISIONS,
                f"train.precision must be one of {list(PRECISIONS)}, not {t.precision!r}",
            ),
            (t.model in MODELS, f"train.model must be one of {list(MODELS)}, not {t.model!r}"),
            (
                not t.freeze_features or bool(t.init_from),
                "train.freeze_features needs train.init_from (a model to start from)",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.input_kind == "waveform" and t.spec_augment:
            raise ConfigError(
                f"train.spec_augment masks log-mel bands and frames; model "
                f"{t.model!r} takes the waveform: set train.spec_augment=0"
            )
        for name in self.augment.deformations:
            if name not in DEFORMATION_NAMES:
                raise ConfigError(
                    f"unknown deformation {name!r}; known: {sorted(DEFORMATION_NAMES)} "
                    f"or a set: {sorted(DEFORMATION_SETS)}"
                )
        d = self.data
        data_checks = [
            (
                d.layout in LAYOUTS,
                f"data.layout must be one of {list(LAYOUTS)}, not {quoted(d.layout)}",
            ),
            (2 <= d.n_folds <= 10, "data.n_folds must be 2..10"),
            (d.split_seed >= 0, "data.split_seed must be >= 0"),
            (
                all(n.strip() == n and n for n in d.class_names),
                "data.class_names must be names without surrounding spaces",
            ),
            (len(set(d.class_names)) == len(d.class_names), "data.class_names must differ"),
        ]
        for ok, message in data_checks:
            if not ok:
                raise ConfigError(message)
        try:
            import re

            re.compile(d.group_pattern)
        except re.error as exc:
            raise ConfigError(
                f"data.group_pattern {quoted(d.group_pattern)} is not a regular expression ({exc})"
            ) from None
        # per-class names are checked where the classes are known: given, or UrbanSound8K's
        # (``auto`` is resolved to the dataset's layout before a run, see
        # urbansound.pipeline.commands.resolve)
        if d.class_names or d.layout in ("auto", "urbansound8k"):
            try:
                parse_per_class(self.augment.per_class, self.class_names)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        expected = 1 + (a.clip_samples - f.n_fft) // f.hop_length
        if expected < f.n_frames:
            raise ConfigError(
                f"audio.clip_seconds={a.clip_seconds} gives {expected} frames, "
                f"fewer than features.n_frames={f.n_frames}"
            )
        return self


# -- plausible bounds: no single value may buy unbounded memory or time ------------------

MAX_CLIP_SAMPLES = 600 * 48_000
"""Samples of one window at the model's rate: ``audio.sample_rate`` × ``audio.clip_seconds``
(and a waveform model's ``features.waveform_rate`` × ``audio.clip_seconds``) at most 10 min
at 48 kHz, 115 MB of float32.  Every window of training, predict, serving and listen holds
this many samples (the default is 66,150)."""
MAX_INPUT_CELLS = 2**22
"""``features.n_mels`` × ``features.n_frames`` at most 4,194,304: 16 MiB of float32 per
log-mel window, 512 MiB for a batch of 32 (the default 128 × 128 is 16,384)."""
MAX_SEED = 2**32 - 1
"""Largest seed (NumPy's and TensorFlow's seeds are 32-bit)."""
MAX_SEEDS = 32
"""``train.seeds``: each seed trains one model per fold."""
MAX_CLASSES = 10_000
"""``data.class_names``: one softmax output per class."""

_RANGES: tuple[tuple[str, float, float, str], ...] = (
    # key, lowest, highest (both allowed), unit
    ("audio.sample_rate", MIN_RATE, MAX_RATE, " Hz"),  # what ingest, predict, listen accept
    ("audio.clip_seconds", MIN_SECONDS, MAX_SECONDS, " s"),  # ingest's shortest/longest clip
    ("features.n_fft", 16, 65_536, ""),
    ("features.win_length", 1, 65_536, ""),
    ("features.hop_length", 1, 65_536, ""),
    ("features.n_mels", 1, 1_024, ""),
    ("features.n_frames", 1, 32_768, ""),
    ("features.top_db", 1e-3, 200.0, " dB"),
    ("features.amin", 1e-30, 1.0, ""),
    ("features.waveform_rate", MIN_RATE, MAX_RATE, " Hz"),
    ("train.epochs", 1, 10_000, ""),
    ("train.patience", 1, 10_000, ""),
    ("train.batch_size", 1, 4_096, ""),
    ("train.weight_decay", 0.0, 1.0, ""),
    ("train.mixup_alpha", 0.0, 10.0, ""),
    ("train.seed", 0, MAX_SEED, ""),
    ("train.ensemble", 1, MAX_SEEDS, ""),
    ("data.split_seed", 0, MAX_SEED, ""),
)
"""Plausible ranges, checked on every load (JSON, ``--set``, a run's params, a model's
``config.json``).  ``train.learning_rate`` is only finite and > 0: its size costs neither
memory nor time, and an absurd one stops training as diverged."""


def _number(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _shown(value: Any) -> str:
    """A value for a bounds message: an integer too long to print is described."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an integer of {value.bit_length():,} bits"
    return quoted(value)


def out_of_bounds(config: Config) -> str | None:
    """The first value of ``config`` outside its plausible bounds, as one line naming the
    key, the bounds and the value (``"audio.sample_rate must be 1,000..768,000 Hz, got
    2000000000"``); None when every value is within them.  Floats must be finite."""
    for section_field in dataclasses.fields(config):
        values = getattr(config, section_field.name)
        for value_field in dataclasses.fields(values):
            value = getattr(values, value_field.name)
            if isinstance(value, float) and not math.isfinite(value):
                return (
                    f"{section_field.name}.{value_field.name} must be a finite number, "
                    f"got {value!r}"
                )
    for key, low, high, unit in _RANGES:
        section, _, name = key.partition(".")
        value = getattr(getattr(config, section), name)
        if not low <= value <= high:
            return f"{key} must be {_number(low)}..{_number(high)}{unit}, got {_shown(value)}"
    a, f, t = config.audio, config.features, config.train
    if 0 < f.window_hop_s < MIN_SECONDS:
        return (
            f"features.window_hop_s must be 0 (no test-time windows) or at least "
            f"{MIN_SECONDS:g} s, got {f.window_hop_s:g}"
        )
    for key, rate in (
        ("audio.sample_rate", a.sample_rate),
        ("features.waveform_rate", f.waveform_rate),
    ):
        if rate * a.clip_seconds > MAX_CLIP_SAMPLES:
            return (
                f"{key} × audio.clip_seconds must be at most {MAX_CLIP_SAMPLES:,} samples "
                f"per window, got {rate:,} Hz × {a.clip_seconds:g} s"
            )
    if f.n_mels * f.n_frames > MAX_INPUT_CELLS:
        return (
            f"features.n_mels × features.n_frames must be at most {MAX_INPUT_CELLS:,} "
            f"cells per window, got {f.n_mels:,} × {f.n_frames:,}"
        )
    if len(t.seeds) > MAX_SEEDS or not all(0 <= s <= MAX_SEED for s in t.seeds):
        return (
            f"train.seeds must be at most {MAX_SEEDS} seeds of 0..{MAX_SEED:,}, "
            f"got {quoted(list(t.seeds))}"
        )
    if len(config.data.class_names) > MAX_CLASSES:
        return (
            f"data.class_names must be at most {MAX_CLASSES:,} names, got "
            f"{len(config.data.class_names):,}"
        )
    return None


def _build_section(section_type: type, name: str, values: Any) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"configuration section {name!r} must be an object")
    fields = {f.name: f for f in dataclasses.fields(section_type)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"unknown key(s) in {name!r}: {sorted(unknown)}")
    defaults = section_type()
    kwargs = {}
    for key, value in values.items():
        default = getattr(defaults, key)
        kwargs[key] = _coerce(f"{name}.{key}", value, default, fields[key].type)
    return section_type(**kwargs)


def _coerce(key: str, value: Any, default: Any, annotation: Any) -> Any:
    """Accept ``value`` only if it has the type of the field (ints for floats too)."""
    if isinstance(default, tuple):
        kind = int if "int" in str(annotation) else str
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, kind) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{key} must be a list of {kind.__name__}s")
        return tuple(value)
    if value is None and "None" in str(annotation):
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float) or "float" in str(annotation):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):  # JSON's NaN/Infinity extensions
            raise ConfigError(f"{key} must be a finite number, got {quoted(value)}")
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        expected = str(annotation) if default is None else type(default).__name__  # "float | None"
        raise ConfigError(f"{key} must be of type {expected}, got {quoted(value)}")
    return value


def config_for(model: str = DEFAULT_MODEL, profile: str = "default") -> Config:
    """The default configuration with ``model``'s training recipe under ``profile`` (and
    its windows: ``features.window_hop_s``)."""
    window_hop_s = MODELS[model].window_hop_s if model in MODELS else 0.0
    return Config(
        train=train_config_for(model, profile), features=FeatureConfig(window_hop_s=window_hop_s)
    ).validated()


DEMO_EPOCHS = 15
"""Epochs on the built-in demo data (240 training clips per fold): a few minutes on 2 cores."""


def demo_config(model: str = DEFAULT_MODEL, profile: str = "default") -> Config:
    """The configuration ``urbansound run`` uses on the built-in demo data.

    The model's recipe with fewer epochs (and, for early stopping, a shorter
    patience) so four folds train in a few minutes on two CPU cores.
    """
    config = config_for(model, profile)
    if profile == "quick":
        return config
    return config.override(
        **{
            "train.epochs": min(DEMO_EPOCHS, config.train.epochs),
            "train.patience": min(8, config.train.patience),
            "train.batch_size": 16,
            "train.ensemble": 1,  # one model per fold, whatever the recipe's ensemble
        }
    )
