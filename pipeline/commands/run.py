"""``urbansound run``: the whole pipeline with kfp's local runner."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from urbansound.content_hash import cache_file_for
from urbansound.pipeline.commands.options import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USER,
    Command,
    add_beam_options,
    add_options,
    add_tracking_uri,
    beam_args,
    clip_options,
    config_from_args,
    data_options,
    folds_arg,
    training_options,
)
from urbansound.pipeline.commands.resolve import (
    CONTENT_DIGESTS,
    INIT_DIGEST_FILE,
    legacy_only,
    resolve_data,
    resolve_init_from,
    with_deformation_cache,
)

DEFAULT_OUT = "urbansound-output"


def add_parser(sub, d) -> None:
    from urbansound.pipeline import containers

    run = sub.add_parser(
        "run",
        help="run the whole pipeline locally (kfp local runner)",
        description="Run ingest → features → train (one model per test fold) → evaluate with "
        "kfp's local runner, log to MLflow, print per-fold accuracies. Without "
        "--data, generates the built-in synthetic dataset and uses a shorter "
        "schedule (see urbansound.config.demo_config).",
    )
    run.add_argument(
        "--data",
        metavar="DIR",
        help="the dataset: an UrbanSound8K root (audio/fold*/, "
        "metadata/UrbanSound8K.csv), ESC-50, a folder per class or a CSV "
        "(--layout); "
        "default: the built-in demo data",
    )
    add_options(run, data_options())
    run.add_argument(
        "--folds",
        type=folds_arg,
        default=[],
        help="test folds to evaluate, e.g. 1,2 (default: every fold present); each "
        "trains on all other folds present (minus the validation fold drawn "
        "with the seed, for models that use one)",
    )
    add_options(run, training_options(d) + clip_options(d))
    run.add_argument(
        "--strict", action="store_true", help="fail before training if any row or file is rejected"
    )
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="run every task again and open a new MLflow run (by default a rerun "
        "of the same command resumes: finished tasks come from kfp's cache)",
    )
    add_tracking_uri(
        run,
        "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
        "sqlite:///./mlflow.db with artifacts in ./mlartifacts)",
    )
    run.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"pipeline outputs (and generated demo data) (default ./{DEFAULT_OUT})",
    )
    add_beam_options(
        run,
        help="Beam pipeline option for the features stage, repeatable "
        "(default: --runner=FnApiRunner, one worker process per core)",
    )
    run.add_argument(
        "--runner",
        choices=("subprocess", "docker"),
        default="subprocess",
        help="where the tasks run: subprocess (default: processes of this environment) or "
        "docker (each task in a container of the project image, with kfp's DockerRunner "
        "through Docker or podman's Docker API, as on a cluster; see docs/cluster.md)",
    )
    run.add_argument(
        "--image",
        metavar="IMG",
        help="with --runner docker: the image every task runs in (default "
        f"{containers.default_docker_image()}, what docker/build.sh tags)",
    )


def cmd_run(args) -> int:
    from urbansound.evaluation import format_summary
    from urbansound.ingest import ensure_writable_dir
    from urbansound.outputs import claim_folder
    from urbansound.pipeline import preflight
    from urbansound.pipeline.console import ConsoleLog
    from urbansound.pipeline.local_runner import (
        PipelineFailed,
        default_tracking_uri,
        local_tracking_uri,
        output_lock,
        run_local,
    )

    # Every check that can fail on the user's input runs before anything is written
    # or any task starts, so a mistake costs seconds and leaves no trace.
    out = Path(args.out).resolve()
    demo = args.data is None
    config = with_deformation_cache(config_from_args(args, demo=demo), out)
    data = out / "demo-data" if demo else Path(args.data)
    tracking_uri = local_tracking_uri(args.tracking_uri)
    preflight.check_locations(out, None if demo else data, tracking_uri)
    claim_folder(
        out,
        "run",
        inputs=[] if demo else [("--data", data)],
        legacy=_legacy_run_out,
        check_only=True,
    )  # a folder of someone else's: refused before any write
    beam_options = beam_args(args)
    preflight.check_beam_args(beam_options, local=True)
    docker = preflight.check_runner(getattr(args, "runner", "subprocess"), args.image)
    if docker is not None:  # the containers' working directory is not this one
        from urbansound.pipeline.containers import absolute_paths

        config, tracking_uri = absolute_paths(config, tracking_uri)
    if not demo:
        clips, rejections, _ = preflight.check_dataset(
            data, args.folds, config.train.validation, config.data
        )
        config = resolve_data(config, data, args, clips)
    preflight.check_tracking(tracking_uri)
    started = time.time()
    ensure_writable_dir(out)  # fail in a second, naming the path, not inside a task
    config = resolve_init_from(config, args, out)
    with output_lock(out) as lock_fd:
        # marked as ours only by the run that holds it (checked above, before any write)
        claim_folder(out, "run", inputs=[] if demo else [("--data", data)], legacy=_legacy_run_out)
        if demo:
            if not (data / "metadata" / "UrbanSound8K.csv").exists():
                from urbansound.demo_data import write_demo_dataset

                print(f"writing the built-in demo dataset to {data}")
                write_demo_dataset(data)
            clips, rejections, _ = preflight.check_dataset(
                data, args.folds, config.train.validation, config.data
            )
            config = resolve_data(config, data, args, clips)
        print(
            f"dataset {data}: {len(clips)} clips listed, {len(rejections)} rows/files rejected "
            f"before decoding"
        )
        fingerprint = inputs_fingerprint(clips, data, config, out)
        console = ConsoleLog(out / "run.log", echo_all=args.verbose)
        print(f"full log: {console.log_path}" + ("" if args.verbose else "  (-v shows it here)"))
        docker_spec = None
        if docker is not None:
            from urbansound.pipeline.containers import describe, runner_spec

            print(describe(docker))
            for warning in docker.warnings:
                print(f"warning: {warning}")
            docker_spec = runner_spec(
                docker,
                out=out,
                data=data,
                tracking_uri=tracking_uri,
                extra_inputs=(config.augment.noise_dir or "", config.train.init_from or ""),
            )
        try:
            with console:
                result = run_local(
                    data,
                    config=config,
                    workdir=out,
                    test_folds=args.folds,
                    tracking_uri=tracking_uri,
                    strict=args.strict,
                    beam_args=beam_options,
                    dataset_fingerprint=fingerprint,
                    digest_cache=cache_file_for(out / CONTENT_DIGESTS, data),
                    cache=not args.no_cache,
                    lock_fd=lock_fd,
                    docker=docker_spec,
                )
        except PipelineFailed as exc:
            return _report_failure(exc, console, out, tracking_uri)
    print()
    if result.summary:
        print(format_summary(result.summary))
        print(f"summary: {result.summary_path}")
        report = Path(result.summary_path or "").with_name("report.html")
        if result.summary_path and report.is_file():
            print(f"report: {report} (the most confident mistakes, to listen to)")
    print(f"\nfinished in {time.time() - started:.0f} s; outputs in {result.pipeline_root}")
    if result.parent_run_id:
        browse = "urbansound ui" + (
            "" if tracking_uri == default_tracking_uri(".") else f" --tracking-uri {tracking_uri}"
        )
        print(
            f"MLflow: parent run {result.parent_run_id} in experiment 'urbansound' at "
            f"{tracking_uri}\n  browse: {browse}"
        )
    for warning in (result.summary or {}).get("warnings", []) + result.warnings:
        print(f"warning: {warning}")
    if console.log_error:
        print(f"warning: the full log is incomplete ({console.log_error})")
    ingested = (result.summary or {}).get("ingest")
    if ingested:
        print(
            f"{ingested['accepted']} clips accepted, {ingested['rejected']} rejected "
            f"(report: {ingested['report']})"
        )
    return EXIT_OK


def inputs_fingerprint(clips, data: Path, config, out: Path) -> str:
    """What keys kfp's cache and the run key besides the arguments: the dataset's listing
    and every clip's content (:func:`urbansound.dataset.dataset_fingerprint`), plus the
    content of the other files the tasks read, the noise recordings
    (``augment.noise_dir``) and the model ``--init-from`` starts from.  A changed file is
    a new run, never a stale result.  Digests are remembered in ``<out>/cache``, so an
    unchanged tree costs a stat per file; a progress line appears when hashing takes
    more than two seconds."""
    import hashlib

    from urbansound.components.progress import progress_line
    from urbansound.content_hash import file_digest
    from urbansound.dataset import dataset_fingerprint
    from urbansound.deformation_cache import noise_signature

    folder = out / CONTENT_DIGESTS
    progress = progress_line("dataset fingerprint", interactive=sys.stdout.isatty(), after_s=2.0)
    parts = [dataset_fingerprint(clips, cache_file=cache_file_for(folder, data), progress=progress)]
    noise = config.augment.noise_dir
    if noise and "://" not in noise and Path(noise).is_dir():
        listing = "".join(
            f"{name}\t{digest}\n"
            for name, digest in noise_signature(noise, cache_file=cache_file_for(folder, noise))
        )
        parts.append("noise=" + hashlib.sha256(listing.encode()).hexdigest()[:16])
    init = config.train.init_from
    if init and "://" not in init and Path(init).is_file():
        beside = Path(init).parent / INIT_DIGEST_FILE
        copied = Path(init).parent == out / "init-model" and beside.is_file()
        parts.append("init=" + (beside.read_text().strip() if copied else file_digest(init))[:16])
    return ";".join(parts)


_legacy_run_out = legacy_only(
    files=("run.log", ".urbansound-run.lock"),
    folders=("pipeline_root", "demo-data", "init-model", "cache"),
)


def _report_failure(exc, console, out: Path, tracking_uri: str) -> int:
    """One line and exit code 2 when the user can fix it (bad input, a full disk);
    the log's tail and exit code 1 otherwise.  What happened to the MLflow run is
    read from the store, never assumed."""
    from urbansound.components import runs, tracking_store
    from urbansound.components.errors import storage_error
    from urbansound.pipeline import preflight

    mlflow_note = "no MLflow run was created"
    try:
        if not exc.tracking_reachable:
            raise ConnectionError("unreachable")
        found = runs.parent_run_status(tracking_uri, exc.run_key)
        if found:
            mlflow_note = f"MLflow parent run {found[0]} is {found[1]}"
    except Exception as error:
        mlflow_note = f"MLflow store {tracking_uri} could not be read ({type(error).__name__})"
    where = f"full log: {console.log_path}; outputs so far: {out / 'pipeline_root'}; {mlflow_note}"
    user_error = console.user_error()
    if not (user_error and preflight.STORAGE_TEXT.search(user_error)):
        full = preflight.full_filesystem([out, tracking_store.store_folder(tracking_uri)])
        line = console.storage_error()
        if line:  # e.g. a traceback from a library that wrote nothing else
            full = storage_error(Exception(line), default_path=(full or str(out)).split(": ")[0])
        if full and (line or not user_error):
            user_error = (
                f"urbansound run: error: cannot write {full}; free some space and "
                f"run the same command again (it resumes)"
            )
    if user_error:  # a task stopped on bad input or a full disk: one line, exit code 2
        print(where)
        print(user_error, file=sys.stderr)
        return EXIT_USER
    print(console.tail(25), file=sys.stderr)
    print(f"\nurbansound run: the pipeline failed: {exc}\n  {where}", file=sys.stderr)
    return EXIT_INTERNAL


COMMANDS = {"run": Command(add_parser, cmd_run)}
