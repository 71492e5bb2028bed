"""Thin KFP v2 adapters: each component maps its artifacts to one library call.

The functions in this package are plain typed Python; :func:`build_components`
turns them into ``@dsl.component`` objects for one container image, so the same
definitions serve kfp's local runner (this environment) and a cluster (the
project's image, with kfp already installed in it).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_IMAGE = "urbansound:latest"
"""Image built from the repository's Dockerfile (``docker build -t urbansound:latest .``)."""


@dataclass(frozen=True)
class Components:
    start_run: object
    ingest: object
    features: object
    train: object
    evaluate: object
    finish_run: object


def build_components(image: str = DEFAULT_IMAGE) -> Components:
    """KFP components of every stage, all running in ``image``."""
    from kfp import dsl

    from urbansound.components.evaluate import evaluate_component
    from urbansound.components.features import features_component
    from urbansound.components.ingest import ingest_component
    from urbansound.components.run_tracking import finish_run_component, start_run_component
    from urbansound.components.train import train_component

    def make(func):
        # install_kfp_package=False: the image already has the pinned kfp; otherwise every
        # pod would pip-install kfp at start-up (and fail without network).
        return dsl.component(func, base_image=image, install_kfp_package=False)

    return Components(
        start_run=make(start_run_component),
        ingest=make(ingest_component),
        features=make(features_component),
        train=make(train_component),
        evaluate=make(evaluate_component),
        finish_run=make(finish_run_component),
    )


@dataclass(frozen=True)
class StudyComponents:
    """What a study adds to :class:`Components` (:mod:`urbansound.components.study`)."""

    start_study: object
    start_configuration: object
    evaluate_configuration: object
    compare_study: object
    deformation_policy: object


def build_study_components(image: str = DEFAULT_IMAGE) -> StudyComponents:
    """KFP components of a study's own tasks, all running in ``image``."""
    from kfp import dsl

    from urbansound.components.study import (
        compare_study_component,
        deformation_policy_component,
        evaluate_configuration_component,
        start_configuration_component,
        start_study_component,
    )

    def make(func):
        return dsl.component(func, base_image=image, install_kfp_package=False)

    return StudyComponents(
        start_study=make(start_study_component),
        start_configuration=make(start_configuration_component),
        evaluate_configuration=make(evaluate_configuration_component),
        compare_study=make(compare_study_component),
        deformation_policy=make(deformation_policy_component),
    )
