"""``urbansound study SPEC``: one pipeline for a grid of configurations, with kfp's local
runner; at the end the study's Table 1, the box plot and per-class accuracy side by side."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

from urbansound.content_hash import cache_file_for
from urbansound.pipeline.commands.cluster import (
    add_cluster_target,
    add_data_version,
    add_pvc,
    add_retries,
)
from urbansound.pipeline.commands.options import (
    EXIT_OK,
    SET_OPTION,
    Command,
    add_beam_options,
    add_option,
    add_options,
    add_tracking_uri,
    apply_options,
    beam_args,
    data_options,
    folds_arg,
    option_named,
)
from urbansound.pipeline.commands.resolve import (
    CONTENT_DIGESTS,
    legacy_only,
    resolve_data,
    with_deformation_cache,
)

DEFAULT_OUT = "urbansound-study"
HOURS = 3600.0
"""From this estimated local training time on, the study suggests a cluster."""

STUDY_TRAINING_FLAGS = (
    "--profile",
    "--epochs",
    "--patience",
    "--optimizer",
    "--learning-rate",
    "--batch-size",
    "--pad-mode",
)
"""``run``'s options a study takes as they are (for every configuration); ``--model``,
``--augment`` and ``--seeds`` are the study's own (lists: a grid), ``--seed`` is a grid
of one (``--seeds 3``)."""


def _list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, not {text!r}")
    return items


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes comma-separated integers, not {text!r}"
        ) from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds takes different integers >= 0, not {text!r}")
    return seeds


def add_parser(sub, d) -> None:
    from urbansound.deformations import DEFORMATION_SETS
    from urbansound.models import MODELS
    from urbansound.study import BUILTIN_SPECS

    study = sub.add_parser(
        "study",
        help="run a grid of configurations as one pipeline (the study's Table 1: `study table1`)",
        description="Run one pipeline for a grid of configurations (model × augmentation × "
        "seed) with kfp's local runner: ingest once, features once per augmentation set "
        "(shared by every model that uses it), every configuration × test fold trained, "
        "each configuration evaluated as `run` evaluates, then the study's Table 1 (mean / "
        "median / std per configuration next to the study's own figures), the box plot and "
        "the per-class accuracy side by side. In MLflow: a study run, under it one run per "
        "configuration, under each its fold runs. Before anything starts it prints how "
        "many trainings it will run and roughly how long they take here. Rerunning the same "
        "command resumes: finished tasks and configurations come from kfp's cache.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="SPEC file (TOML):\n"
        '  name = "my-study"\n'
        '  models = ["sb-cnn", "improved"]      # a grid: models x augment x seeds\n'
        '  augment = ["none", "study"]\n'
        "  seeds = [0, 1]                       # optional\n"
        "  [settings]                           # optional: every configuration\n"
        '  "train.batch_size" = 16\n'
        "  [[configuration]]                    # optional: one more row of its own\n"
        '  model = "urbannet"\n'
        '  augment = "time_stretch_1.23,pitch_shift_2"\n'
        '  settings = { "train.epochs" = 10 }\n'
        "\nexamples:\n"
        "  urbansound study table1 --profile quick              # built-in data, 4 rows\n"
        "  urbansound study table1 --data ~/UrbanSound8K --folds 1,2\n"
        "  urbansound study deformations --models sb-cnn --profile quick   # the ablation\n"
        "  urbansound study --models sb-cnn,improved --augment none,study --seeds 0,1\n"
        "  urbansound study my-study.toml --data ~/UrbanSound8K --dry-run\n"
        "  urbansound study table1 --compile study.yaml          # for a Kubeflow cluster\n"
        "  urbansound study table1 --submit --host http://localhost:8080 \\\n"
        "      --pvc us8k:/mnt/data --data /mnt/data/UrbanSound8K  # run it on one",
    )
    study.add_argument(
        "spec",
        nargs="?",
        metavar="SPEC",
        help=f"a built-in study ({', '.join(BUILTIN_SPECS)}: the study's four rows: "
        "sb-cnn, improved, sb-cnn + the study's augmentation, conv1d; deformations: the "
        "deformation ablation of --models (default: the default model): no augmentation, "
        "each family, all, then a per-class policy chosen on validation folds) or a TOML "
        "file; or none, with --models",
    )
    study.add_argument(
        "--models",
        dest="study_models",
        type=_list,
        metavar="M1,M2,...",
        help=f"a grid instead of SPEC: these models ({', '.join(MODELS)})",
    )
    study.add_argument(
        "--augment",
        dest="study_augment",
        type=_list,
        metavar="A1,A2,...",
        help="with --models: each model with each augmentation: none, "
        f"{', '.join(DEFORMATION_SETS)}, or deformation names joined by '+' (default none)",
    )
    study.add_argument(
        "--seeds",
        dest="study_seeds",
        type=_seeds,
        metavar="S1,S2,...",
        help="with --models: each configuration once per seed (a row each; not `run`'s "
        "ensemble of seeds)",
    )
    study.add_argument(
        "--data",
        metavar="DIR",
        help="the dataset, as `run` takes it (default: the built-in demo data); with "
        "--submit: as the pods see it (a mounted volume or gs:// path)",
    )
    add_options(study, data_options())
    study.add_argument(
        "--folds",
        type=folds_arg,
        default=[],
        help="test folds to evaluate, e.g. 1,2 (default: every fold present)",
    )
    for flag in STUDY_TRAINING_FLAGS:
        add_option(study, option_named(flag))
    add_option(
        study,
        SET_OPTION,
        help="any configuration value of every configuration, "
        "repeatable (a spec's own settings come first, then these)",
    )
    study.add_argument(
        "--strict", action="store_true", help="fail before training if any row or file is rejected"
    )
    study.add_argument(
        "--no-cache",
        action="store_true",
        help="run every task again and open a new MLflow study run",
    )
    add_tracking_uri(
        study,
        "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db; "
        "with --submit: the MLflow server the pods can reach, default none)",
        default="",
    )
    study.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"pipeline outputs (and generated demo data) (default ./{DEFAULT_OUT})",
    )
    add_beam_options(study, help="Beam pipeline option for the features stages, repeatable")
    study.add_argument(
        "--dry-run",
        action="store_true",
        help="print the configurations, the trainings and their estimated time; run nothing",
    )
    study.add_argument(
        "--compile",
        metavar="FILE",
        help="write the study's pipeline for a Kubeflow cluster (IR YAML: a GPU per "
        "training, the cluster's requests, limits and retries) to FILE; run nothing",
    )
    cluster = study.add_argument_group(
        "on a Kubeflow cluster",
        "--compile FILE writes the study's pipeline; --submit compiles and submits it as "
        "`urbansound submit` does a run's (the same options; --data is then the dataset "
        "as the pods see it)",
    )
    cluster.add_argument(
        "--submit",
        action="store_true",
        help="submit the study to the Kubeflow Pipelines cluster at --host: every "
        "configuration × test fold a pod with a GPU, all in parallel; run nothing here",
    )
    add_cluster_target(cluster, required=False)
    cluster.add_argument(
        "--image",
        metavar="IMG",
        help="with --compile or --submit: the image every task runs in (default urbansound:latest)",
    )
    add_pvc(cluster)
    add_data_version(cluster)
    add_retries(cluster)


def _spec(args):
    from urbansound.config import ConfigError
    from urbansound.study import SPECS_OF_MODELS, spec_from_flags, spec_from_name_or_file

    if args.spec in SPECS_OF_MODELS:  # `study deformations [--models A,B]`
        if args.study_augment or args.study_seeds:
            raise ConfigError(f"study {args.spec} chooses its augmentations and seed itself")
        return spec_from_name_or_file(args.spec, args.study_models)
    if args.study_models:
        if args.spec:
            raise ConfigError("give a SPEC or --models (a grid), not both")
        return spec_from_flags(args.study_models, args.study_augment, args.study_seeds)
    if args.study_augment or args.study_seeds:
        raise ConfigError("--augment and --seeds make a grid with --models: give --models too")
    if not args.spec:
        raise ConfigError("give a SPEC (table1, or a TOML file) or --models (a grid)")
    return spec_from_name_or_file(args.spec)


def _check_mode(args) -> None:
    """One of --dry-run, --compile and --submit at most, and the cluster's options only
    with the one that uses them; ConfigError (one line) otherwise."""
    from urbansound.config import ConfigError

    modes = [
        flag
        for flag, on in (
            ("--dry-run", args.dry_run),
            ("--compile", args.compile),
            ("--submit", args.submit),
        )
        if on
    ]
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)}: give one of them")
    submission = [
        flag
        for flag, given in (
            ("--host", args.host is not None),
            ("--pipeline-root", args.pipeline_root is not None),
            ("--data-version", args.data_version),
            ("--experiment", args.experiment != "urbansound"),
        )
        if given
    ]
    if submission and not args.submit:
        raise ConfigError(f"{submission[0]} is for a submission: add --submit")
    cluster = [
        flag
        for flag, given in (
            ("--image", args.image is not None),
            ("--pvc", args.pvc),
            ("--retries", args.retries),
        )
        if given
    ]
    if cluster and not (args.compile or args.submit):
        raise ConfigError(f"{cluster[0]} is for a cluster: add --submit or --compile FILE")
    if args.submit and args.host is None:
        raise ConfigError(
            "--submit needs --host URL: the KFP API endpoint, e.g. http://localhost:8080"
        )
    if args.submit and args.data is None:
        raise ConfigError(
            "--submit needs --data PATH: the dataset as the pods see it (a mounted "
            "volume: --pvc NAME:/MOUNT, or a gs:// path)"
        )


def _resolve(spec, args, *, demo: bool):
    from urbansound.config import config_for, demo_config
    from urbansound.study import resolve

    profile = args.profile or "default"
    base = (lambda m: demo_config(m, profile)) if demo else (lambda m: config_for(m, profile))
    return resolve(spec, base, lambda c: apply_options(c, args))


def _each_config(study, change):
    """``study`` with ``change`` applied to every configuration's config (a deformation
    ablation's policy template too)."""
    return dataclasses.replace(
        study,
        configurations=tuple(
            dataclasses.replace(c, config=change(c.config)) for c in study.configurations
        ),
        ablations=tuple(
            dataclasses.replace(
                a, policy=dataclasses.replace(a.policy, config=change(a.policy.config))
            )
            for a in study.ablations
        ),
    )


def describe_plan(study, clips, test_folds) -> tuple[str, float]:
    """The configurations, feature stages and trainings, and the estimated local time."""
    from urbansound.study import (
        estimate_training_seconds,
        feature_groups,
        format_duration,
        set_name,
        training_rates,
    )

    per_fold = Counter(c.fold for c in clips)
    folds = test_folds or sorted(per_fold)
    groups = feature_groups(study)
    count = len(study.configurations) + len(study.ablations)
    lines = [f"study {study.name}: {count} configurations"]
    for c in study.configurations:
        t = c.config.train
        names = c.config.augment.all_deformations()
        shown = set_name(names) or c.augmentation
        lines.append(
            f"  {c.name:<32} {c.model}, augmentation {shown}, {t.epochs} epochs, "
            f"seed {t.seed}, validation {t.validation}"
        )
    for a in study.ablations:
        lines.append(
            f"  {a.policy.name:<32} {a.model}, the families chosen per class on the "
            f"validation folds of {', '.join(f for f, _ in a.families)} (after them)"
        )
    extra = f", and one per policy: {len(study.ablations)}" if study.ablations else ""
    lines.append(
        f"{len(groups)} features stage(s), each shared by the configurations that read "
        f"it: " + "; ".join(f"{g.slug} ({len(g.members)})" for g in groups) + extra
    )
    rates, source = training_rates()
    seconds = estimate_training_seconds(study, per_fold, folds, rates)
    trainings = count * len(folds)
    lines.append(
        f"{trainings} trainings ({count} configurations × "
        f"{len(folds)} test folds {','.join(map(str, folds))}); roughly "
        f"{format_duration(seconds)} of training on this machine at most (every epoch run; "
        f"rates: {source})"
    )
    return "\n".join(lines), seconds


def cmd_study(args) -> int:
    from urbansound.ingest import ensure_writable_dir
    from urbansound.outputs import claim_folder
    from urbansound.pipeline import preflight
    from urbansound.pipeline.commands.run import _report_failure, inputs_fingerprint
    from urbansound.pipeline.console import ConsoleLog
    from urbansound.pipeline.local_runner import (
        PipelineFailed,
        default_tracking_uri,
        local_tracking_uri,
        output_lock,
        run_local,
    )
    from urbansound.study import ingest_config

    # every check that can fail on the user's input runs before anything is written
    spec = _spec(args)
    _check_mode(args)
    if args.submit:
        return _submit(spec, args)
    if args.compile:
        return _compile(_cluster_study(spec, args), args)
    out = Path(args.out).resolve()
    demo = args.data is None
    study = _each_config(_resolve(spec, args, demo=demo), lambda c: with_deformation_cache(c, out))
    data = out / "demo-data" if demo else Path(args.data)
    # --tracking-uri defaults to "" here (a cluster's pods cannot reach the laptop's
    # $MLFLOW_TRACKING_URI); locally the same order as run's
    tracking_uri = local_tracking_uri(args.tracking_uri)
    validation = ingest_config(study).train.validation
    if not args.dry_run:
        preflight.check_locations(out, None if demo else data, tracking_uri)
        claim_folder(out, "study", inputs=[] if demo else [("--data", data)], check_only=True)
    beam_options = beam_args(args)
    preflight.check_beam_args(beam_options, local=True)
    if not demo:
        clips, rejections, _ = preflight.check_dataset(
            data, args.folds, validation, study.configurations[0].config.data
        )
        study = _each_config(study, lambda c: resolve_data(c, data, args, clips))
    elif args.dry_run:  # the demo data's shape without writing it: 4 folds × 80 clips
        from types import SimpleNamespace

        clips = [SimpleNamespace(fold=f) for f in (1, 2, 3, 4) for _ in range(80)]
    if args.dry_run:
        print(describe_plan(study, clips, args.folds)[0])
        return EXIT_OK
    preflight.check_tracking(tracking_uri)
    started = time.time()
    ensure_writable_dir(out)
    with output_lock(out) as lock_fd:
        # the lock just taken is the only entry a new folder has
        claim_folder(out, "study", inputs=[] if demo else [("--data", data)], legacy=_lock_only)
        if demo:
            if not (data / "metadata" / "UrbanSound8K.csv").exists():
                from urbansound.demo_data import write_demo_dataset

                print(f"writing the built-in demo dataset to {data}")
                write_demo_dataset(data)
            clips, rejections, _ = preflight.check_dataset(
                data, args.folds, validation, study.configurations[0].config.data
            )
            study = _each_config(study, lambda c: resolve_data(c, data, args, clips))
        print(
            f"dataset {data}: {len(clips)} clips listed, {len(rejections)} rows/files rejected "
            f"before decoding"
        )
        plan, seconds = describe_plan(study, clips, args.folds)
        print(plan)
        if seconds >= HOURS:
            print(
                "that is hours on this machine: a cluster trains the configurations × folds "
                "in parallel on GPU nodes (`urbansound study ... --submit --host URL --data "
                "PATH`, or `--compile study.yaml` to upload yourself; docs/study.md)"
            )
        fingerprint = ";".join(
            dict.fromkeys(
                inputs_fingerprint(clips, data, c.config, out) for c in study.configurations
            )
        )
        console = ConsoleLog(out / "study.log", echo_all=args.verbose)
        print(f"full log: {console.log_path}" + ("" if args.verbose else "  (-v shows it here)"))
        try:
            with console:
                result = run_local(
                    data,
                    config=ingest_config(study),
                    workdir=out,
                    test_folds=args.folds,
                    tracking_uri=tracking_uri,
                    strict=args.strict,
                    beam_args=beam_options,
                    dataset_fingerprint=fingerprint,
                    digest_cache=cache_file_for(out / CONTENT_DIGESTS, data),
                    cache=not args.no_cache,
                    lock_fd=lock_fd,
                    study_json=study.to_json(),
                )
        except PipelineFailed as exc:
            return _report_failure(exc, console, out, tracking_uri)
    print()
    _print_comparison(result.comparison_dir)
    for folder in result.ablation_dirs:
        _print_ablation(folder, data)
    print(f"\nfinished in {time.time() - started:.0f} s; outputs in {result.pipeline_root}")
    if result.parent_run_id:
        browse = "urbansound ui" + (
            "" if tracking_uri == default_tracking_uri(".") else f" --tracking-uri {tracking_uri}"
        )
        print(
            f"MLflow: study run {result.parent_run_id} in experiment 'urbansound' at "
            f"{tracking_uri}, a run per configuration under it\n  browse: {browse}\n"
            f"  compare: urbansound compare {result.parent_run_id}"
        )
    for warning in result.warnings:
        print(f"warning: {warning}")
    if console.log_error:
        print(f"warning: the full log is incomplete ({console.log_error})")
    return EXIT_OK


def _print_comparison(folder: str | None) -> None:
    from urbansound.comparison import BOXPLOT_FILE, HTML_FILE, TABLE_FILE

    if not folder or not Path(folder, TABLE_FILE).is_file():
        print("warning: the comparison's output was not found", file=sys.stderr)
        return
    print(Path(folder, TABLE_FILE).read_text().rstrip())
    from urbansound.ablation import TEST_FILE

    if Path(folder, TEST_FILE).is_file():  # a deformation ablation's policy on test
        print("\n" + Path(folder, TEST_FILE).read_text().rstrip())
    print(f"\nbox plot: {Path(folder, BOXPLOT_FILE)}")
    print(f"per-class accuracy: {Path(folder, HTML_FILE)}")


def _print_ablation(folder: str, data: Path) -> None:
    """A deformation ablation's table, heatmap and policy file, and how ``run`` uses it."""
    import json

    from urbansound.ablation import DELTAS_CSV, DELTAS_MD, HEATMAP_FILE, POLICY_FILE, RECORD_FILE

    record_path = Path(folder, RECORD_FILE)
    if not record_path.is_file():
        print(f"warning: the ablation's output was not found in {folder}", file=sys.stderr)
        return
    record = json.loads(record_path.read_text())
    print(
        f"\ndeformation ablation of {record['model']}: validation recall change per class "
        f"and family (rule: {record['rule']}):"
    )
    print(Path(folder, DELTAS_MD).read_text().rstrip())
    print(f"table: {Path(folder, DELTAS_CSV)}\nheatmap: {Path(folder, HEATMAP_FILE)}")
    policy = Path(folder, POLICY_FILE)
    print(
        f"policy: {policy}\n  train with it: urbansound run --data {data} --model "
        f"{record['model']} --set augment.per_class=@{policy}"
    )


def _cluster_study(spec, args):
    """The study as a cluster runs it: every model's full recipe (never the demo data's
    shorter one), the layout ``--layout`` names (the pods' dataset is not listed here),
    and no local folder for deformed copies."""
    study = _resolve(spec, args, demo=False)
    return _each_config(study, lambda c: resolve_data(c, Path(args.data or "."), args))


def _compile(study, args) -> int:
    from urbansound.components import DEFAULT_IMAGE
    from urbansound.pipeline.commands.cluster import cluster_options
    from urbansound.pipeline.kubeflow_runner import check_image
    from urbansound.pipeline.study import compile_study

    if args.image is not None:
        check_image(args.image)
    path = compile_study(
        args.compile, study, image=args.image or DEFAULT_IMAGE, cluster=cluster_options(args)
    )
    print(
        f"wrote {path}: study {study.name}, {len(study.configurations)} configurations; "
        f"its parameters: data_root (as the pods see it), test_folds, tracking_uri, ..."
    )
    return EXIT_OK


def _submit(spec, args) -> int:
    """``study SPEC --submit``: the study's pipeline compiled with ``submit``'s cluster
    options and submitted with its arguments, checked in the same order (nothing is sent
    before every argument and the spec passed)."""
    from urbansound.components import DEFAULT_IMAGE
    from urbansound.pipeline.commands.cluster import (
        check_cluster_args,
        cluster_options,
        compile_and_submit,
        submit_cache_key,
    )
    from urbansound.pipeline.study import compile_study
    from urbansound.study import ingest_config

    beam_options = check_cluster_args(args)
    study = _cluster_study(spec, args)
    fingerprint = submit_cache_key(args, ingest_config(study))
    cluster = cluster_options(args)
    result = compile_and_submit(
        args,
        lambda path: compile_study(path, study, image=args.image or DEFAULT_IMAGE, cluster=cluster),
        config=None,
        beam_options=beam_options,
        fingerprint=fingerprint,
        strict=args.strict,
        run_name=f"urbansound study {study.name}",
    )
    count = len(study.configurations) + len(study.ablations)
    print(
        f"submitted study {study.name} ({count} configurations × test folds, a GPU per "
        f"training) as run {result.run_id} to {args.host} (experiment {args.experiment!r})"
    )
    return EXIT_OK


_lock_only = legacy_only(files=(".urbansound-run.lock",))


COMMANDS = {"study": Command(add_parser, cmd_study)}
