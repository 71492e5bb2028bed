"""``urbansound compile`` and ``submit``: the pipeline for a Kubeflow cluster."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from urbansound.pipeline.commands.options import (
    EXIT_OK,
    Command,
    add_beam_options,
    add_options,
    add_tracking_uri,
    beam_args,
    config_from_args,
    data_options,
    folds_arg,
    training_options,
)
from urbansound.pipeline.commands.resolve import resolve_data, resolve_init_from


def _pvc(text: str) -> tuple[str, str]:
    from urbansound.pipeline.kubeflow_runner import parse_pvc

    try:
        return parse_pvc(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _retries(text: str) -> int:
    from urbansound.pipeline.pipeline import MAX_RETRIES

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number, not {text!r}") from None
    if not 0 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"must be in 0..{MAX_RETRIES}, got {value}")
    return value


def add_retries(parser) -> None:
    parser.add_argument(
        "--retries",
        type=_retries,
        default=0,
        metavar="N",
        help="retry a failed task N times (60 s, then 120 s, ...; at most 600 s). Default 0: "
        "kfp's retries cannot tell a transient failure from bad input (exit code 2), which "
        "would fail again N times",
    )


def add_compile_parser(sub, d) -> None:
    comp = sub.add_parser("compile", help="write the KFP pipeline YAML for a cluster")
    comp.add_argument("-o", "--output", default="pipeline.yaml", help="default pipeline.yaml")
    comp.add_argument("--image", help="component image (default urbansound:latest)")
    add_pvc(
        comp,
        "mount this PersistentVolumeClaim in every task (repeatable), as "
        "submit --pvc does, for a YAML you upload yourself",
    )
    add_retries(comp)


PVC_HELP = (
    "mount this PersistentVolumeClaim in every task (repeatable); --data "
    "then names a path under the mount, e.g. --pvc us8k:/mnt/data "
    "--data /mnt/data/UrbanSound8K"
)


def add_pvc(parser, help: str = PVC_HELP) -> None:
    parser.add_argument(
        "--pvc", action="append", type=_pvc, default=[], metavar="NAME:/MOUNT/PATH", help=help
    )


def add_cluster_target(parser, *, required: bool = True) -> None:
    """``--host``, ``--experiment`` and ``--pipeline-root``: where a submission goes
    (``submit``; ``study --submit``, where ``--host`` is checked with ``--submit``)."""
    parser.add_argument(
        "--host",
        required=required,
        help="KFP API endpoint, e.g. http://localhost:8080"
        + ("" if required else " (with --submit)"),
    )
    parser.add_argument("--experiment", default="urbansound", help="default urbansound")
    parser.add_argument("--pipeline-root", help="artifact root URI, e.g. gs://bucket/urbansound")


def add_data_version(parser) -> None:
    parser.add_argument(
        "--data-version",
        default="",
        metavar="STR",
        help="the dataset's version (a date, a commit, a checksum): kfp's cache "
        "serves ingest and features only for the same version. When --data "
        "is also readable here, its fingerprint (listing and every clip's "
        "content; digests remembered in ~/.cache/urbansound) is used as well",
    )


def add_submit_parser(sub, d) -> None:
    sb = sub.add_parser(
        "submit",
        help="compile and submit the pipeline to a Kubeflow cluster (a study: "
        "`urbansound study SPEC --submit`)",
    )
    add_cluster_target(sb)
    sb.add_argument(
        "--data",
        required=True,
        help="dataset root as the pods see it (a mounted volume or gs:// path)",
    )
    sb.add_argument("--image", help="component image (default urbansound:latest)")
    sb.add_argument("--folds", type=folds_arg, default=[])
    add_options(sb, data_options() + training_options(d))
    add_tracking_uri(sb, "MLflow server the pods can reach", default="")
    add_beam_options(sb, checked=False)
    add_pvc(sb)
    add_data_version(sb)
    sb.add_argument("--no-cache", action="store_true", help="run every task again")
    add_retries(sb)


def cmd_compile(args) -> int:
    from urbansound.components import DEFAULT_IMAGE
    from urbansound.pipeline.kubeflow_runner import check_image, compile_pipeline

    if args.image is not None:
        check_image(args.image)
    from urbansound.outputs import check_outputs

    # an earlier compile's YAML may be replaced; any other file (a README, a config) not
    check_outputs(
        [("the pipeline YAML", args.output)],
        ours=_is_pipeline_yaml,
        command="urbansound compile",
        hint="choose another -o",
    )
    path = compile_pipeline(
        args.output, image=args.image or DEFAULT_IMAGE, cluster=cluster_options(args)
    )
    mounts = "".join(f", mounts {name} at {mount}" for name, mount in args.pvc)
    retries = f", {args.retries} retries of a failed task" if args.retries else ""
    print(f"wrote {path}{mounts}{retries}")
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


def submit_cache_key(args, config) -> str:
    """``--data-version`` and, when ``--data`` is readable here, its fingerprint (listing
    and every clip's content, as ``run``'s; the pods' copy is assumed to be the same;
    digests remembered in :func:`urbansound.content_hash.user_cache_dir`); a warning when
    neither is known."""
    from urbansound.components.progress import progress_line
    from urbansound.content_hash import cache_file_for, user_cache_dir
    from urbansound.dataset import dataset_fingerprint
    from urbansound.pipeline import preflight
    from urbansound.pipeline.kubeflow_runner import cache_key

    local = ""
    if "://" not in args.data and Path(args.data).exists():
        clips, _, _ = preflight.check_dataset(
            Path(args.data), args.folds, config.train.validation, config.data
        )
        local = dataset_fingerprint(
            clips,
            cache_file=cache_file_for(user_cache_dir(), args.data),
            progress=progress_line(
                "dataset fingerprint", interactive=sys.stdout.isatty(), after_s=2.0
            ),
        )
        print(f"dataset {args.data} is readable here: {len(clips)} clips, fingerprint {local}")
    key = cache_key(data_version=args.data_version, local_fingerprint=local)
    if not key and not args.no_cache:
        print(
            f"warning: {args.data} is not readable here and no --data-version was given: "
            f"kfp's cache cannot tell a changed dataset at the same path (give "
            f"--data-version, or --no-cache)",
            file=sys.stderr,
        )
    return key


def check_cluster_args(args) -> list[str]:
    """Every argument of a submission that needs no connection and no dataset (``submit``,
    ``study --submit``): host, image, data path, version, experiment, roots, the Beam
    options and the claims ``--data`` lies under; ConfigError (one line) otherwise.
    Returns the Beam options the features stage gets, as the pods get them."""
    from urbansound.pipeline.kubeflow_runner import check_data_on_volumes, check_submit_args
    from urbansound.pipeline.preflight import check_beam_args

    check_submit_args(
        host=args.host,
        image=args.image,
        data_root=args.data,
        data_version=args.data_version,
        pipeline_root=args.pipeline_root,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
    )
    beam_options = beam_args(args, check_scheduler=False)
    check_beam_args(beam_options, local=False)
    check_data_on_volumes(args.data, args.pvc)
    return beam_options


def cluster_options(args):
    """The :class:`~urbansound.pipeline.pipeline.ClusterOptions` of ``--pvc``,
    ``--retries`` and ``--no-cache`` (the cluster's requests and limits per task)."""
    from urbansound.pipeline.pipeline import ClusterOptions

    return ClusterOptions(
        pvcs=tuple(args.pvc),
        retries=args.retries,
        caching=not getattr(args, "no_cache", False),
    )


def compile_and_submit(
    args, write_package, *, config, beam_options, fingerprint, strict=False, run_name=None
):
    """``write_package(path)`` compiled into a temporary folder and submitted with the
    arguments ``args`` names (``config`` None: a study's package, its configurations
    compiled in); kfp's RunPipelineResult."""
    import tempfile

    from urbansound.pipeline.kubeflow_runner import submit

    with tempfile.TemporaryDirectory() as tmp:
        package = write_package(os.path.join(tmp, "pipeline.yaml"))
        return submit(
            args.host,
            data_root=args.data,
            package_path=package,
            experiment=args.experiment,
            pipeline_root=args.pipeline_root,
            config=config,
            test_folds=args.folds,
            tracking_uri=args.tracking_uri,
            beam_args=beam_options,
            strict=strict,
            run_name=run_name,
            dataset_fingerprint=fingerprint,
        )


def cmd_submit(args) -> int:
    from urbansound.components import DEFAULT_IMAGE
    from urbansound.pipeline.kubeflow_runner import compile_pipeline

    # every argument first: a typo costs no connection, no dataset listing, no compile
    beam_options = check_cluster_args(args)
    config = resolve_data(config_from_args(args, demo=False), Path(args.data), args)
    config = resolve_init_from(config, args, None)
    fingerprint = submit_cache_key(args, config)
    result = compile_and_submit(
        args,
        lambda path: compile_pipeline(
            path, image=args.image or DEFAULT_IMAGE, config=config, cluster=cluster_options(args)
        ),
        config=config,
        beam_options=beam_options,
        fingerprint=fingerprint,
    )
    print(f"submitted run {result.run_id} to {args.host} (experiment {args.experiment!r})")
    return EXIT_OK


COMMANDS = {
    "compile": Command(add_compile_parser, cmd_compile),
    "submit": Command(add_submit_parser, cmd_submit),
}
