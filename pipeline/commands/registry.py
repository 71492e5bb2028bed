"""``urbansound register`` and ``train-final``: models into the MLflow registry."""

from __future__ import annotations

from pathlib import Path

from urbansound.pipeline.commands.options import (
    EXIT_OK,
    RECIPE,
    STORE_HELP,
    Command,
    add_options,
    add_tracking_uri,
    all_options,
    apply_options,
    config_from_args,
    data_options,
    given,
    training_options,
)
from urbansound.pipeline.commands.output import quiet_libraries
from urbansound.pipeline.commands.resolve import (
    CONTENT_DIGESTS,
    legacy_only,
    resolve_init_from,
    with_deformation_cache,
)


def add_register_parser(sub, d) -> None:
    p = sub.add_parser(
        "register",
        help="register a run's model in the MLflow model registry",
        description="Register the model of an MLflow run as a new version of NAME. RUN_ID is "
        "a fold run, or a pipeline (parent) run: then the fold with the highest "
        "test_accuracy (or --fold). Prints the models:/ URI, which "
        "'urbansound predict' and 'mlflow models serve' take.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="a pipeline run or a fold run")
    p.add_argument("--name", required=True, help="registered model name")
    p.add_argument("--alias", help="alias for the new version (e.g. champion)")
    p.add_argument(
        "--fold",
        type=int,
        metavar="K",
        help="of a pipeline run, register test fold K's model (default: the best)",
    )
    add_tracking_uri(p, STORE_HELP)


@quiet_libraries("register")
def cmd_register(args) -> int:
    """Exit 0 with the URI printed last; 2 for an unknown run, fold or a run without a
    model (one line)."""
    from urbansound.pipeline.registry import register

    done = register(
        args.run_id, args.name, alias=args.alias, fold=args.fold, tracking_uri=args.tracking_uri
    )
    accuracy = (
        "no test_accuracy"
        if done.test_accuracy is None
        else f"test_accuracy {done.test_accuracy:.3f}"
    )
    if done.parent_run_id:
        print(
            f"pipeline run {done.parent_run_id}: fold {done.fold} ({accuracy}, "
            f"{done.chosen_by}): fold run {done.run_id}"
        )
    else:
        print(f"run {done.run_id}" + (f" (fold {done.fold}, {accuracy})" if done.fold else ""))
    print(
        f"registered as {done.name} version {done.version}"
        + (f", alias {done.alias}" if done.alias else "")
    )
    print(done.uri)
    return EXIT_OK


def add_train_final_parser(sub, d) -> None:
    p = sub.add_parser(
        "train-final",
        help="train one model on every fold (to deploy) and log/register it",
        description="Train one model on all folds of --data with the settings of a finished "
        "pipeline run (--from-run) or the usual training options, log it to MLflow "
        "(tag urbansound.kind=final) and, with --name, register it. There is no "
        "test fold, so it has no accuracy of its own: the cross-validated run's "
        "accuracy is its expected accuracy. With the validation-fold protocol the "
        "epochs are the median best epoch of --from-run's folds (else the recipe's).",
    )
    p.add_argument("--data", required=True, help="the dataset (any layout `run` takes)")
    p.add_argument(
        "--from-run",
        metavar="RUN_ID",
        help="a pipeline (or fold) run: train with its logged configuration "
        "(--set and the other options given still override)",
    )
    add_options(p, data_options() + training_options(d))
    p.add_argument("--name", help="register the model under this name")
    p.add_argument("--alias", help="with --name: alias for the new version (e.g. champion)")
    p.add_argument(
        "--out",
        default="urbansound-final",
        help="waveforms, features and model.keras go here (default ./urbansound-final)",
    )
    add_tracking_uri(p, STORE_HELP)


@quiet_libraries("train-final")
def cmd_train_final(args) -> int:
    """Exit 0 with the model's URI printed last; 2 for bad data or an unknown run."""
    from urbansound.components.final_logging import log_final_run
    from urbansound.config import ConfigError
    from urbansound.outputs import claim_folder
    from urbansound.pipeline.registry import KIND_TAG, register_final, run_settings
    from urbansound.stages import train_final_from
    from urbansound.training import MODEL_FILE

    median_epoch, uri = None, args.tracking_uri
    if args.alias and not args.name:
        raise ConfigError("--alias needs --name")
    if args.from_run:
        recipe = [o.flag for o in all_options() if o.key == RECIPE and given(args, o)]
        if recipe:  # a recipe is not a value over the run's: it would replace them all
            raise ConfigError(
                f"{recipe[0]} and --from-run: the run's configuration names the "
                f"model and its recipe; change single values with the training "
                f"options or --set"
            )
        config, median_epoch, uri = run_settings(args.from_run, args.tracking_uri)
        config = apply_options(config, args)  # every option given, over the run's values
    else:
        config = config_from_args(args, demo=False)
    out = Path(args.out).resolve()
    claim_folder(
        out,
        "train-final",
        inputs=[("--data", args.data)],
        legacy=legacy_only(folders=("waveforms", "features", "model", "cache", "init-model")),
    )
    config = resolve_init_from(config, args, out)
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
    config, folds, final = train_final_from(
        args.data,
        out,
        config=with_deformation_cache(config, out),
        settings_given=[key for key, _ in args.settings],
        digest_folder=out / CONTENT_DIGESTS,
        say=print,
        verbose=2 if args.verbose else 0,
    )
    history = final["history"]
    print(
        f"trained {config.train.model} on folds {','.join(map(str, folds))}: "
        f"{final['n_train']} examples ({final['n_clips']} clips), {final['epochs']} epochs, "
        f"final training accuracy {history['accuracy'][-1]:.3f} -> {out / 'model' / MODEL_FILE}"
    )
    print(
        "no test fold, so no accuracy of its own: its expected accuracy is the "
        + (
            f"cross-validated run's ({args.from_run})"
            if args.from_run
            else "cross-validated accuracy of a `urbansound run` with the same settings"
        )
    )
    if not uri:
        from urbansound.pipeline.local_runner import default_tracking_uri

        uri = default_tracking_uri(".")
    run_id = log_final_run(
        uri,
        out / "model",
        config=config,
        data_root=str(Path(args.data).resolve()),
        folds=folds,
        final=final,
        run_name=f"final · {config.train.model}",
        tags={
            KIND_TAG: "final",
            **({"urbansound.from_run": args.from_run} if args.from_run else {}),
        },
    )
    print(f"MLflow run {run_id} ({uri})")
    if not args.name:
        print(f"runs:/{run_id}/model")
        return EXIT_OK
    done = register_final(
        run_id, args.name, alias=args.alias, tracking_uri=uri, cross_validated_run=args.from_run
    )
    print(
        f"registered as {done.name} version {done.version}"
        + (f", alias {done.alias}" if done.alias else "")
    )
    print(done.uri)
    return EXIT_OK


COMMANDS = {
    "register": Command(add_register_parser, cmd_register),
    "train-final": Command(add_train_final_parser, cmd_train_final),
}
