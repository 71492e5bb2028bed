"""A study's pipeline: one ingest, one features stage per feature group, and for every
configuration its own fan-out over the test folds, then one comparison.

::

    mlflow-start (study run), mlflow-<configuration> (its run under the study's), ...
    ingest ─┬─ features (log-mels, no augmentation) ─┬─ configuration A: start → ParallelFor(fold){train} → evaluate ─┐
            │                                        └─ configuration B: start → ParallelFor(fold){train} → evaluate ─┤
            └─ features (log-mels + study's 4)     ──── configuration C: …                                         ─┴─ compare
    mlflow-finish (exit handler: the study run and anything still open under it)

A deformation ablation (``study deformations``) adds, per model, a policy task after
its configurations' evaluations (their validation folds' counts in, the per-class policy
and the configuration it trains out), and that configuration's run, features, fold loop
and evaluation; the loop and everything after it (the comparison) sit in a condition
on the policy's output that always holds, so that they get it as a DAG input::

    evaluate-<model>, evaluate-<model>-<family> × 5 ─ policy-<model> ─┬─ features-<policy>
                                                                      ├─ mlflow-<policy>
                                                                      └─ if: ParallelFor(fold){train} → evaluate → compare

The configurations are known when the pipeline is built (a study is compiled for its
spec), so each gets its own tasks, named for it: a ParallelFor over test folds inside a
loop written out at build time.  A flat ParallelFor over (configuration, fold) pairs
would need each iteration to pick its features artifact at run time, and the fan-in per
configuration to split one collected list; kfp's local runner and a cluster both run this
shape as they run ``run``'s.  Each feature group's features task is wired to every
configuration of the group: computed once, read by all of them.  Wiring only; the
components are :mod:`urbansound.components` and :mod:`urbansound.components.study`.
"""

# No `from __future__ import annotations`: kfp reads the pipeline's parameter types at runtime.
import contextlib
import json
import os

from urbansound.components import DEFAULT_IMAGE, build_components, build_study_components
from urbansound.pipeline.pipeline import (
    ClusterOptions,
    _features_task,
    _finish_task,
    _for_cluster,
    _ingest_task,
    _train_task,
)
from urbansound.study import Study, feature_groups, ingest_config

STUDY_PIPELINE_NAME = "urbansound-study"


def create_study_pipeline(
    study: Study,
    *,
    image: str = DEFAULT_IMAGE,
    gpu: bool = True,
    parallelism: int = 0,
    cluster: ClusterOptions | None = None,
):
    """Build the KFP pipeline function of ``study`` (arguments as
    :func:`urbansound.pipeline.pipeline.create_pipeline`'s; ``parallelism`` bounds each
    configuration's fold loop)."""
    from kfp import dsl

    c = build_components(image)
    s = build_study_components(image)
    groups = feature_groups(study)
    group_of = {member: g for g in groups for member in g.members}
    study_json = study.to_json()
    ingest_json = ingest_config(study).to_json()
    ablations_json = (
        json.dumps(
            [
                {
                    "model": a.model,
                    "names": [
                        study.configurations[a.baseline].name,
                        study.configurations[a.everything].name,
                        a.policy.name,
                    ],
                }
                for a in study.ablations
            ]
        )
        if study.ablations
        else ""
    )

    @dsl.pipeline(
        name=STUDY_PIPELINE_NAME,
        description=f"urbansound study {study.name}: {len(study.configurations)} "
        f"configurations × test folds, one comparison",
    )
    def urbansound_study(
        data_root: str,
        test_folds: list[int] = [],  # noqa: B006
        strict: bool = False,
        beam_args: list[str] = [],  # noqa: B006
        tracking_uri: str = "",
        run_key: str = "",
        dataset_fingerprint: str = "",
        digest_cache: str = "",
    ):
        job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        start = s.start_study(
            study_json=study_json,
            data_root=data_root,
            tracking_uri=tracking_uri,
            run_key=run_key,
            job_id=job_id,
        )
        start.set_display_name("mlflow-start").set_caching_options(False)
        _for_cluster(start, "mlflow", cluster)
        # Outside the exit handler, as `start` is: kfp 2.17's local runner gives a loop the
        # loop item in place of any output of a task beside it in the same DAG (here: the
        # configuration's run id), so the loops must get the ids as DAG inputs.
        config_runs = []
        for configuration in study.configurations:
            run = s.start_configuration(
                config_json=configuration.config.to_json(),
                name=configuration.name,
                slug=configuration.slug,
                data_root=data_root,
                tracking_uri=tracking_uri,
                run_key=run_key,
                job_id=job_id,
                study_run_id=start.output,
            )
            run.set_display_name(f"mlflow-{configuration.slug}").set_caching_options(False)
            config_runs.append(_for_cluster(run, "mlflow", cluster))
        finish = _finish_task(c, cluster, tracking_uri=tracking_uri, run_key=run_key, job_id=job_id)
        with dsl.ExitHandler(finish, name="tracked-study"):
            # no MLflow run in ingest's inputs: its output (and so the features' cache
            # entries) does not depend on the study; the comparison logs the ingest report
            ingest = _ingest_task(
                c,
                cluster,
                data_root=data_root,
                config_json=ingest_json,
                test_folds=test_folds,
                strict=strict,
                tracking_uri=tracking_uri,
                parent_run_id="",
                dataset_fingerprint=dataset_fingerprint,
                digest_cache=digest_cache,
            )
            features = {}
            for group in groups:
                task = _features_task(
                    c, cluster, ingest, config_json=group.config.to_json(), beam_args=beam_args
                )
                features[group.slug] = task.set_display_name(f"features-{group.slug}")

            def train_and_evaluate(configuration, config_json, features_task, run):
                """The configuration's fold loop and evaluation; its comparison row."""
                name = configuration.slug
                with dsl.ParallelFor(
                    ingest.outputs["Output"], parallelism=parallelism, name=f"folds-{name}"
                ) as fold:
                    train = _train_task(
                        c,
                        cluster,
                        gpu=gpu,
                        features=features_task.outputs["features"],
                        test_fold=fold,
                        config_json=config_json,
                        tracking_uri=tracking_uri,
                        parent_run_id=run.output,
                    )
                    train.set_display_name(f"train-{name}")
                evaluate = s.evaluate_configuration(
                    fold_results=dsl.Collected(train.outputs["fold_result"]),
                    waveforms=ingest.outputs["waveforms"],
                    config_json=config_json,
                    name=configuration.name,
                    model=configuration.model,
                    augmentation=configuration.augmentation,
                    tracking_uri=tracking_uri,
                    parent_run_id=run.output,
                )
                evaluate.set_display_name(f"evaluate-{name}")
                _for_cluster(evaluate, "evaluate", cluster)
                return evaluate.outputs["Output"]

            def policy_configuration(ablation, rows, policies):
                """A deformation ablation's policy task (validation counts of its
                configurations in; the policy's configuration out), then that
                configuration's run, features, fold loop and evaluation."""
                template = ablation.policy
                policy = s.deformation_policy(
                    rows=[rows[ablation.baseline], *(rows[i] for _, i in ablation.families)],
                    ablation_json=json.dumps(ablation.to_dict(), sort_keys=True),
                    tracking_uri=tracking_uri,
                    study_run_id=start.output,
                )
                policy.set_display_name(f"policy-{ablation.model}")
                _for_cluster(policy, "evaluate", cluster)
                config_json = policy.outputs["Output"]
                run = s.start_configuration(
                    config_json=config_json,
                    name=template.name,
                    slug=template.slug,
                    data_root=data_root,
                    tracking_uri=tracking_uri,
                    run_key=run_key,
                    job_id=job_id,
                    study_run_id=start.output,
                )
                run.set_display_name(f"mlflow-{template.slug}").set_caching_options(False)
                _for_cluster(run, "mlflow", cluster)
                policy_features = _features_task(
                    c, cluster, ingest, config_json=config_json, beam_args=beam_args
                )
                policy_features.set_display_name(f"features-{template.slug}")
                # A condition that always holds (the policy's configuration is never
                # empty): its sub-DAG gets the policy's outputs as DAG inputs, which
                # kfp 2.17's local runner passes into a loop (a sibling task's output
                # it would replace with the loop item); what reads the evaluation
                # (the comparison) stays inside it.
                policies.enter_context(dsl.If(config_json != "", name=f"with-{template.slug}"))
                return train_and_evaluate(template, config_json, policy_features, run)

            rows = [
                train_and_evaluate(
                    configuration,
                    configuration.config.to_json(),
                    features[group_of[i].slug],
                    config_runs[i],
                )
                for i, configuration in enumerate(study.configurations)
            ]
            with contextlib.ExitStack() as policies:
                for ablation in study.ablations:
                    rows.append(policy_configuration(ablation, rows, policies))
                compare = s.compare_study(
                    rows=rows,
                    waveforms=ingest.outputs["waveforms"],
                    data_root=data_root,
                    tracking_uri=tracking_uri,
                    study_run_id=start.output,
                    ablations_json=ablations_json,
                )
                compare.set_display_name("compare")
                _for_cluster(compare, "evaluate", cluster)

    return urbansound_study


def compile_study(
    path: str | os.PathLike,
    study: Study,
    *,
    image: str = DEFAULT_IMAGE,
    parallelism: int = 0,
    cluster: ClusterOptions | None = None,
) -> str:
    """Write the study's IR YAML for a cluster (GPU per train task, ``cluster``'s
    requests, limits and retries: :class:`ClusterOptions`' defaults when None); return
    the path."""
    from kfp import compiler

    compiler.Compiler().compile(
        create_study_pipeline(
            study,
            image=image,
            gpu=True,
            parallelism=parallelism,
            cluster=cluster if cluster is not None else ClusterOptions(),
        ),
        os.fspath(path),
    )
    return os.fspath(path)
