"""KFP component: augment + features (Apache Beam, log-mel 128×128)."""

from typing import List

from kfp.dsl import Dataset, Input, Output


def features_component(
    waveforms: Input[Dataset],
    config_json: str,
    beam_args: List[str],
    test_folds: List[int],
    features: Output[Dataset],
):
    """Run the Beam features pipeline; ``beam_args`` empty means the local DirectRunner.
    Only the folds that train one of ``test_folds``' models are deformed."""
    from urbansound.beam_features import default_beam_args, run_features
    from urbansound.components.errors import user_errors
    from urbansound.components.progress import progress_line
    from urbansound.config import Config
    from urbansound.folds import folds_to_augment
    from urbansound.manifest import read_manifest

    config = Config.from_json(config_json)
    deform_folds = None
    if config.augment.all_deformations():
        present = sorted(int(k) for k in read_manifest(waveforms.path)["folds"])
        deform_folds = folds_to_augment(
            [int(f) for f in test_folds],
            present,
            seed=config.train.seed,
            validation=config.train.validation,
        )
        print(f"deforming the clips of folds {deform_folds} (the folds that train)")
    with user_errors("features"):
        manifest = run_features(
            waveforms.path,
            features.path,
            config=config,
            beam_args=list(beam_args) or default_beam_args(),
            deform_folds=deform_folds,
            progress=progress_line("features"),
        )
        for warning in manifest.get("warnings", []):
            print(f"warning: {warning}")
    features.metadata.update(
        {
            "folds": manifest["folds"],
            "deformations": manifest["deformations"],
            "config_fingerprint": manifest["config_fingerprint"],
        }
    )
