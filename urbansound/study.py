"""A study: one pipeline for a grid of configurations (model × augmentation × seed).

A study spec names its configurations; :func:`configurations` turns it into one
:class:`~urbansound.config.Config` per configuration, and :func:`feature_groups` says which
configurations share one features stage (the same front end and deformations: every
model that takes log-mels and uses one augmentation set reads the same features).

Specs come from three places, all into the same :class:`StudySpec`:

- a built-in name (:data:`BUILTIN_SPECS`: ``table1``, the study's Table 1;
  ``deformations``, the deformation ablation of :func:`deformations_spec`);
- a TOML file (:func:`read_spec_file`)::

      name = "optimisers"             # optional; default: the file's stem
      models = ["sb-cnn", "improved"] # a grid: every model × every augmentation × every seed
      augment = ["none", "study"]     # "none", a named set, or deformations joined by ","
      seeds = [0, 1]                  # optional; default: the configuration's train.seed
      [settings]                      # optional: configuration values of every configuration
      "train.batch_size" = 16

      [[configuration]]               # optional, instead of (or besides) the grid: one row
      model = "urbannet"
      augment = "time_stretch_1.23"
      label = "urbannet · stretch"     # optional: its name in the table and in MLflow
      settings = { "train.epochs" = 10 }

- the ``study`` command's flags (``--models``, ``--augment``, ``--seeds``), a grid.

Nothing here imports kfp or mlflow: the pipeline (:mod:`urbansound.pipeline.study`) wires
what this module describes, and the cost estimate (:func:`estimate_training_seconds`) is
arithmetic over the clip counts and the measured training rates.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from urbansound.ablation import DEFAULT_MARGIN
from urbansound.config import Config, ConfigError
from urbansound.deformations import DEFORMATION_FAMILIES, DEFORMATION_NAMES, DEFORMATION_SETS
from urbansound.messages import quoted
from urbansound.models import DEFAULT_MODEL, MODELS

NO_AUGMENTATION = "none"


class StudySpecError(ConfigError):
    """A study spec is unreadable or names something unknown (one line: where and why)."""


@dataclass(frozen=True)
class Entry:
    """One configuration of a spec: a model, an augmentation (``"none"``, a named set of
    :data:`urbansound.deformations.DEFORMATION_SETS`, or deformation names joined by
    ``,``), an optional seed, an optional label and configuration values of its own."""

    model: str
    augment: str = NO_AUGMENTATION
    seed: int | None = None
    label: str = ""
    settings: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class StudySpec:
    """A named list of configurations and the values every one of them gets."""

    name: str
    entries: tuple[Entry, ...]
    settings: tuple[tuple[str, Any], ...] = ()
    source: str = ""  # where it came from, for messages: "built-in", a file path, "flags"
    ablation: bool = False  # the deformation ablation (deformations_spec): a policy per model


@dataclass(frozen=True)
class Configuration:
    """One configuration of a study, resolved: its name (the table's row and the MLflow
    run's name), a slug (task and folder names) and its whole configuration."""

    name: str
    slug: str
    model: str
    augmentation: str  # "none", or the deformations joined by "+" (as `compare` shows it)
    config: Config

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "slug": self.slug,
            "model": self.model,
            "augmentation": self.augmentation,
            "config": json.loads(self.config.to_json()),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Configuration:
        return cls(
            name=data["name"],
            slug=data["slug"],
            model=data["model"],
            augmentation=data["augmentation"],
            config=Config.from_json(json.dumps(data["config"])),
        )


@dataclass(frozen=True)
class Ablation:
    """One model's deformation ablation inside a study: which configurations are its
    baseline (no augmentation), its families and all deformations (indices into the
    study's configurations), and the template of the configuration its policy trains:
    the all-deformations recipe with no deformation of its own, whose
    ``augment.per_class`` the pipeline's policy task fills in at run time from the
    validation folds' recalls (:mod:`urbansound.ablation`)."""

    model: str
    baseline: int
    families: tuple[tuple[str, int], ...]  # (family of DEFORMATION_FAMILIES, configuration)
    everything: int
    policy: Configuration
    margin: float = DEFAULT_MARGIN

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "baseline": self.baseline,
            "families": [list(f) for f in self.families],
            "everything": self.everything,
            "policy": self.policy.to_dict(),
            "margin": self.margin,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Ablation:
        return cls(
            data["model"],
            data["baseline"],
            tuple((f, int(i)) for f, i in data["families"]),
            data["everything"],
            Configuration.from_dict(data["policy"]),
            float(data["margin"]),
        )


@dataclass(frozen=True)
class Study:
    """A resolved study: its name and configurations (what the pipeline is built from),
    and the deformation ablations among them (``study deformations``)."""

    name: str
    configurations: tuple[Configuration, ...]
    notes: tuple[str, ...] = field(default=(), compare=False)
    ablations: tuple[Ablation, ...] = ()

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "name": self.name,
            "configurations": [c.to_dict() for c in self.configurations],
        }
        if self.ablations:
            data["ablations"] = [a.to_dict() for a in self.ablations]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Study:
        data = json.loads(text)
        return cls(
            data["name"],
            tuple(Configuration.from_dict(c) for c in data["configurations"]),
            ablations=tuple(Ablation.from_dict(a) for a in data.get("ablations", ())),
        )


BUILTIN_SPECS: dict[str, StudySpec] = {
    "table1": StudySpec(
        "table1",
        (
            Entry("sb-cnn", label="baseline (SB-CNN)"),
            Entry("improved", label="improved"),
            Entry("sb-cnn", "study", label="baseline + augmentation"),
            Entry("conv1d", label="1D end-to-end CNN"),
        ),
        source="built-in",
    ),
}
"""The study's own grids by name.  ``table1``: the four rows of SEED.md's Table 1 (the
baseline SB-CNN, the improved CNN, the baseline with the study's four deformations, the 1D
end-to-end CNN), each with its model's recipe from :data:`urbansound.models.MODELS`."""

ALL_DEFORMATIONS_LABEL = "all deformations"
POLICY_LABEL = "per-class policy"


def deformations_spec(models: Sequence[str] = (DEFAULT_MODEL,)) -> StudySpec:
    """The deformation ablation (built-in ``deformations``): each model without
    augmentation, once per family of :data:`~urbansound.deformations.DEFORMATION_FAMILIES`
    and once with all of them, every one with a validation fold (``train.validation =
    "fold"``: its recalls choose the policy); :func:`resolve` adds each model's policy
    configuration (:class:`Ablation`)."""
    entries = []
    for model in models:
        entries.append(Entry(model, NO_AUGMENTATION, label=model))
        for family, names in DEFORMATION_FAMILIES.items():
            entries.append(Entry(model, ",".join(names), label=f"{model} + {family}"))
        entries.append(Entry(model, "salamon-bello", label=f"{model} + {ALL_DEFORMATIONS_LABEL}"))
    spec = StudySpec(
        "deformations",
        tuple(entries),
        (("train.validation", "fold"),),
        source="built-in deformations",
        ablation=True,
    )
    check_spec(spec)
    return spec


SPECS_OF_MODELS = {"deformations": deformations_spec}
"""Built-in specs made for the ``--models`` given (default: the default model)."""

SPEC_KEYS = {"name", "models", "augment", "seeds", "settings", "configuration"}
ENTRY_KEYS = {"model", "augment", "seed", "label", "settings"}


# ---- reading specs --------------------------------------------------------------------


def spec_from_name_or_file(text: str, models: Sequence[str] | None = None) -> StudySpec:
    """A built-in spec by name, else the TOML file at ``text``; ``models``: those of a
    spec made per model (:data:`SPECS_OF_MODELS`), refused for any other."""
    if text in SPECS_OF_MODELS:
        return SPECS_OF_MODELS[text](tuple(models or (DEFAULT_MODEL,)))
    if models:
        raise StudySpecError(
            f"study {text!r}: --models makes a grid, or chooses the models of "
            f"{', '.join(SPECS_OF_MODELS)}; give a SPEC or --models, not both"
        )
    if text in BUILTIN_SPECS:
        return BUILTIN_SPECS[text]
    path = Path(text)
    if not path.exists():
        built_in = ", ".join([*BUILTIN_SPECS, *SPECS_OF_MODELS])
        raise StudySpecError(
            f"{text}: no such file, and not a built-in study (built-in: {built_in})"
        )
    return read_spec_file(path)


def read_spec_file(path: str | os.PathLike) -> StudySpec:
    """The spec in a TOML file (see the module's docstring for its keys).

    Raises
    ------
    StudySpecError
        the file cannot be read or parsed, or names an unknown key, model or deformation:
        one line, the file first.
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudySpecError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise StudySpecError(f"{path}: not a text file (UTF-8 TOML expected)") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudySpecError(f"{path}: not valid TOML ({exc})") from None
    return spec_from_dict(data, source=str(path), default_name=path.stem)


def spec_from_dict(data: Mapping, *, source: str, default_name: str = "study") -> StudySpec:
    """A spec from parsed TOML (or any mapping of the same shape); ``source`` prefixes
    every message."""

    def fail(reason: str):
        raise StudySpecError(f"{source}: {reason}")

    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(SPEC_KEYS))})")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        fail(f"name must be a non-empty string, not {quoted(name)}")
    settings = _settings(data.get("settings", {}), "settings", fail)
    entries: list[Entry] = []
    if "models" in data:
        models = _strings(data["models"], "models", fail)
        augments = _strings(data.get("augment", [NO_AUGMENTATION]), "augment", fail)
        seeds = _seeds(data.get("seeds"), fail)
        entries += grid(models, augments, seeds)
    elif "augment" in data or "seeds" in data:
        fail("augment and seeds make a grid with models: give models too")
    rows = data.get("configuration", [])
    if not isinstance(rows, list):
        fail("configuration must be an array of tables ([[configuration]])")
    for i, row in enumerate(rows, start=1):
        where = f"configuration {i}"
        if not isinstance(row, dict):
            fail(f"{where} must be a table")
        extra = sorted(set(row) - ENTRY_KEYS)
        if extra:
            fail(f"{where}: unknown key {extra[0]!r} (known: {', '.join(sorted(ENTRY_KEYS))})")
        if "model" not in row:
            fail(f"{where}: no model")
        seed = row.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            fail(f"{where}: seed must be an integer >= 0, not {quoted(seed)}")
        label = row.get("label", "")
        if not isinstance(label, str):
            fail(f"{where}: label must be a string, not {quoted(label)}")
        entries.append(
            Entry(
                _string(row["model"], f"{where}: model", fail),
                _string(row.get("augment", NO_AUGMENTATION), f"{where}: augment", fail),
                seed,
                label,
                _settings(row.get("settings", {}), f"{where}: settings", fail),
            )
        )
    if not entries:
        fail("no configuration: give models (a grid) or [[configuration]] tables")
    spec = StudySpec(name.strip(), tuple(entries), settings, source)
    check_spec(spec)
    return spec


def spec_from_flags(
    models: Sequence[str], augments: Sequence[str], seeds: Sequence[int] | None
) -> StudySpec:
    """The grid the ``study`` command's ``--models``, ``--augment``, ``--seeds`` describe."""
    spec = StudySpec(
        "grid", tuple(grid(models, augments or [NO_AUGMENTATION], seeds)), (), "--models"
    )
    check_spec(spec)
    return spec


def grid(
    models: Sequence[str], augments: Sequence[str], seeds: Sequence[int] | None = None
) -> list[Entry]:
    """Every model × augmentation × seed, in that order of nesting."""
    each_seed: Sequence[int | None] = list(seeds) if seeds else [None]
    return [
        Entry(model, augment, seed)
        for model, augment, seed in itertools.product(models, augments, each_seed)
    ]


def check_spec(spec: StudySpec) -> None:
    """Every model, augmentation and settings key is known, and no configuration twice."""

    def fail(reason: str):
        raise StudySpecError(f"{spec.source or spec.name}: {reason}")

    seen: dict[tuple, int] = {}
    for i, entry in enumerate(spec.entries, start=1):
        if entry.model not in MODELS:
            fail(f"unknown model {quoted(entry.model)} (known: {', '.join(MODELS)})")
        try:
            deformations(entry.augment)
        except ValueError as exc:
            fail(str(exc))
        key = (entry.model, tuple(deformations(entry.augment)), entry.seed, entry.settings)
        if key in seen:
            fail(f"configuration {i} ({describe(entry)}) is configuration {seen[key]} again")
        seen[key] = i


def deformations(augment: str) -> tuple[str, ...]:
    """The deformations of an augmentation: ``"none"``, a named set, or names joined by
    ``,`` or ``+``; ValueError naming an unknown one."""
    text = augment.strip()
    if text in ("", NO_AUGMENTATION):
        return ()
    if text in DEFORMATION_SETS:
        return tuple(DEFORMATION_SETS[text])
    names = tuple(n.strip() for n in re.split(r"[,+]", text) if n.strip())
    for name in names:
        if name not in DEFORMATION_NAMES:
            raise ValueError(
                f"unknown augmentation {quoted(name)} (a set: "
                f"{', '.join([NO_AUGMENTATION, *DEFORMATION_SETS])}, or deformation names "
                f"joined by '+')"
            )
    return names


def describe(entry: Entry) -> str:
    seed = f" seed {entry.seed}" if entry.seed is not None else ""
    return f"{entry.model} + {entry.augment}{seed}"


def _string(value, what: str, fail: Callable) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(f"{what} must be a non-empty string, not {quoted(value)}")
    return value.strip()


def _strings(value, what: str, fail: Callable) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()] if "," in value else [value]
    if not isinstance(value, list) or not value:
        fail(f"{what} must be a non-empty list of strings, not {quoted(value)}")
    return [_string(v, what, fail) for v in value]


def _seeds(value, fail: Callable) -> list[int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in value)
        or len(set(value)) != len(value)
    ):
        fail(f"seeds must be a list of different integers >= 0, not {quoted(value)}")
    return list(value)


def _settings(value, what: str, fail: Callable) -> tuple[tuple[str, Any], ...]:
    if not isinstance(value, dict):
        fail(f"{what} must be a table of configuration keys, not {quoted(value)}")
    out = []
    for key, item in value.items():
        if isinstance(item, dict):  # [settings.train] epochs = 3: the nested TOML form
            out += [(f"{key}.{k}", v) for k, v in item.items()]
        else:
            out.append((key, item))
    for key, _ in out:
        if "." not in key:
            fail(f"{what}: {quoted(key)} is not a section.key configuration key")
    return tuple((k, list(v) if isinstance(v, list) else v) for k, v in out)


# ---- resolving --------------------------------------------------------------------------


def resolve(
    spec: StudySpec, base: Callable[[str], Config], apply: Callable[[Config], Config] = lambda c: c
) -> Study:
    """The study's configurations.

    For each entry: ``base(model)`` (the model's recipe under the profile, as ``run``
    makes it), the spec's settings, ``apply`` (the command's ``--set`` and named flags),
    then the entry's own settings, its deformations and its seed.

    Raises
    ------
    StudySpecError
        a settings key or value the configuration rejects (named with the configuration).
    """
    seeds = {e.seed for e in spec.entries}
    several_seeds = len(seeds) > 1
    resolved = []
    for entry in spec.entries:
        where = f"{spec.source or spec.name}: {describe(entry)}"
        try:
            config = base(entry.model).override(**dict(spec.settings))
            config = apply(config).override(**dict(entry.settings))
            config = config.override(**{"augment.deformations": list(deformations(entry.augment))})
            if entry.seed is not None:
                config = config.override(**{"train.seed": entry.seed})
        except ConfigError as exc:
            raise StudySpecError(f"{where}: {exc}") from None
        names = config.augment.all_deformations()
        augmentation = "+".join(names) if names else NO_AUGMENTATION
        shown = NO_AUGMENTATION if not names else set_name(names) or augmentation
        label = entry.label or (
            entry.model if shown == NO_AUGMENTATION else f"{entry.model} + {shown}"
        )
        if several_seeds and entry.seed is not None and not entry.label:
            label += f" · seed {entry.seed}"
        resolved.append(
            Configuration(label, slug(label), entry.model, augmentation, config.validated())
        )
    ablations = _ablations(spec, resolved) if spec.ablation else []
    every = resolved + [a.policy for a in ablations]
    _unique_slugs(every)
    ablations = [
        dataclasses.replace(a, policy=p) for a, p in zip(ablations, every[len(resolved) :])
    ]
    return Study(spec.name, tuple(every[: len(resolved)]), ablations=tuple(ablations))


def _ablations(spec: StudySpec, resolved: list[Configuration]) -> list[Ablation]:
    """Each model's :class:`Ablation` among the configurations of a ``deformations_spec``."""
    out = []
    for model in dict.fromkeys(c.model for c in resolved):
        mine = {c.augmentation: i for i, c in enumerate(resolved) if c.model == model}
        everything = resolved[mine["+".join(DEFORMATION_SETS["salamon-bello"])]]
        if everything.config.train.validation != "fold":
            raise StudySpecError(
                f"{spec.source}: the deformation ablation chooses its policy on validation "
                f"folds: train.validation must be 'fold', not "
                f"{everything.config.train.validation!r}"
            )
        template = everything.config.override(
            **{"augment.deformations": [], "augment.per_class": []}
        )
        label = f"{model} + {POLICY_LABEL}"
        out.append(
            Ablation(
                model,
                mine[NO_AUGMENTATION],
                tuple((f, mine["+".join(names)]) for f, names in DEFORMATION_FAMILIES.items()),
                mine[everything.augmentation],
                Configuration(label, slug(label), model, POLICY_LABEL, template),
            )
        )
    return out


def set_name(names: tuple[str, ...]) -> str | None:
    """The name of a set (``study``, ``salamon-bello``) or family (``drc``) of exactly
    these deformations, else None."""
    named = {**DEFORMATION_SETS, **DEFORMATION_FAMILIES}
    return next((n for n, members in named.items() if tuple(members) == names), None)


def slug(text: str) -> str:
    """``sb-cnn + study · seed 1`` → ``sb-cnn-study-seed-1``: task and folder names."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "configuration"


def _unique_slugs(configurations: list[Configuration]) -> None:
    seen: dict[str, int] = {}
    for i, c in enumerate(configurations):
        n = seen.get(c.slug, 0)
        seen[c.slug] = n + 1
        if n:
            configurations[i] = Configuration(
                c.name, f"{c.slug}-{n + 1}", c.model, c.augmentation, c.config
            )


# ---- sharing features -------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureGroup:
    """Configurations that read one features stage, and the configuration it runs with."""

    slug: str
    config: Config
    members: tuple[int, ...]  # indices into the study's configurations


def features_key(config: Config) -> str:
    """What the features stage's output depends on: the front end (audio, features, data),
    the deformations and the model's input kind, not the training recipe."""
    data = json.loads(config.to_json())
    data.pop("train")
    return json.dumps([config.input_kind, data], sort_keys=True)


def feature_groups(study: Study) -> list[FeatureGroup]:
    """One features stage per distinct :func:`features_key`, in first-use order.

    Its configuration is the first member's with ``train.validation="none"``: the
    deformed folds are then every fold that trains some test fold's model under any
    protocol (a validation fold's deformed copies are never read: validation and test
    use original clips only), so one output serves every member."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(study.configurations):
        groups.setdefault(features_key(c.config), []).append(i)
    out = []
    for members in groups.values():
        first = study.configurations[members[0]]
        kind = first.config.input_kind
        names = first.config.augment.all_deformations()
        slug_text = (set_name(names) or first.augmentation) if names else "plain"
        name = slug(f"{kind}-{slug_text}")
        config = first.config.override(**{"train.validation": "none"})
        out.append(FeatureGroup(name, config, tuple(members)))
    seen: dict[str, int] = {}
    for i, g in enumerate(out):
        n = seen.get(g.slug, 0)
        seen[g.slug] = n + 1
        if n:
            out[i] = FeatureGroup(f"{g.slug}-{n + 1}", g.config, g.members)
    return out


def ingest_config(study: Study) -> Config:
    """The configuration ingest runs with: the first configuration's, asking for a
    validation fold's minimum of folds when any configuration uses one."""
    first = study.configurations[0].config
    if any(c.config.train.validation == "fold" for c in study.configurations):
        return first.override(**{"train.validation": "fold"})
    return first


# ---- cost -------------------------------------------------------------------------------

DEFAULT_MS_PER_EXAMPLE_EPOCH: dict[str, float] = {
    "urbannet": 25.0,
    "urbannet-large": 80.1,
    "sb-cnn": 15.1,
    "improved": 8.8,
    "conv1d": 31.0,
}
"""ms per training example per epoch on 2 CPU cores (``bench/train_speed.py``, as
docs/benchmarks.md reports it); a ``bench/results/train_speed.json`` replaces them."""

TRAIN_SPEED_FILE = Path("bench") / "results" / "train_speed.json"


def training_rates(path: str | os.PathLike | None = None) -> tuple[dict[str, float], str]:
    """``{model: ms per example per epoch}`` and where they come from: the float32 rows of
    ``bench/train_speed.py``'s JSON at ``path`` (default: :data:`TRAIN_SPEED_FILE` in the
    working directory) over :data:`DEFAULT_MS_PER_EXAMPLE_EPOCH`."""
    rates = dict(DEFAULT_MS_PER_EXAMPLE_EPOCH)
    file = Path(path) if path is not None else TRAIN_SPEED_FILE
    try:
        rows = json.loads(file.read_text())["rows"]
        measured = {
            r["model"]: float(r["ms_per_example_epoch"])
            for r in rows
            if r.get("precision", "float32") == "float32"
        }
    except (OSError, ValueError, KeyError, TypeError):
        return rates, "docs/benchmarks.md's rates on 2 CPU cores"
    rates.update(measured)
    return rates, f"{file} ({', '.join(sorted(measured))})"


def estimate_training_seconds(
    study: Study,
    clips_per_fold: Mapping[int, int],
    test_folds: Sequence[int],
    rates: Mapping[str, float],
) -> float:
    """Rough seconds to train every configuration × test fold on this machine: training
    clips (× one copy per deformation) × epochs × the model's rate.  An upper bound for
    models that stop early; data loading, features and evaluation are not counted."""
    from urbansound.folds import split_folds

    present = sorted(clips_per_fold)
    total = 0.0
    # a policy's configuration: at most every deformation, as its all-deformations row
    policies = [study.configurations[a.everything] for a in study.ablations]
    for c in [*study.configurations, *policies]:
        t = c.config.train
        copies = 1 + len(c.config.augment.deformations)
        rate = rates.get(c.model, max(rates.values()))
        for fold in test_folds:
            split = split_folds(fold, present, seed=t.seed, validation=t.validation)
            clips = sum(clips_per_fold[f] for f in split.train_folds)
            total += clips * copies * t.epochs * max(1, len(t.seeds)) * rate / 1000
    return total


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
