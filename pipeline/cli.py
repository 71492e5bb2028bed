"""The ``urbansound`` command line: run the pipeline, or one stage, or compile/submit it.

Exit codes: 0 success; 2 bad input or configuration (one line says which file
and why); 1 internal error; 130 interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import textwrap
import time
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_OUT = "urbansound-output"


def _folds(text: str) -> list[int]:
    try:
        folds = sorted({int(f) for f in text.split(",") if f.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--folds takes comma-separated integers, not {text!r}")
    if not folds or any(not 1 <= f <= 10 for f in folds):
        raise argparse.ArgumentTypeError(f"folds must be in 1..10, got {text!r}")
    return folds


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _setting(text: str) -> tuple[str, object]:
    """``section.key=value`` for ``--set``; the value is read as JSON when it parses
    (numbers, true/false, null, lists), else taken as a string."""
    import json

    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise argparse.ArgumentTypeError(f"--set takes section.key=value (e.g. "
                                         f"train.weight_decay=0.001), not {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, not {text!r}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds takes two or more different seeds >= 0, "
                                         f"not {text!r}")
    return seeds


def _add_training_options(p, d) -> None:
    """The training options shared by ``run`` and ``submit``."""
    from urbansound.config import PROFILES
    from urbansound.models import MODELS, OPTIMIZERS

    p.add_argument("--model", help=f"one of {', '.join(MODELS)} (default {d.train.model}; "
                                   f"`urbansound models` lists them); the model brings its own "
                                   f"optimiser, schedule, epochs and protocol")
    p.add_argument("--profile", choices=PROFILES,
                   help="default: the model's own recipe; study: the study's protocol "
                        "(validation fold, early stopping after 15 epochs); quick: 2 epochs")
    p.add_argument("--epochs", type=_positive, help=f"epochs (default: the model's; "
                                                    f"{d.train.model}: {d.train.epochs})")
    p.add_argument("--patience", type=_positive,
                   help="early-stopping patience in epochs (with a validation fold)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="default: the model's")
    p.add_argument("--learning-rate", type=float, help="default: the model's")
    p.add_argument("--batch-size", type=_positive, help="default: the model's")
    p.add_argument("--seed", type=int, help=f"seed of validation-fold choice and training "
                                            f"(default {d.train.seed})")
    p.add_argument("--seeds", type=_seed_list, metavar="S1,S2,...",
                   help="train one model per seed for each fold and evaluate them as an "
                        "ensemble (mean of probabilities); each seed's own accuracy is reported "
                        "too")
    p.add_argument("--set", dest="settings", type=_setting, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="any configuration value, repeatable, e.g. --set train.weight_decay=0.001 "
                        "--set audio.pad_mode=zeros (see the README's configuration reference)")
    p.add_argument("--init-from", metavar="MODEL",
                   help="start training from a model you trained (fine-tuning): run: a "
                        "model.keras, a fold folder holding one, or an MLflow URI "
                        "(runs:/<run>/model, models:/<id>, models:/<name>@<alias>); submit: "
                        "only a model.keras path the pods can read (a --pvc mount, gs://), "
                        "not an MLflow URI. Layers are copied by name where shapes match, the "
                        "per-band statistics are the new data's, the softmax is new when the "
                        "class count differs; same --model as the source")
    p.add_argument("--freeze-features", action="store_true",
                   help="with --init-from: train only the last (softmax) layer")


def _resolve_init_from(config, args, out: Path | None):
    """``config`` with ``train.init_from`` the local ``model.keras`` that ``--init-from``
    names, checked against ``train.model``.  An MLflow URI (``run`` only: ``out`` given) is
    loaded once and saved, with its configuration, in ``<out>/init-model/`` so that the
    tasks need no MLflow; ``submit`` (``out`` None) passes a path on as the pods see it."""
    from pipeline.model_source import find_local_model, is_mlflow_uri, load_model
    from urbansound.config import ConfigError
    from urbansound.training import CONFIG_FILE, MODEL_FILE, check_init_model, check_init_source

    source = getattr(args, "init_from", None)
    if not source:
        return config
    if out is None:
        if is_mlflow_uri(source):
            raise ConfigError(f"{source}: submit takes --init-from as a model.keras path the "
                              f"pods can read, not an MLflow URI")
        if "://" in source or not os.path.exists(source):
            return config.override(**{"train.init_from": source})  # seen by the pods only
        path = find_local_model(source).resolve()
    elif is_mlflow_uri(source):
        loaded = load_model(source, tracking_uri=getattr(args, "tracking_uri", "") or "")
        folder = out / "init-model"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        loaded.model.save(path)
        # the copy's bytes differ at every save: what it holds keys the cache (_inputs_fingerprint)
        from urbansound.content_hash import model_digest

        (folder / INIT_DIGEST_FILE).write_text(model_digest(loaded.model) + "\n")
        if not loaded.config_source.startswith("defaults"):
            (folder / CONFIG_FILE).write_text(loaded.config.to_json())
        print(f"--init-from {source}: copied to {path}")
    else:
        path = find_local_model(source).resolve()
    config = config.override(**{"train.init_from": str(path)})
    check_init_source(path, config)
    # here, not in the first task: seconds, not minutes; TensorFlow's start-up to the log
    if getattr(args, "verbose", False):
        check_init_model(path, config)
    else:
        command = getattr(args, "command", None) or "run"
        with _libraries_to_log(chatter_log(command)):
            check_init_model(path, config)
    return config


INIT_DIGEST_FILE = "model.sha256"
"""Beside ``<out>/init-model/model.keras``: the digest of the model copied from MLflow."""
CONTENT_DIGESTS = Path("cache") / "content-digests"
"""Under ``--out``: the remembered content digests of the dataset's files (one JSON file
per dataset folder; :mod:`urbansound.content_hash`)."""


def _inputs_fingerprint(clips, data: Path, config, out: Path) -> str:
    """What keys kfp's cache and the run key besides the arguments: the dataset's listing
    and every clip's content (:func:`urbansound.dataset.dataset_fingerprint`), plus the
    content of the other files the tasks read, the noise recordings
    (``augment.noise_dir``) and the model ``--init-from`` starts from.  A changed file is
    a new run, never a stale result.  Digests are remembered in ``<out>/cache``, so an
    unchanged tree costs a stat per file; a progress line appears when hashing takes
    more than two seconds."""
    import hashlib

    from components.progress import progress_line
    from urbansound.content_hash import cache_file_for, content_digests, file_digest
    from urbansound.dataset import dataset_fingerprint

    folder = out / CONTENT_DIGESTS
    progress = progress_line("dataset fingerprint", interactive=sys.stdout.isatty(), after_s=2.0)
    parts = [dataset_fingerprint(clips, cache_file=cache_file_for(folder, data),
                                 progress=progress)]
    noise = config.augment.noise_dir
    if noise and "://" not in noise and Path(noise).is_dir():
        paths = sorted(str(Path(root) / name) for root, _, files in os.walk(noise)
                       for name in files)
        digests, _ = content_digests(paths, cache_file=cache_file_for(folder, noise))
        listing = "".join(f"{os.path.relpath(p, noise)}\t{digests[p]}\n" for p in paths)
        parts.append("noise=" + hashlib.sha256(listing.encode()).hexdigest()[:16])
    init = config.train.init_from
    if init and "://" not in init and Path(init).is_file():
        beside = Path(init).parent / INIT_DIGEST_FILE
        copied = Path(init).parent == out / "init-model" and beside.is_file()
        parts.append("init=" + (beside.read_text().strip() if copied
                                else file_digest(init))[:16])
    return ";".join(parts)


def _add_data_options(p) -> None:
    """Which layout the dataset is in and how its folds are made (run, ingest, submit)."""
    from urbansound.config import DEFAULT_GROUP_PATTERN, LAYOUTS

    p.add_argument("--layout", choices=LAYOUTS[1:],
                   help="the dataset's layout (default: told from the folder): urbansound8k "
                        "(metadata/UrbanSound8K.csv + audio/fold*/), esc50 (meta/esc50.csv + "
                        "audio/, 5 s clips), folders (ROOT/<class>/<file>), csv (a CSV "
                        "path,label,fold[,group][,salience])")
    p.add_argument("--folds-from", metavar="CSV",
                   help="folders layout: the fold of each file, a CSV with columns file,fold "
                        "(default: a seeded split into data.n_folds=5 folds grouped by recording)")
    p.add_argument("--group-pattern", metavar="REGEX",
                   help=f"folders layout: the recording of a file, a regular expression on its "
                        f"name's stem whose first group is the key; one recording never lands in "
                        f"two folds (default {DEFAULT_GROUP_PATTERN!r}: the stem without its "
                        f"trailing -N/_N parts, 100032-3-0-0.wav -> 100032)")


def build_parser() -> argparse.ArgumentParser:
    from urbansound.config import Config

    d = Config()
    parser = argparse.ArgumentParser(
        prog="urbansound",
        description="UrbanSound8K classification as a Kubeflow pipeline: ingest → log-mel "
                    "features (Apache Beam) → one Keras CNN per official test fold → "
                    "evaluation, tracked in MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              urbansound run                                  # built-in demo data, a few minutes
              urbansound run --data ~/UrbanSound8K --folds 1,2 --epochs 5
              urbansound compile -o pipeline.yaml             # for a Kubeflow cluster
              urbansound ui                                   # MLflow UI on 127.0.0.1:5000
            """))
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show INFO logs, and TensorFlow's and MLflow's start-up messages "
                             "(predict, export, listen, register and train-final otherwise "
                             "write them to ~/.local/state/urbansound/logs/COMMAND.log)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the whole pipeline locally (kfp local runner)",
        description="Run ingest → features → train (one model per test fold) → evaluate with "
                    "kfp's local runner, log to MLflow, print per-fold accuracies. Without "
                    "--data, generates the built-in synthetic dataset and uses a shorter "
                    "schedule (see urbansound.config.demo_config).")
    run.add_argument("--data", metavar="DIR",
                     help="the dataset: an UrbanSound8K root (audio/fold*/, "
                          "metadata/UrbanSound8K.csv), ESC-50, a folder per class or a CSV "
                          "(--layout); "
                          "default: the built-in demo data")
    _add_data_options(run)
    run.add_argument("--folds", type=_folds, default=[],
                     help="test folds to evaluate, e.g. 1,2 (default: every fold present); each "
                          "trains on all other folds present (minus the validation fold drawn "
                          "with the seed, for models that use one)")
    _add_training_options(run, d)
    run.add_argument("--augment", metavar="NAMES",
                     help="muda deformations of training clips: comma-separated names, or a "
                          "set: 'study' (time_stretch_1.23, pitch_shift_2, drc_film_standard, "
                          "background_noise_workers) or 'salamon-bello' (the dataset authors' "
                          "20); per-class choice and noise folder with --set augment.per_class=... "
                          "/ augment.noise_dir=DIR")
    run.add_argument("--pad-mode", choices=["loop", "zeros"],
                     help=f"how clips shorter than 3 s are filled (default {d.audio.pad_mode})")
    run.add_argument("--strict", action="store_true",
                     help="fail before training if any row or file is rejected")
    run.add_argument("--no-cache", action="store_true",
                     help="run every task again and open a new MLflow run (by default a rerun "
                          "of the same command resumes: finished tasks come from kfp's cache)")
    run.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                     help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                          "sqlite:///./mlflow.db with artifacts in ./mlartifacts)")
    run.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                     help=f"pipeline outputs (and generated demo data) (default ./{DEFAULT_OUT})")
    run.add_argument("--beam-arg", action="append", default=[], metavar="OPT",
                     help="Beam pipeline option for the features stage, repeatable "
                          "(default: --runner=FnApiRunner, one worker process per core)")
    _add_beam_runner_options(run)

    demo = sub.add_parser("demo-data", help="write the built-in synthetic dataset",
                          description="Write a deterministic synthetic dataset in the "
                                      "UrbanSound8K layout (10 classes, mixed formats).")
    demo.add_argument("dir", help="destination folder")
    demo.add_argument("--folds", type=_folds, default=[1, 2, 3, 4], help="default 1,2,3,4")
    demo.add_argument("--clips-per-class", type=_positive, default=8,
                      help="clips per class per fold (default 8)")
    demo.add_argument("--seed", type=int, default=0)

    ing = sub.add_parser("ingest", help="run the ingest stage alone",
                         description="Check the CSV against the audio and decode every clip "
                                     "into fold<k>.tfrecord files plus report.json.")
    ing.add_argument("--data", required=True, metavar="DIR",
                     help="the dataset: UrbanSound8K, ESC-50, a folder per class or a CSV "
                          "(--layout)")
    ing.add_argument("--out", required=True, metavar="DIR", help="output folder")
    ing.add_argument("--strict", action="store_true", help="exit 2 if anything is rejected")
    _add_data_options(ing)

    feat = sub.add_parser("features", help="run the features stage alone (Beam)",
                          description="Compute the model's input (log-mels, or 16 kHz "
                                      "waveforms for a waveform model such as conv1d) with "
                                      "Apache Beam. --data is an ingest output folder, or a "
                                      "dataset root (then it is ingested into OUT/waveforms "
                                      "first).")
    feat.add_argument("--data", required=True, metavar="DIR")
    feat.add_argument("--out", required=True, metavar="DIR")
    feat.add_argument("--model", help="the model the features are for (its input kind); "
                                      "default: the default model")
    feat.add_argument("--set", dest="settings", type=_setting, action="append", default=[],
                      metavar="KEY=VALUE", help="any configuration value, as for run")
    feat.add_argument("--augment", metavar="NAMES", help="as for run")
    feat.add_argument("--beam-arg", action="append", default=[], metavar="OPT")
    _add_beam_runner_options(feat)

    ui = sub.add_parser("ui", help="serve the MLflow UI for the local tracking store",
                        description="Start `mlflow ui` on the tracking store `urbansound run` "
                                    "writes (default ./mlflow.db). Listens on 127.0.0.1 only, "
                                    "unless --host says otherwise.")
    ui.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                    help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    ui.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default 127.0.0.1: this machine only; "
                         "0.0.0.0: every interface, for other machines; the UI has no "
                         "login, see the README)")
    ui.add_argument("--port", type=int, default=5000, help="default 5000")
    ui.add_argument("--allowed-hosts", metavar="H1,H2",
                    help="Host headers MLflow answers (its --allowed-hosts; wildcards like "
                         "192.168.*); default for a --host other than loopback: this "
                         "machine's names and addresses as printed, and localhost")
    ui.add_argument("--cors-allowed-origins", metavar="O1,O2",
                    help="origins whose pages may change runs (MLflow's "
                         "--cors-allowed-origins); default for a --host other than loopback: "
                         "http://ADDRESS:PORT of each printed address")

    models = sub.add_parser("models", help="list the models with their parameters and recipe",
                            description="Every model --model accepts: trainable parameters on "
                                        "128×128 log-mels, input, optimiser, epochs, protocol.")
    models.add_argument("--json", action="store_true", help="one JSON object per model")

    cmp = sub.add_parser(
        "compare", help="compare pipeline runs: the study's Table 1 and a box plot",
        description="Read pipeline runs from MLflow and print mean / median / std of their "
                    "test-fold accuracies, one row per run (model × augmentation), next to "
                    "the study's figures; write the box plot of fold accuracies. Both are "
                    "logged to MLflow as a run tagged urbansound.kind=comparison.")
    cmp.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                     help="pipeline (parent) run ids; default: every run of --experiment")
    cmp.add_argument("--experiment", default="urbansound", help="default urbansound")
    cmp.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                     help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    cmp.add_argument("--out", default="urbansound-compare", metavar="DIR",
                     help="where the table and box plot are written (default ./urbansound-compare)")
    cmp.add_argument("--no-log", action="store_true", help="do not log the comparison to MLflow")
    _add_predict_parser(sub)
    _add_export_parser(sub)
    _add_register_parser(sub)
    _add_train_final_parser(sub, d)
    _add_listen_parser(sub)

    comp = sub.add_parser("compile", help="write the KFP pipeline YAML for a cluster")
    comp.add_argument("-o", "--output", default="pipeline.yaml", help="default pipeline.yaml")
    comp.add_argument("--image", help="component image (default urbansound:latest)")
    comp.add_argument("--pvc", action="append", type=_pvc, default=[], metavar="NAME:/MOUNT/PATH",
                      help="mount this PersistentVolumeClaim in every task (repeatable), as "
                           "submit --pvc does, for a YAML you upload yourself")

    sb = sub.add_parser("submit", help="compile and submit the pipeline to a Kubeflow cluster")
    sb.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    sb.add_argument("--data", required=True,
                    help="dataset root as the pods see it (a mounted volume or gs:// path)")
    sb.add_argument("--experiment", default="urbansound")
    sb.add_argument("--pipeline-root", help="artifact root URI, e.g. gs://bucket/urbansound")
    sb.add_argument("--image", help="component image (default urbansound:latest)")
    sb.add_argument("--folds", type=_folds, default=[])
    _add_data_options(sb)
    _add_training_options(sb, d)
    sb.add_argument("--tracking-uri", default="", help="MLflow server the pods can reach")
    sb.add_argument("--beam-arg", action="append", default=[], metavar="OPT")
    _add_beam_runner_options(sb, checked=False)
    sb.add_argument("--pvc", action="append", type=_pvc, default=[], metavar="NAME:/MOUNT/PATH",
                    help="mount this PersistentVolumeClaim in every task (repeatable); --data "
                         "then names a path under the mount, e.g. --pvc us8k:/mnt/data "
                         "--data /mnt/data/UrbanSound8K")
    sb.add_argument("--data-version", default="", metavar="STR",
                    help="the dataset's version (a date, a commit, a checksum): kfp's cache "
                         "serves ingest and features only for the same version. When --data "
                         "is also readable here, its fingerprint (listing and every clip's "
                         "content; digests remembered in ~/.cache/urbansound) is used as well")
    sb.add_argument("--no-cache", action="store_true", help="run every task again")
    return parser


def _config(args, *, demo: bool):
    from urbansound.augment import DEFORMATION_SETS
    from urbansound.config import config_for, demo_config
    from urbansound.models import DEFAULT_MODEL

    model = getattr(args, "model", None) or DEFAULT_MODEL
    profile = getattr(args, "profile", None) or "default"
    base = demo_config(model, profile) if demo else config_for(model, profile)
    augment = getattr(args, "augment", None)
    deformations = None
    if augment:
        deformations = DEFORMATION_SETS.get(augment) or tuple(
            a.strip() for a in augment.split(",") if a.strip())
    config = base.override(**dict(getattr(args, "settings", None) or []))
    return config.override(**{
        "train.epochs": getattr(args, "epochs", None),
        "train.patience": getattr(args, "patience", None),
        "train.optimizer": getattr(args, "optimizer", None),
        "train.learning_rate": getattr(args, "learning_rate", None),
        "train.batch_size": getattr(args, "batch_size", None),
        "train.seed": getattr(args, "seed", None),
        "train.seeds": getattr(args, "seeds", None),
        # the source as given; _resolve_init_from makes it a local model.keras
        "train.init_from": getattr(args, "init_from", None),
        "train.freeze_features": True if getattr(args, "freeze_features", False) else None,
        "audio.pad_mode": getattr(args, "pad_mode", None),
        "augment.deformations": deformations,
        "data.layout": getattr(args, "layout", None),
        "data.folds_from": (os.path.abspath(args.folds_from)
                            if getattr(args, "folds_from", None) else None),
        "data.group_pattern": getattr(args, "group_pattern", None),
    })


def _with_deformation_cache(config, out: Path):
    """``config`` keeping deformed copies in ``<out>/cache/deformations`` (a rerun reuses
    them) when it deforms clips and names no cache of its own."""
    if config.augment.cache_dir or not config.augment.all_deformations():
        return config
    return config.override(**{"augment.cache_dir": str(out / "cache" / "deformations")})


def _resolve_data(config, data: Path, args, clips=None):
    """``config`` with the dataset's layout (detected when not named), the settings that
    layout brings (ESC-50: 5 s clips) unless ``--set`` gave them, and, when the dataset
    was listed (``clips``), its class names in label order: every task then trains,
    evaluates and names the same classes."""
    from urbansound.config import CLASS_NAMES
    from urbansound.layouts import apply_layout, detect_layout

    layout = config.data.layout
    if layout == "auto" and clips is not None:
        layout = detect_layout(data)
    if layout != "auto":
        given = {key for key, _ in getattr(args, "settings", None) or []}
        config = apply_layout(config, layout, given)
    if clips is not None and not config.data.class_names:
        names = CLASS_NAMES if layout == "urbansound8k" else tuple(
            name for _, name in sorted({(c.class_id, c.class_name) for c in clips}))
        config = config.override(**{"data.class_names": names})
    return config


def cmd_run(args) -> int:
    from pipeline import preflight
    from pipeline.console import ConsoleLog
    from pipeline.local_runner import PipelineFailed, default_tracking_uri, output_lock, run_local
    from urbansound.evaluation import format_summary
    from urbansound.ingest import ensure_writable_dir
    from urbansound.outputs import claim_folder

    # Every check that can fail on the user's input runs before anything is written
    # or any task starts, so a mistake costs seconds and leaves no trace.
    out = Path(args.out).resolve()
    demo = args.data is None
    config = _with_deformation_cache(_config(args, demo=demo), out)
    data = out / "demo-data" if demo else Path(args.data)
    tracking_uri = args.tracking_uri or default_tracking_uri(".")
    preflight.check_locations(out, None if demo else data, tracking_uri)
    claim_folder(out, "run", inputs=[] if demo else [("--data", data)], legacy=_legacy_run_out,
                 check_only=True)  # a folder of someone else's: refused before any write
    beam_args = _beam_args(args)
    preflight.check_beam_args(beam_args, local=True)
    if not demo:
        clips, rejections, _ = preflight.check_dataset(data, args.folds,
                                                        config.train.validation, config.data)
        config = _resolve_data(config, data, args, clips)
    preflight.check_tracking(tracking_uri)
    started = time.time()
    ensure_writable_dir(out)  # fail in a second, naming the path, not inside a task
    config = _resolve_init_from(config, args, out)
    with output_lock(out) as lock_fd:
        # marked as ours only by the run that holds it (checked above, before any write)
        claim_folder(out, "run", inputs=[] if demo else [("--data", data)],
                     legacy=_legacy_run_out)
        if demo:
            if not (data / "metadata" / "UrbanSound8K.csv").exists():
                from urbansound.demo_data import write_demo_dataset

                print(f"writing the built-in demo dataset to {data}")
                write_demo_dataset(data)
            clips, rejections, _ = preflight.check_dataset(data, args.folds,
                                                        config.train.validation, config.data)
            config = _resolve_data(config, data, args, clips)
        print(f"dataset {data}: {len(clips)} clips listed, {len(rejections)} rows/files rejected "
              f"before decoding")
        fingerprint = _inputs_fingerprint(clips, data, config, out)
        console = ConsoleLog(out / "run.log", echo_all=args.verbose)
        print(f"full log: {console.log_path}" + ("" if args.verbose else "  (-v shows it here)"))
        try:
            with console:
                result = run_local(data, config=config, workdir=out, test_folds=args.folds,
                                   tracking_uri=tracking_uri, strict=args.strict,
                                   beam_args=beam_args,
                                   dataset_fingerprint=fingerprint,
                                   cache=not args.no_cache, lock_fd=lock_fd)
        except PipelineFailed as exc:
            return _report_failure(exc, console, out, tracking_uri)
    print()
    if result.summary:
        print(format_summary(result.summary))
        print(f"summary: {result.summary_path}")
    print(f"\nfinished in {time.time() - started:.0f} s; outputs in {result.pipeline_root}")
    if result.parent_run_id:
        browse = "urbansound ui" + ("" if tracking_uri == default_tracking_uri(".")
                                    else f" --tracking-uri {tracking_uri}")
        print(f"MLflow: parent run {result.parent_run_id} in experiment 'urbansound' at "
              f"{tracking_uri}\n  browse: {browse}")
    for warning in (result.summary or {}).get("warnings", []) + result.warnings:
        print(f"warning: {warning}")
    if console.log_error:
        print(f"warning: the full log is incomplete ({console.log_error})")
    ingested = (result.summary or {}).get("ingest")
    if ingested:
        print(f"{ingested['accepted']} clips accepted, {ingested['rejected']} rejected "
              f"(report: {ingested['report']})")
    return EXIT_OK


def _legacy_only(files=(), folders=()):
    """A ``legacy`` test for :func:`urbansound.outputs.claim_folder`: a folder holding
    only the ``files`` and ``folders`` named was written by a version of this tool without
    markers (its files are recorded as ours); None for anything else."""
    def legacy(folder: Path) -> list[str] | None:
        found = list(folder.iterdir())
        if all(p.name in (folders if p.is_dir() and not p.is_symlink() else files)
               for p in found):
            return sorted(p.name for p in found if p.name in files)
        return None
    return legacy


_legacy_run_out = _legacy_only(files=("run.log", ".urbansound-run.lock"),
                               folders=("pipeline_root", "demo-data", "init-model", "cache"))


def _report_failure(exc, console, out: Path, tracking_uri: str) -> int:
    """One line and exit code 2 when the user can fix it (bad input, a full disk);
    the log's tail and exit code 1 otherwise.  What happened to the MLflow run is
    read from the store, never assumed."""
    from components import tracking
    from components.errors import storage_error
    from pipeline import preflight

    mlflow_note = "no MLflow run was created"
    try:
        if not exc.tracking_reachable:
            raise ConnectionError("unreachable")
        found = tracking.parent_run_status(tracking_uri, exc.run_key)
        if found:
            mlflow_note = f"MLflow parent run {found[0]} is {found[1]}"
    except Exception as error:  # noqa: BLE001 - the store itself may be the problem
        mlflow_note = f"MLflow store {tracking_uri} could not be read ({type(error).__name__})"
    where = f"full log: {console.log_path}; outputs so far: {out / 'pipeline_root'}; {mlflow_note}"
    user_error = console.user_error()
    if not (user_error and preflight.STORAGE_TEXT.search(user_error)):
        full = preflight.full_filesystem([out, tracking.store_folder(tracking_uri)])
        line = console.storage_error()
        if line:  # e.g. a traceback from a library that wrote nothing else
            full = storage_error(Exception(line), default_path=(full or str(out)).split(": ")[0])
        if full and (line or not user_error):
            user_error = (f"urbansound run: error: cannot write {full}; free some space and "
                          f"run the same command again (it resumes)")
    if user_error:  # a task stopped on bad input or a full disk: one line, exit code 2
        print(where)
        print(user_error, file=sys.stderr)
        return EXIT_USER
    print(console.tail(25), file=sys.stderr)
    print(f"\nurbansound run: the pipeline failed: {exc}\n  {where}", file=sys.stderr)
    return EXIT_INTERNAL


def cmd_demo_data(args) -> int:
    from urbansound.demo_data import write_demo_dataset
    from urbansound.outputs import claim_folder

    # a folder of someone else's (a real dataset's CSV!) is never written over
    claim_folder(args.dir, "demo-data", what="DIR")

    rows = write_demo_dataset(args.dir, folds=tuple(args.folds),
                              clips_per_class=args.clips_per_class, seed=args.seed)
    print(f"wrote {len(rows)} clips to {args.dir}")
    return EXIT_OK


def cmd_ingest(args) -> int:
    from urbansound.ingest import ingest
    from urbansound.layouts import detect_layout

    config = _config(args, demo=False)
    if config.data.layout == "auto":
        config = config.override(**{"data.layout": detect_layout(args.data)})
    result = ingest(args.data, args.out, config=config, strict=args.strict, progress=True)
    split = result.split
    if split.get("method") == "grouped":
        print(f"{result.layout}: {len(result.class_names)} classes; folds made by a grouped split "
              f"(seed {split['seed']}): {split['groups']} recording groups, per fold "
              f"{split['groups_per_fold']}")
    else:
        print(f"{result.layout}: {len(result.class_names)} classes")
    for r in result.rejections[:20]:
        print(f"  rejected {r.file}: {r.reason}")
    if len(result.rejections) > 20:
        print(f"  ... {len(result.rejections) - 20} more in {result.report_path}")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    print(result.summary_line())
    return EXIT_OK


def _add_beam_runner_options(p, *, checked: bool = True) -> None:
    p.add_argument("--beam-runner", choices=["local", "dask"],
                   help="where the features stage runs: 'local' (default: Beam's FnApiRunner, "
                        "one process per core) or 'dask' (Beam's Dask runner on the "
                        "dask.distributed cluster at --dask-address)")
    p.add_argument("--dask-address", metavar="tcp://HOST:PORT",
                   help="the scheduler of your Dask cluster (with --beam-runner dask); "
                        + ("checked before anything starts" if checked else
                           "as the pods reach it, e.g. tcp://dask-scheduler.dask:8786 (not "
                           "checked from here)"))


def _beam_args(args, *, check_scheduler: bool = True) -> list[str]:
    """The features stage's Beam options: ``--beam-runner``/``--dask-address`` mapped to
    Beam's (a Dask scheduler is checked to answer, unless ``check_scheduler`` is False:
    submit names an address inside the cluster), then any ``--beam-arg``."""
    from pipeline import preflight
    from urbansound.config import ConfigError

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
        raise ConfigError("--beam-runner dask needs --dask-address tcp://HOST:PORT (the "
                          "scheduler of your Dask cluster)")
    named = [a for a in args.beam_arg if a.startswith("--runner")]
    if named:
        raise ConfigError(f"--beam-runner dask and --beam-arg={named[0]} name two runners; "
                          f"give one")
    if check_scheduler:
        workers = preflight.check_dask_address(args.dask_address)
        print(f"Dask scheduler {args.dask_address}: {workers} workers"
              + ("; the stage waits until one joins" if workers == 0 else ""))
    else:
        preflight.parse_dask_address(args.dask_address)
    return dask_beam_args(args.dask_address) + list(args.beam_arg)


@contextlib.contextmanager
def _chatter_to(log_path: Path, verbose: bool):
    """Send file descriptors 1 and 2 (this process, Beam's worker processes, TensorFlow's
    C++ logging) to ``log_path`` unless ``verbose``; yields a function that prints to the
    terminal (a line that rewrites itself when it ends with ``\r``)."""
    def say_to(stream):
        def say(text: str) -> None:
            stream.write(text if text.endswith("\r") else text + "\n")
            stream.flush()
        return say

    if verbose:
        yield say_to(sys.stdout)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[0]), "w")
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield say_to(terminal)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


CHATTER_LOG = "{command}.log"
"""The file name, in :func:`chatter_log_dir`, where ``predict``, ``export``, ``listen``,
``register`` and ``train-final`` put TensorFlow's, absl's, Beam's and MLflow's start-up
output unless ``-v``."""

CHATTER_LOG_BYTES = 5 * 2**20
"""A log past this size is moved to ``<name>.1`` (replacing the older one) when opened."""


def chatter_log_dir() -> Path:
    """``$XDG_STATE_HOME/urbansound/logs`` (default ``~/.local/state/urbansound/logs``):
    a per-user folder, never the working folder, which holds the user's own files."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".local", "state")
    return Path(state) / "urbansound" / "logs"


def chatter_log(command: str) -> Path:
    return chatter_log_dir() / CHATTER_LOG.format(command=command)


def _stream_on_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: a capture
        return False


_TERMINAL_STDERR: list = []
"""The terminal's stderr while :func:`_libraries_to_log` holds fd 2 (innermost last)."""


def _stderr():
    """Where a command's own error and status lines go: the terminal's stderr, also while
    :func:`_libraries_to_log` sends fd 2 (and ``sys.stderr``) to the log."""
    return _TERMINAL_STDERR[-1] if _TERMINAL_STDERR else sys.stderr


@contextlib.contextmanager
def _libraries_to_log(log_path: Path, command: str = ""):
    """While inside: file descriptors 1 and 2 go to ``log_path``, and so does
    ``sys.stderr`` (TensorFlow's C++ logging, absl, MLflow's logger and progress bars,
    Python warnings, Beam's workers); ``sys.stdout`` writes to the terminal through a copy
    of the original descriptor, line by line (``listen`` streams), and :func:`_stderr` is
    the terminal's stderr.  A ``sys.stdout``/``sys.stderr`` that is not fd 1/2 (a test's
    capture) is left as it is."""
    import io
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if log_path.exists() and log_path.stat().st_size > CHATTER_LOG_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
        log = open(log_path, "ab", buffering=0)
    except OSError:  # an unwritable home: the command must still run
        log = open(Path(tempfile.gettempdir()) / f"urbansound-{log_path.name}", "ab",
                   buffering=0)
    log.write(f"\n==== urbansound {command or log_path.stem}, pid {os.getpid()}, "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
    saved = os.dup(1), os.dup(2)

    def terminal(stream, fd: int):
        return io.TextIOWrapper(io.FileIO(os.dup(fd), "w"), encoding=stream.encoding,
                                errors=stream.errors, line_buffering=True, write_through=True)

    original = sys.stdout
    if _stream_on_fd(sys.stdout, 1):
        sys.stdout = terminal(original, saved[0])
    _TERMINAL_STDERR.append(terminal(sys.stderr, saved[1]) if _stream_on_fd(sys.stderr, 2)
                            else sys.stderr)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        made = [stream for stream in (sys.stdout, _TERMINAL_STDERR.pop())
                if isinstance(stream, io.TextIOWrapper) and stream is not original
                and stream is not sys.stderr]
        sys.stdout = original
        for stream in made:
            stream.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        log.close()


def _quiet_libraries(command: str):
    """Decorator of a command that loads TensorFlow or MLflow: their start-up output goes
    to :data:`CHATTER_LOG` unless ``-v`` (see :func:`_libraries_to_log`)."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def run(args) -> int:
            if args.verbose:
                return fn(args)
            log_path = chatter_log(command)
            with _libraries_to_log(log_path, command):
                return fn(args)
        return run
    return wrap


def cmd_features(args) -> int:
    remote = "://" in args.out
    out = args.out if remote else Path(args.out).resolve()
    config = _config(args, demo=False)
    if not config.augment.cache_dir and config.augment.all_deformations():
        config = (config.override(**{"augment.cache_dir": f"{args.out.rstrip('/')}/cache/"
                                                          f"deformations"})
                  if remote else _with_deformation_cache(config, out))
    beam_args = _beam_args(args)
    source = args.data
    if not remote:  # refused before the log or anything else is written there
        from urbansound.beam_features import LOG_FILE, claim_features_folder
        from urbansound.outputs import record

        claim_features_folder(out, source)
        record(out, [LOG_FILE])
    log_path = Path("urbansound-features.log").resolve() if remote else out / "features.log"
    if not args.verbose:
        print(f"full log: {log_path}  (-v shows it here)")
    with _chatter_to(log_path, args.verbose) as say:
        from components.progress import progress_line
        from urbansound.beam_features import default_beam_args, run_features
        from urbansound.ingest import MANIFEST, ingest

        interactive = sys.stdout.isatty()

        if "://" not in source and not (Path(source) / MANIFEST).exists():
            waveforms = Path(args.out) / "waveforms"
            started = time.time()
            from urbansound.content_hash import cache_file_for

            result = ingest(source, waveforms, config=config,
                            progress=progress_line("ingest", say=say, interactive=interactive),
                            digest_cache=cache_file_for(Path(args.out) / CONTENT_DIGESTS, source))
            say(f"{result.summary_line()} ({time.time() - started:.1f} s)")
            source = str(waveforms)
        started = time.time()
        manifest = run_features(source, str(out), config=config,
                                beam_args=beam_args or default_beam_args(),
                                progress=progress_line("features", say=say,
                                                       interactive=interactive))
        for warning in manifest["warnings"]:
            say(f"warning: {warning}")
        total = sum(sum(v.values()) for v in manifest["folds"].values())
        say(f"{total} {manifest['input_kind']} examples in {args.out} "
            f"({time.time() - started:.1f} s, {sum(manifest['shards'].values())} shards, "
            f"{manifest['workers']} worker processes): {manifest['folds']}")
    return EXIT_OK


def ui_command(tracking_uri: str, host: str, port: int, *, allowed_hosts: str = "",
               cors_origins: str = "") -> list[str]:
    """The ``mlflow ui`` command line for a store (artifacts served from beside a sqlite
    db); ``allowed_hosts`` / ``cors_origins`` (comma-separated) go to MLflow's
    ``--allowed-hosts`` / ``--cors-allowed-origins`` when given."""
    from components.tracking import default_artifact_location

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
               "--host", host, "--port", str(port)]
    artifacts = default_artifact_location(tracking_uri)
    if artifacts:
        command += ["--default-artifact-root", artifacts]
    if allowed_hosts:
        command += ["--allowed-hosts", allowed_hosts]
    if cors_origins:
        command += ["--cors-allowed-origins", cors_origins]
    return command


def cmd_ui(args) -> int:
    """Serve the UI; bound beyond loopback, warn that it has no login and print the
    addresses that reach it (not 0.0.0.0), which MLflow is told to allow."""
    import subprocess

    from pipeline import ui_network
    from pipeline.local_runner import default_tracking_uri
    from urbansound.config import ConfigError

    uri = args.tracking_uri or default_tracking_uri(".")
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be 1..65535")
    allowed, origins = args.allowed_hosts or "", args.cors_allowed_origins or ""
    if ui_network.is_loopback(args.host):
        addresses = [args.host]
    else:
        addresses = ui_network.reachable_addresses(args.host)
        allowed = allowed or ",".join(ui_network.allowed_hosts(addresses, args.port))
        origins = origins or ",".join(ui_network.cors_origins(addresses, args.port))
    first = ui_network.url_host(addresses[0])
    page = ui_address(uri, first, args.port)
    # before mlflow's own output, also when stdout is a pipe
    print(f"MLflow UI for {uri}: {page}  (Ctrl-C stops it)", flush=True)
    if not ui_network.is_loopback(args.host):
        root = f"http://{first}:{args.port}"
        for other in addresses[1:]:
            other_root = f"http://{ui_network.url_host(other)}:{args.port}"
            print(f"  also: {page.replace(root, other_root, 1)}")
        print(f"  MLflow allows Host headers {allowed} and origins {origins or 'localhost'} "
              f"(--allowed-hosts, --cors-allowed-origins)", flush=True)
        print(ui_network.NO_AUTH_WARNING.format(uri=uri), file=sys.stderr, flush=True)
    return subprocess.call(ui_command(uri, args.host, args.port, allowed_hosts=allowed,
                                      cors_origins=origins))


def ui_address(tracking_uri: str, host: str, port: int) -> str:
    """The page to open: the urbansound experiment's runs table in MLflow 3's model-training
    view (``workflowType=machine_learning``; without it the UI opens on its GenAI overview).
    The server's root where the store holds no urbansound experiment yet."""
    from components.tracking import EXPERIMENT, sqlite_path

    root = f"http://{host}:{port}"
    db = sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        return root  # do not create an empty store just to look
    try:
        from mlflow.tracking import MlflowClient

        found = MlflowClient(tracking_uri).get_experiment_by_name(EXPERIMENT)
    except Exception:  # noqa: BLE001 - the server will say what is wrong with the store
        return root
    if found is None:
        return root
    from components.runs import VIEW_KEY, VIEW_TAGS

    try:  # a store written before the view tags: give it them (runs add them too)
        for key, value in VIEW_TAGS.items():
            if found.tags.get(key) != value:
                MlflowClient(tracking_uri).set_experiment_tag(found.experiment_id, key, value)
    except Exception:  # noqa: BLE001 - a read-only store still opens, without the columns
        pass

    # the accuracy columns come from the experiment's shared view state (components.runs)
    return (f"{root}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={VIEW_KEY}")


def cmd_compile(args) -> int:
    from components import DEFAULT_IMAGE
    from pipeline.kubeflow_runner import check_image, compile_pipeline

    if args.image is not None:
        check_image(args.image)
    from urbansound.outputs import check_outputs

    # an earlier compile's YAML may be replaced; any other file (a README, a config) not
    check_outputs([("the pipeline YAML", args.output)], ours=_is_pipeline_yaml,
                  command="urbansound compile", hint="choose another -o")
    path = compile_pipeline(args.output, image=args.image or DEFAULT_IMAGE, pvcs=args.pvc)
    mounts = "".join(f", mounts {name} at {mount}" for name, mount in args.pvc)
    print(f"wrote {path}{mounts}")
    return EXIT_OK


def _is_pipeline_yaml(path: Path) -> bool:
    """True for a KFP IR YAML (what compile writes): ``pipelineInfo`` and ``deploymentSpec``
    in its first MiB."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError:
        return False
    return b"pipelineInfo:" in head and b"deploymentSpec:" in head


def _pvc(text: str) -> tuple[str, str]:
    from pipeline.kubeflow_runner import parse_pvc

    try:
        return parse_pvc(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _submit_cache_key(args, config) -> str:
    """``--data-version`` and, when ``--data`` is readable here, its fingerprint (listing
    and every clip's content, as ``run``'s; the pods' copy is assumed to be the same;
    digests remembered in :func:`urbansound.content_hash.user_cache_dir`); a warning when
    neither is known."""
    from components.progress import progress_line
    from pipeline import preflight
    from pipeline.kubeflow_runner import cache_key
    from urbansound.content_hash import cache_file_for, user_cache_dir
    from urbansound.dataset import dataset_fingerprint

    local = ""
    if "://" not in args.data and Path(args.data).exists():
        clips, _, _ = preflight.check_dataset(Path(args.data), args.folds,
                                              config.train.validation, config.data)
        local = dataset_fingerprint(
            clips, cache_file=cache_file_for(user_cache_dir(), args.data),
            progress=progress_line("dataset fingerprint", interactive=sys.stdout.isatty(),
                                   after_s=2.0))
        print(f"dataset {args.data} is readable here: {len(clips)} clips, fingerprint {local}")
    key = cache_key(data_version=args.data_version, local_fingerprint=local)
    if not key and not args.no_cache:
        print(f"warning: {args.data} is not readable here and no --data-version was given: "
              f"kfp's cache cannot tell a changed dataset at the same path (give "
              f"--data-version, or --no-cache)", file=sys.stderr)
    return key


def cmd_submit(args) -> int:
    import tempfile

    from components import DEFAULT_IMAGE
    from pipeline.kubeflow_runner import (check_data_on_volumes, check_submit_args,
                                          compile_pipeline, submit)

    from pipeline.preflight import check_beam_args

    # every argument first: a typo costs no connection, no dataset listing, no compile
    check_submit_args(host=args.host, image=args.image, data_root=args.data,
                      data_version=args.data_version, pipeline_root=args.pipeline_root,
                      experiment=args.experiment, tracking_uri=args.tracking_uri)
    config = _resolve_data(_config(args, demo=False), Path(args.data), args)
    config = _resolve_init_from(config, args, None)
    beam_args = _beam_args(args, check_scheduler=False)
    check_beam_args(beam_args, local=False)
    check_data_on_volumes(args.data, args.pvc)
    fingerprint = _submit_cache_key(args, config)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(os.path.join(tmp, "pipeline.yaml"),
                                   image=args.image or DEFAULT_IMAGE, config=config,
                                   pvcs=args.pvc, caching=not args.no_cache)
        result = submit(args.host, data_root=args.data, package_path=package,
                        experiment=args.experiment, pipeline_root=args.pipeline_root,
                        config=config, test_folds=args.folds, tracking_uri=args.tracking_uri,
                        beam_args=beam_args, dataset_fingerprint=fingerprint)
    print(f"submitted run {result.run_id} to {args.host} (experiment {args.experiment!r})")
    return EXIT_OK


def cmd_models(args) -> int:
    import json

    from urbansound.models import MODELS, build_model, trainable_parameter_count

    rows = []
    for name, spec in MODELS.items():
        rows.append({"name": name, "parameters": trainable_parameter_count(build_model(name)),
                     "input": spec.input_kind, "optimizer": spec.optimizer,
                     "learning_rate": spec.learning_rate, "schedule": spec.schedule,
                     "epochs": spec.epochs, "validation": spec.validation,
                     "study": spec.study, "summary": spec.summary})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    print(f"{'model':<15} {'parameters':>10}  {'input':<13} {'optimiser':<9} {'epochs':>6}  "
          f"protocol")
    for r in rows:
        protocol = ("validation fold + early stopping" if r["validation"] == "fold"
                    else f"fixed {r['schedule'].replace('_', '-')} schedule")
        print(f"{r['name']:<15} {r['parameters']:>10,}  {r['input'] + ' 128×128':<13} "
              f"{r['optimizer']:<9} {r['epochs']:>6}  {protocol}")
        print(f"{'':<15} {r['summary']}")
    return EXIT_OK


def cmd_compare(args) -> int:
    from pipeline.compare import compare
    from pipeline.local_runner import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(".")
    table, plot, logged = compare(uri, args.run_ids or None, experiment=args.experiment,
                                  out_dir=args.out, log=not args.no_log)
    print(table)
    print(f"\nbox plot: {plot}")
    if logged:
        print(f"logged to MLflow as run {logged} (tag urbansound.kind=comparison)")
    return EXIT_OK


def _add_predict_parser(sub) -> None:
    from urbansound.predict import DEFAULT_HOP_SECONDS

    p = sub.add_parser(
        "predict", help="classify recordings of any length with a trained model",
        description="Classify audio files (any format ingest reads; folders are searched "
                    "recursively) with a trained model: per file the class and the top-3 "
                    "probabilities, the mean over sliding 3 s windows. Long files are read "
                    "in blocks, never whole.")
    p.add_argument("model", metavar="MODEL",
                   help="a model.keras file, a folder holding one (a pipeline output), or an "
                        "MLflow URI: runs:/<run>/model, models:/<id>, models:/<name>@<alias>")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS, metavar="SECONDS",
                   help=f"seconds between window starts, > 0 and <= 3 "
                        f"(default {DEFAULT_HOP_SECONDS:g}: windows overlap by half)")
    p.add_argument("--timeline", action="store_true",
                   help="also a row per window (start, end, class, probability) and the events: "
                        "consecutive windows of one class merged")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                   help="store of an MLflow URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///./mlflow.db)")


@_quiet_libraries("predict")
def cmd_predict(args) -> int:
    """Exit 0 when at least one file was classified; 2 when the model cannot be used or
    every file failed (each failure is one line: the file and the reason)."""
    import json

    from pipeline.model_source import ModelSourceError, load_model
    from urbansound.audio import AudioError
    from urbansound.predict import (check_model_input, find_audio_files, hop_samples,
                                    keras_classifier, predict_file)

    loaded = load_model(args.model, tracking_uri=args.tracking_uri)
    try:
        hop_samples(args.hop, loaded.config)
        check_model_input(loaded.model, loaded.config, args.model)
    except ValueError as exc:
        raise ModelSourceError(str(exc)) from None
    print(f"model {args.model}; configuration: {loaded.config_source}",
          file=_stderr() if args.json else sys.stdout, flush=True)
    classify = keras_classifier(loaded.model)

    def failed(path, reason: str) -> None:
        print(f"urbansound predict: error: {path}: {reason}", file=_stderr(), flush=True)
        if args.json:
            print(json.dumps({"file": str(path), "error": reason}), flush=True)

    done = 0
    for raw in args.paths:
        if Path(raw).is_dir() and not find_audio_files([raw]):
            failed(raw, "no audio files in this folder")
    for path in find_audio_files(args.paths):
        try:
            result = predict_file(path, classify, config=loaded.config, hop_seconds=args.hop)
        except AudioError as exc:
            failed(path, exc.reason)
            continue
        done += 1
        if args.json:
            print(json.dumps(result.to_dict(timeline=args.timeline)), flush=True)
            continue
        top = result.top()
        print(f"{path}: {top[0][0]} {top[0][1]:.3f}  ("
              + ", ".join(f"{c} {p:.3f}" for c, p in top[1:])
              + f")  {result.duration_s:.1f} s, {len(result.starts_s)} window(s)", flush=True)
        if args.timeline:
            rows = result.to_dict(timeline=True)
            print(f"  {'start s':>9} {'end s':>9}  {'class':<17} probability")
            for r in rows["timeline"]:
                print(f"  {r['start_s']:9.2f} {r['end_s']:9.2f}  {r['class']:<17} "
                      f"{r['probability']:.3f}")
            print("  events:")
            for r in rows["events"]:
                print(f"  {r['start_s']:9.2f} {r['end_s']:9.2f}  {r['class']:<17} "
                      f"{r['probability']:.3f}  ({r['windows']} window(s))")
    return EXIT_OK if done else EXIT_USER


def _add_export_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="convert a trained model for edge devices (TensorFlow Lite)",
        description="Convert a trained model to a TensorFlow Lite file (float32, or int8 "
                    "with --int8) and write beside it a JSON file with the front end an "
                    "edge device must reproduce (the configuration: sample rate, window, "
                    "log-mel settings), the class names and the input/output tensors "
                    "(shape, dtype, int8 scale and zero point).")
    p.add_argument("model", metavar="MODEL",
                   help="what predict takes: a model.keras file, a folder holding one, or an "
                        "MLflow URI")
    p.add_argument("--format", choices=("tflite",), default="tflite",
                   help="output format (default tflite)")
    p.add_argument("--int8", action="store_true",
                   help="full-integer post-training quantisation (int8 weights, activations, "
                        "input and output), calibrated on real windows")
    p.add_argument("--calibration", nargs="+", metavar="PATH",
                   help="with --int8: audio files or folders like the sounds the model will "
                        "hear (default: the built-in synthetic demo data)")
    p.add_argument("-o", "--out", metavar="OUT",
                   help="the .tflite file to write, or a folder (default ./model.tflite, "
                        "./model_int8.tflite with --int8); OUT with .json is written beside it")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                   help="store of an MLflow URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///./mlflow.db)")


@_quiet_libraries("export")
def cmd_export(args) -> int:
    """Exit 0 with the file written; 2 when the model, the calibration data or OUT cannot
    be used (one line)."""
    from pipeline.model_source import (ModelSourceError, find_local_model, is_mlflow_uri,
                                       load_model)
    from urbansound.export import (TFLiteModel, agreement, batched, calibration_inputs,
                                   check_export_outputs, demo_calibration_inputs, export_paths,
                                   export_tflite)
    from urbansound.predict import check_model_input, find_audio_files, keras_classifier
    from urbansound.training import CONFIG_FILE

    if args.calibration and not args.int8:
        print("urbansound export: error: --calibration is used only with --int8",
              file=_stderr())
        return EXIT_USER
    out = args.out or ("model_int8.tflite" if args.int8 else "model.tflite")
    # refused before the model is even loaded: never write over an input or a stranger's file
    tflite_path, json_path = export_paths(out, int8=args.int8)
    inputs = []
    if not is_mlflow_uri(args.model):
        model_path = find_local_model(args.model)
        inputs += [("MODEL", model_path), (f"MODEL's {CONFIG_FILE}", model_path.parent / CONFIG_FILE)]
    inputs += [("--calibration", p) for p in find_audio_files(args.calibration or [])]
    check_export_outputs(tflite_path, json_path, inputs)
    loaded = load_model(args.model, tracking_uri=args.tracking_uri)
    try:
        check_model_input(loaded.model, loaded.config, args.model)
    except ValueError as exc:
        raise ModelSourceError(str(exc)) from None
    print(f"model {args.model}; configuration: {loaded.config_source}", flush=True)
    calibration = None
    if args.int8:
        if args.calibration:
            calibration = calibration_inputs(args.calibration, loaded.config)
        else:
            calibration = demo_calibration_inputs(loaded.config)
        print(f"int8 calibration: {len(calibration.inputs)} windows from {calibration.source}"
              + ("" if args.calibration else
                 "; give --calibration with recordings like the ones the model will hear"),
              flush=True)
    result = export_tflite(loaded.model, loaded.config, out, int8=args.int8,
                           calibration=calibration, source=args.model)
    print(f"wrote {result.tflite_path} ({result.size_bytes / 1024:,.0f} KB, "
          f"{result.metadata['quantization']}) and {result.json_path}", flush=True)
    if calibration is not None:
        # a check that the quantised model still ranks like the original, on the
        # calibration windows (seen by the quantiser: an optimistic figure)
        x = calibration.inputs
        agree = agreement(batched(keras_classifier(loaded.model), x),
                          batched(TFLiteModel(result.tflite_path), x))
        print(f"int8 vs Keras on the {agree['n']} calibration windows: same top class "
              f"{agree['top1']:.1%}, largest probability difference {agree['max_abs_diff']:.3f}",
              flush=True)
    return EXIT_OK


def _add_listen_parser(sub) -> None:
    from urbansound.predict import DEFAULT_HOP_SECONDS

    p = sub.add_parser(
        "listen", help="classify a live stream (raw PCM on stdin, or a file at real time)",
        description="Classify a continuous stream window by window, printing each 3 s "
                    "window as soon as its last sample has arrived: start and end (s), "
                    "class, probability and latency (ms from the arrival of the window's "
                    "last sample to the line). Ctrl-C or the end of the stream prints a "
                    "summary (windows, mean and 95th-percentile latency, CPU share).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              arecord -q -f S16_LE -c1 -r 22050 | urbansound listen MODEL
              urbansound listen MODEL --input street.flac        # played at real time
              sox street.wav -t raw -e signed -b 16 -c 1 -r 44100 - | urbansound listen MODEL --rate 44100
            """))
    p.add_argument("model", metavar="MODEL",
                   help="what predict takes: a model.keras file, a folder holding one, or an "
                        "MLflow URI")
    p.add_argument("--input", default="-", metavar="FILE|-",
                   help="an audio file (any format predict reads), or - for raw little-endian "
                        "16-bit mono PCM on stdin (default -)")
    p.add_argument("--rate", type=int, default=None, metavar="HZ",
                   help="sample rate of the PCM on stdin (default 22050; a file's own header "
                        "gives its rate)")
    p.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS, metavar="SECONDS",
                   help=f"seconds between window starts, > 0 and <= 3 "
                        f"(default {DEFAULT_HOP_SECONDS:g})")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="play a file at the pace of a recording (default), or as fast as it "
                        "is classified (--no-realtime); stdin comes at its writer's pace")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                   help="store of an MLflow URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///./mlflow.db)")


@_quiet_libraries("listen")
def cmd_listen(args) -> int:
    """Exit 0 at the end of the stream or on Ctrl-C; 2 when the model or the input cannot
    be used, or the stream ended inside a sample (after the summary)."""
    from pipeline.model_source import ModelSourceError, load_model
    from urbansound.files import regular_file_problem
    from urbansound.predict import check_model_input, hop_samples, keras_classifier
    from urbansound.stream import (LIVE_BLOCK_SECONDS, PCM_SAMPLE_BYTES, STDIN, ListenStats,
                                   check_rate, classify_stream, file_blocks, pcm_blocks,
                                   prefetch, resample_blocks, stream_windows, timed_reads,
                                   warm_up)

    stdin = args.input == "-"
    if not stdin and args.rate is not None:
        print(f"urbansound listen: error: --rate is for raw PCM on stdin (--input -); "
              f"{args.input}'s header gives its rate", file=_stderr())
        return EXIT_USER
    problem = None if stdin else regular_file_problem(args.input)
    if problem:  # os.stat only: a FIFO is never opened here
        hint = ("; pipe raw PCM to stdin instead (--input -)"
                if problem.startswith("not a regular file") else "")
        print(f"urbansound listen: error: {args.input}: {problem}{hint}", file=_stderr())
        return EXIT_USER
    rate = check_rate(22050 if args.rate is None else args.rate)
    if stdin and sys.stdin.isatty():
        print("urbansound listen: error: stdin is a terminal: pipe raw PCM into it "
              "(arecord -f S16_LE -c1 -r 22050 | urbansound listen MODEL) or give --input FILE",
              file=_stderr())
        return EXIT_USER
    pcm_info: dict = {}
    if stdin:
        # read (and time) the pipe from now on, while TensorFlow loads: a writer such as
        # arecord must never block on a full pipe and drop audio
        fd = sys.stdin.fileno()
        chunks = prefetch(timed_reads(lambda n: os.read(fd, n),
                                      int(rate * LIVE_BLOCK_SECONDS) * PCM_SAMPLE_BYTES))
    loaded = load_model(args.model, tracking_uri=args.tracking_uri)
    config = loaded.config
    try:
        hop_samples(args.hop, config)
        check_model_input(loaded.model, config, args.model)
    except ValueError as exc:
        raise ModelSourceError(str(exc)) from None
    classify = keras_classifier(loaded.model)
    warm_up(classify, config)
    a = config.audio
    if stdin:
        blocks = resample_blocks(pcm_blocks(chunks, info=pcm_info), rate, a.sample_rate)
        what = f"{STDIN}: S16_LE mono at {rate} Hz"
    else:
        blocks = file_blocks(args.input, sample_rate=a.sample_rate, realtime=args.realtime)
        what = f"{args.input}{' at real time' if args.realtime else ''}"
    print(f"model {args.model}; configuration: {loaded.config_source}", flush=True)
    print(f"listening to {what}: {a.clip_seconds:g} s windows every {args.hop:g} s",
          flush=True)
    print(f"{'start s':>9} {'end s':>9}  {'class':<17} {'prob':>5} {'latency ms':>11}", flush=True)
    stats = ListenStats()
    ended = "end of stream"
    try:
        for r in classify_stream(stream_windows(blocks, config=config, hop_seconds=args.hop,
                                                name=STDIN if stdin else args.input),
                                 classify, config=config):
            latency = (time.monotonic() - r.arrived) * 1000
            stats.add(latency)
            print(f"{r.start_s:9.2f} {r.end_s:9.2f}  {r.label:<17} {r.probability:5.3f} "
                  f"{latency:11.0f}", flush=True)
    except KeyboardInterrupt:
        ended = "interrupted"
    print(f"summary ({ended}): {stats.line()}", flush=True)
    if pcm_info.get("trailing_bytes"):
        print(f"urbansound listen: error: {STDIN}: the stream ended inside a sample "
              f"({pcm_info['bytes']} bytes is not a whole number of 2-byte S16_LE samples; "
              f"the last byte was dropped): is it 16-bit mono?", file=_stderr())
        return EXIT_USER
    return EXIT_OK


def _add_register_parser(sub) -> None:
    p = sub.add_parser(
        "register", help="register a run's model in the MLflow model registry",
        description="Register the model of an MLflow run as a new version of NAME. RUN_ID is "
                    "a fold run, or a pipeline (parent) run: then the fold with the highest "
                    "test_accuracy (or --fold). Prints the models:/ URI, which "
                    "'urbansound predict' and 'mlflow models serve' take.")
    p.add_argument("run_id", metavar="RUN_ID", help="a pipeline run or a fold run")
    p.add_argument("--name", required=True, help="registered model name")
    p.add_argument("--alias", help="alias for the new version (e.g. champion)")
    p.add_argument("--fold", type=int, metavar="K",
                   help="of a pipeline run, register test fold K's model (default: the best)")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                   help="store (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")


@_quiet_libraries("register")
def cmd_register(args) -> int:
    """Exit 0 with the URI printed last; 2 for an unknown run, fold or a run without a
    model (one line)."""
    from pipeline.registry import register

    done = register(args.run_id, args.name, alias=args.alias, fold=args.fold,
                    tracking_uri=args.tracking_uri)
    accuracy = "no test_accuracy" if done.test_accuracy is None \
        else f"test_accuracy {done.test_accuracy:.3f}"
    if done.parent_run_id:
        print(f"pipeline run {done.parent_run_id}: fold {done.fold} ({accuracy}, "
              f"{done.chosen_by}): fold run {done.run_id}")
    else:
        print(f"run {done.run_id}" + (f" (fold {done.fold}, {accuracy})" if done.fold else ""))
    print(f"registered as {done.name} version {done.version}"
          + (f", alias {done.alias}" if done.alias else ""))
    print(done.uri)
    return EXIT_OK


def _add_train_final_parser(sub, d) -> None:
    p = sub.add_parser(
        "train-final", help="train one model on every fold (to deploy) and log/register it",
        description="Train one model on all folds of --data with the settings of a finished "
                    "pipeline run (--from-run) or the usual training options, log it to MLflow "
                    "(tag urbansound.kind=final) and, with --name, register it. There is no "
                    "test fold, so it has no accuracy of its own: the cross-validated run's "
                    "accuracy is its expected accuracy. With the validation-fold protocol the "
                    "epochs are the median best epoch of --from-run's folds (else the recipe's).")
    p.add_argument("--data", required=True, help="the dataset (any layout `run` takes)")
    p.add_argument("--from-run", metavar="RUN_ID",
                   help="a pipeline (or fold) run: train with its logged configuration "
                        "(--set and --epochs still override)")
    _add_data_options(p)
    _add_training_options(p, d)
    p.add_argument("--name", help="register the model under this name")
    p.add_argument("--alias", help="with --name: alias for the new version (e.g. champion)")
    p.add_argument("--out", default="urbansound-final",
                   help="waveforms, features and model.keras go here (default ./urbansound-final)")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                   help="store (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")


def _from_run(args):
    """(config, median best epoch of its folds or None, the store) of ``--from-run``."""
    import statistics

    from components.runs import FOLD_TAG, run_config
    from pipeline.model_source import mlflow_store
    from pipeline.registry import RegistryError
    from urbansound.config import ConfigError

    uri = mlflow_store(args.from_run, args.tracking_uri)
    import mlflow

    c = mlflow.MlflowClient(uri)
    try:
        run = c.get_run(args.from_run)
    except Exception:  # noqa: BLE001 - MlflowException RESOURCE_DOES_NOT_EXIST, bad id
        raise RegistryError(f"{args.from_run}: no such run in {uri}") from None
    folds = [r for r in c.search_runs(
        [run.info.experiment_id], max_results=1000,
        filter_string=f"tags.mlflow.parentRunId = '{args.from_run}'")
        if FOLD_TAG in r.data.tags] or [run]
    best = [r.data.metrics["best_epoch"] for r in folds if "best_epoch" in r.data.metrics]
    try:
        config, _ = run_config(c, args.from_run, run.data.params)
    except ConfigError as exc:
        raise ConfigError(f"{args.from_run}: {exc}") from None
    return config, int(round(statistics.median(best))) if best else None, uri


@_quiet_libraries("train-final")
def cmd_train_final(args) -> int:
    """Exit 0 with the model's URI printed last; 2 for bad data or an unknown run."""
    from components.model_logging import log_model
    from components.runs import experiment_id, log_class_names, log_config, log_params
    from components.tracking_store import client
    from pipeline.registry import KIND_TAG, register_final
    from urbansound.beam_features import default_beam_args, run_features
    from urbansound.config import ConfigError
    from urbansound.content_hash import cache_file_for
    from urbansound.ingest import ingest
    from urbansound.layouts import detect_layout
    from urbansound.config import Config
    from urbansound.training import CONFIG_FILE, MODEL_FILE, train_final

    median_epoch, uri = None, args.tracking_uri
    if args.alias and not args.name:
        raise ConfigError("--alias needs --name")
    if args.from_run:
        config, median_epoch, uri = _from_run(args)
        config = config.override(**dict(args.settings)).override(**{
            "train.epochs": args.epochs, "train.seed": args.seed, "data.layout": args.layout})
    else:
        config = _config(args, demo=False)
    from urbansound.outputs import claim_folder

    claim_folder(Path(args.out).resolve(), "train-final", inputs=[("--data", args.data)],
                 legacy=_legacy_only(folders=("waveforms", "features", "model", "cache",
                                              "init-model")))
    config = _resolve_init_from(config, args, Path(args.out).resolve())
    if args.epochs:
        epochs_from = "--epochs"
    elif config.train.validation == "fold" and median_epoch:
        config = config.override(**{"train.epochs": median_epoch})
        epochs_from = f"the median best epoch of run {args.from_run}'s folds"
    elif config.train.validation == "fold":
        epochs_from = "the recipe's (no fold results to take the best epoch from)"
    else:
        epochs_from = "the recipe's" if not args.from_run else f"run {args.from_run}'s"
    print(f"epochs: {config.train.epochs} ({epochs_from})")
    if config.data.layout == "auto":
        config = config.override(**{"data.layout": detect_layout(args.data)})
    out = Path(args.out).resolve()
    config = _with_deformation_cache(config, out)
    result = ingest(args.data, out / "waveforms", config=config, progress=False,
                    digest_cache=cache_file_for(out / CONTENT_DIGESTS, args.data))
    print(result.summary_line())
    config = _resolve_data(config, Path(args.data), args)
    manifest = run_features(str(out / "waveforms"), str(out / "features"), config=config,
                            beam_args=default_beam_args())
    folds = sorted(int(k) for k in manifest["folds"])
    final = train_final(out / "features", folds, config=config, out_dir=out / "model",
                        verbose=2 if args.verbose else 0)
    history = final["history"]
    print(f"trained {config.train.model} on folds {','.join(map(str, folds))}: "
          f"{final['n_train']} examples ({final['n_clips']} clips), {final['epochs']} epochs, "
          f"final training accuracy {history['accuracy'][-1]:.3f} -> {out / 'model' / MODEL_FILE}")
    print("no test fold, so no accuracy of its own: its expected accuracy is the "
          + (f"cross-validated run's ({args.from_run})" if args.from_run
             else "cross-validated accuracy of a `urbansound run` with the same settings"))
    if not uri:
        from pipeline.local_runner import default_tracking_uri

        uri = default_tracking_uri(".")
    c = client(uri)
    run = c.create_run(experiment_id(c, uri), run_name=f"final · {config.train.model}",
                       tags={KIND_TAG: "final", **({"urbansound.from_run": args.from_run}
                                                   if args.from_run else {})})
    run_id = run.info.run_id
    log_params(c, run_id, {**config.flat(), "data_root": str(Path(args.data).resolve()),
                           "folds": ",".join(map(str, folds))})
    # in full (with the data's class names, as train_final wrote it): what --from-run reads
    trained = Config.from_json((out / "model" / CONFIG_FILE).read_text())
    log_config(c, run_id, trained)
    log_class_names(c, run_id, trained.class_names)
    for epoch, (loss, acc) in enumerate(zip(history["loss"], history["accuracy"]), 1):
        c.log_metric(run_id, "loss", loss, step=epoch)
        c.log_metric(run_id, "accuracy", acc, step=epoch)
    c.log_metric(run_id, "n_train", final["n_train"])
    c.log_artifact(run_id, str(out / "model" / "final_result.json"))
    # config=None: the config.json train_final wrote, with the data's class names
    log_model(uri, run_id, str(out / "model" / MODEL_FILE))
    c.set_terminated(run_id, "FINISHED")
    print(f"MLflow run {run_id} ({uri})")
    if not args.name:
        print(f"runs:/{run_id}/model")
        return EXIT_OK
    done = register_final(run_id, args.name, alias=args.alias, tracking_uri=uri,
                          cross_validated_run=args.from_run)
    print(f"registered as {done.name} version {done.version}"
          + (f", alias {done.alias}" if done.alias else ""))
    print(done.uri)
    return EXIT_OK


COMMANDS = {"run": cmd_run, "demo-data": cmd_demo_data, "ingest": cmd_ingest,
            "features": cmd_features, "models": cmd_models, "compare": cmd_compare,
            "ui": cmd_ui, "compile": cmd_compile, "submit": cmd_submit}
COMMANDS["predict"] = cmd_predict
COMMANDS["export"] = cmd_export
COMMANDS["register"] = cmd_register
COMMANDS["train-final"] = cmd_train_final
COMMANDS["listen"] = cmd_listen


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from urbansound.errors import USER_ERRORS

    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"urbansound {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(f"urbansound {args.command}: interrupted; open MLflow runs marked KILLED. "
              f"The same command resumes from the finished tasks.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
