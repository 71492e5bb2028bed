"""The options commands share: one table of the flags that set configuration values
(flag, :class:`~urbansound.config.Config` key, type, help), from which both the argparse
options and the ``Config`` overrides are made, so that a flag cannot exist without its
key; and the builders of the tracking URI, model source and Beam runner options."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


class Command(NamedTuple):
    """A subcommand: ``add_parser(sub, defaults)`` declares it, ``run(args)`` runs it and
    returns the exit code."""

    add_parser: Callable
    run: Callable


# ---- argument types -------------------------------------------------------------------


def folds_arg(text: str) -> list[int]:
    try:
        folds = sorted({int(f) for f in text.split(",") if f.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--folds takes comma-separated integers, not {text!r}"
        ) from None
    if not folds or any(not 1 <= f <= 10 for f in folds):
        raise argparse.ArgumentTypeError(f"folds must be in 1..10, got {text!r}")
    return folds


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def setting(text: str) -> tuple[str, object]:
    """``section.key=value`` for ``--set``; the value is read as JSON when it parses
    (numbers, true/false, null, lists), else taken as a string.  ``section.key=@FILE``:
    the value is the file's text, read the same way (e.g. ``augment.per_class=@FILE``
    with the JSON list of a deformation ablation's ``per_class_policy.json``)."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise argparse.ArgumentTypeError(
            f"--set takes section.key=value (e.g. train.weight_decay=0.001), not {text!r}"
        )
    if raw.startswith("@"):
        try:
            raw = Path(raw[1:]).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise argparse.ArgumentTypeError(
                f"--set {key}=@FILE: cannot read {raw[1:]} ({reason})"
            ) from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes comma-separated integers, not {text!r}"
        ) from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(
            f"--seeds takes two or more different seeds >= 0, not {text!r}"
        )
    return seeds


def _deformations(text: str) -> tuple[str, ...]:
    """``--augment``: a named set or comma-separated deformation names."""
    from urbansound.deformations import DEFORMATION_SETS

    return DEFORMATION_SETS.get(text) or tuple(a.strip() for a in text.split(",") if a.strip())


# ---- the table of options -------------------------------------------------------------

RECIPE = "<recipe>"
"""The key of ``--model`` and ``--profile``: they choose the base configuration
(:func:`urbansound.config.config_for`), which the other options then override."""
SETTINGS = "<any key>"
"""The key of ``--set KEY=VALUE``: any configuration value (applied before the named flags)."""


@dataclass(frozen=True)
class Option:
    """One flag that sets a configuration value.

    flag : the long option, e.g. ``--batch-size``; its argparse ``dest`` is derived.
    key : the dotted :class:`~urbansound.config.Config` key it sets, or :data:`RECIPE`
        / :data:`SETTINGS`.
    help : the ``--help`` text.
    convert : the flag's value to the key's value (default: as parsed).
    argparse : any further ``add_argument`` keywords (type, choices, metavar, action).
    """

    flag: str
    key: str
    help: str | None
    convert: Callable[[Any], Any] | None = None
    argparse: tuple[tuple[str, Any], ...] = ()

    @property
    def dest(self) -> str:
        return dict(self.argparse).get("dest") or self.flag.lstrip("-").replace("-", "_")


def _option(flag: str, key: str, help: str | None = None, convert=None, **kwargs) -> Option:
    return Option(flag, key, help, convert, tuple(kwargs.items()))


def training_options(d) -> tuple[Option, ...]:
    """The training options shared by ``run``, ``submit`` and ``train-final``; ``d`` is the
    default :class:`~urbansound.config.Config` (quoted in the help)."""
    from urbansound.config import PROFILES
    from urbansound.models import MODELS, OPTIMIZERS

    return (
        _option(
            "--model",
            RECIPE,
            f"one of {', '.join(MODELS)} (default {d.train.model}; "
            f"`urbansound models` lists them); the model brings its own "
            f"optimiser, schedule, epochs and protocol",
        ),
        _option(
            "--profile",
            RECIPE,
            "default: the model's own recipe; study: the study's "
            "protocol (validation fold, early stopping after 15 epochs); quick: 2 epochs",
            choices=PROFILES,
        ),
        _option(
            "--epochs",
            "train.epochs",
            f"epochs (default: the model's; {d.train.model}: {d.train.epochs})",
            type=positive,
        ),
        _option(
            "--patience",
            "train.patience",
            "early-stopping patience in epochs (with a validation fold)",
            type=positive,
        ),
        _option("--optimizer", "train.optimizer", "default: the model's", choices=OPTIMIZERS),
        _option("--learning-rate", "train.learning_rate", "default: the model's", type=float),
        _option("--batch-size", "train.batch_size", "default: the model's", type=positive),
        _option(
            "--seed",
            "train.seed",
            f"seed of validation-fold choice and training (default {d.train.seed})",
            type=int,
        ),
        _option(
            "--seeds",
            "train.seeds",
            "train one model per seed for each fold and evaluate them as an "
            "ensemble (mean of probabilities); each seed's own accuracy is reported "
            "too",
            type=seed_list,
            metavar="S1,S2,...",
        ),
        SET_OPTION,
        # the source as given; resolve.resolve_init_from makes it a local model.keras
        _option(
            "--init-from",
            "train.init_from",
            "start training from a model you trained (fine-tuning): run: a "
            "model.keras, a fold folder holding one, or an MLflow URI "
            "(runs:/<run>/model, models:/<id>, models:/<name>@<alias>); submit: "
            "only a model.keras path the pods can read (a --pvc mount, gs://), "
            "not an MLflow URI. Layers are copied by name where shapes match, the "
            "per-band statistics are the new data's, the softmax is new when the "
            "class count differs; same --model as the source",
            metavar="MODEL",
        ),
        _option(
            "--freeze-features",
            "train.freeze_features",
            "with --init-from: train only the last (softmax) layer",
            action="store_true",
        ),
    )


SET_OPTION = _option(
    "--set",
    SETTINGS,
    "any configuration value, repeatable, e.g. --set "
    "train.weight_decay=0.001 --set audio.pad_mode=zeros (see the README's configuration "
    "reference); KEY=@FILE reads the value from FILE, e.g. --set "
    "augment.per_class=@per_class_policy.json (`study deformations` writes it)",
    dest="settings",
    type=setting,
    action="append",
    default=[],
    metavar="KEY=VALUE",
)


def data_options() -> tuple[Option, ...]:
    """Which layout the dataset is in and how its folds are made (run, ingest, submit,
    train-final)."""
    from urbansound.config import DEFAULT_GROUP_PATTERN, LAYOUTS

    return (
        _option(
            "--layout",
            "data.layout",
            "the dataset's layout (default: told from the folder): urbansound8k "
            "(metadata/UrbanSound8K.csv + audio/fold*/), esc50 (meta/esc50.csv + "
            "audio/, 5 s clips), folders (ROOT/<class>/<file>), csv (a CSV "
            "path,label,fold[,group][,salience])",
            choices=LAYOUTS[1:],
        ),
        _option(
            "--folds-from",
            "data.folds_from",
            "folders layout: the fold of each file, a CSV with columns file,fold "
            "(default: a seeded split into data.n_folds=5 folds grouped by recording)",
            convert=os.path.abspath,
            metavar="CSV",
        ),
        _option(
            "--group-pattern",
            "data.group_pattern",
            f"folders layout: the recording of a file, a regular expression on its "
            f"name's stem whose first group is the key; one recording never lands in "
            f"two folds (default {DEFAULT_GROUP_PATTERN!r}: the stem without its "
            f"trailing -N/_N parts, 100032-3-0-0.wav -> 100032)",
            metavar="REGEX",
        ),
    )


def clip_options(d) -> tuple[Option, ...]:
    """How training clips are deformed and padded (run; features takes --augment)."""
    return (
        _option(
            "--augment",
            "augment.deformations",
            "muda deformations of training clips: comma-separated names, or a "
            "set: 'study' (time_stretch_1.23, pitch_shift_2, drc_film_standard, "
            "background_noise_workers) or 'salamon-bello' (the dataset authors' "
            "20); per-class choice and noise folder with --set augment.per_class=... "
            "/ augment.noise_dir=DIR",
            convert=_deformations,
            metavar="NAMES",
        ),
        _option(
            "--pad-mode",
            "audio.pad_mode",
            f"how clips shorter than 3 s are filled (default {d.audio.pad_mode})",
            choices=["loop", "zeros"],
        ),
    )


def all_options() -> tuple[Option, ...]:
    from urbansound.config import Config

    d = Config()
    return training_options(d) + data_options() + clip_options(d)


def option_named(flag: str) -> Option:
    return next(o for o in all_options() if o.flag == flag)


def add_options(parser, options) -> None:
    for option in options:
        add_option(parser, option)


def add_option(parser, option: Option, help: str | None = None) -> None:
    """Declare ``option`` on ``parser``, with another ``help`` text where given."""
    parser.add_argument(option.flag, help=help or option.help, **dict(option.argparse))


def given(args, option: Option) -> Any:
    """The value ``option`` gives its key in ``args``, None when the flag was not given
    (or the command has no such flag)."""
    value = getattr(args, option.dest, None)
    if value is None or value is False:
        return None
    return option.convert(value) if option.convert else value


def overrides(args) -> dict[str, Any]:
    """``{config key: value}`` of every named flag given in ``args`` (not ``--set``, not the
    recipe's ``--model``/``--profile``)."""
    values = {o.key: given(args, o) for o in all_options() if o.key not in (RECIPE, SETTINGS)}
    return {key: value for key, value in values.items() if value is not None}


def apply_options(config, args):
    """``config`` with ``--set`` and then every named flag of ``args`` applied over it."""
    return config.override(**dict(getattr(args, "settings", None) or [])).override(
        **overrides(args)
    )


def config_from_args(args, *, demo: bool):
    """The :class:`~urbansound.config.Config` the options describe: the recipe of
    ``--model`` under ``--profile`` (the demo's shorter schedule when ``demo``), then
    ``--set``, then the named flags."""
    from urbansound.config import config_for, demo_config
    from urbansound.models import DEFAULT_MODEL

    model = getattr(args, "model", None) or DEFAULT_MODEL
    profile = getattr(args, "profile", None) or "default"
    base = demo_config(model, profile) if demo else config_for(model, profile)
    return apply_options(base, args)


# ---- shared builders ------------------------------------------------------------------

_STORE_DEFAULT = "$MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db"
STORE_HELP = f"store (default: {_STORE_DEFAULT})"
STORE_DEFAULT_HELP = f"default: {_STORE_DEFAULT}"
MODEL_STORE_HELP = f"store of an MLflow URI (default: {_STORE_DEFAULT})"


def add_tracking_uri(parser, help: str, *, default: str | None = None) -> None:
    """``--tracking-uri``, by default ``$MLFLOW_TRACKING_URI`` (else "": the command uses
    the local store)."""
    parser.add_argument(
        "--tracking-uri",
        help=help,
        default=os.environ.get("MLFLOW_TRACKING_URI", "") if default is None else default,
    )


def add_model_source(parser, help: str) -> None:
    """The MODEL positional of predict, export and listen (with :func:`add_tracking_uri`
    and :data:`MODEL_STORE_HELP` after their other options)."""
    parser.add_argument("model", metavar="MODEL", help=help)


def load_checked_model(source: str, tracking_uri: str, *, hop: float | None = None):
    """The :class:`urbansound.pipeline.model_source.LoadedModel` of ``source``, its input checked
    against its configuration (and ``hop`` seconds, when given, against its windows); a
    :class:`~urbansound.pipeline.model_source.ModelSourceError` (one line, exit 2) otherwise."""
    from urbansound.pipeline.model_source import ModelSourceError, load_model
    from urbansound.predict import check_model_input, hop_samples

    loaded = load_model(source, tracking_uri=tracking_uri)
    try:
        if hop is not None:
            hop_samples(hop, loaded.config)
        check_model_input(loaded.model, loaded.config, source)
    except ValueError as exc:
        raise ModelSourceError(str(exc)) from None
    return loaded


def add_beam_options(parser, *, checked: bool = True, help: str | None = None) -> None:
    """``--beam-arg`` (repeatable), ``--beam-runner`` and ``--dask-address``; ``checked``:
    the scheduler is checked from here (run, features), not only by the pods (submit)."""
    parser.add_argument("--beam-arg", action="append", default=[], metavar="OPT", help=help)
    parser.add_argument(
        "--beam-runner",
        choices=["local", "dask"],
        help="where the features stage runs: 'local' (default: Beam's "
        "FnApiRunner, one process per core) or 'dask' (Beam's Dask "
        "runner on the dask.distributed cluster at --dask-address)",
    )
    parser.add_argument(
        "--dask-address",
        metavar="tcp://HOST:PORT",
        help="the scheduler of your Dask cluster (with --beam-runner dask); "
        + (
            "checked before anything starts"
            if checked
            else "as the pods reach it, e.g. tcp://dask-scheduler.dask:8786 (not checked from here)"
        ),
    )


def beam_args(args, *, check_scheduler: bool = True) -> list[str]:
    """The features stage's Beam options: ``--beam-runner``/``--dask-address`` mapped to
    Beam's (a Dask scheduler is checked to answer, unless ``check_scheduler`` is False:
    submit names an address inside the cluster), then any ``--beam-arg``."""
    from urbansound.config import ConfigError
    from urbansound.pipeline import preflight

    logging.disable(logging.WARNING)  # Beam's import warns about optional GCP libraries
    try:
        from urbansound.beam_features import dask_beam_args
    finally:
        logging.disable(logging.NOTSET)
    runner = args.beam_runner or ("dask" if args.dask_address else "local")
    if runner == "local":
        if args.dask_address:
            raise ConfigError("--dask-address needs --beam-runner dask")
        return list(args.beam_arg)
    if not args.dask_address:
        raise ConfigError(
            "--beam-runner dask needs --dask-address tcp://HOST:PORT (the "
            "scheduler of your Dask cluster)"
        )
    named = [a for a in args.beam_arg if a.startswith("--runner")]
    if named:
        raise ConfigError(
            f"--beam-runner dask and --beam-arg={named[0]} name two runners; give one"
        )
    if check_scheduler:
        workers = preflight.check_dask_address(args.dask_address)
        print(
            f"Dask scheduler {args.dask_address}: {workers} workers"
            + ("; the stage waits until one joins" if workers == 0 else "")
        )
    else:
        preflight.parse_dask_address(args.dask_address)
    return dask_beam_args(args.dask_address) + list(args.beam_arg)
