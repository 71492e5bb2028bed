"""KFP component: augment + features (Apache Beam, log-mel 128×128)."""
from typing import List

from kfp.dsl import Dataset, Input, Output


def features_component(waveforms: Input[Dataset], config_json: str, beam_args: List[str],
                       features: Output[Dataset]):
    """Run the Beam features pipeline; ``beam_args`` empty means the local DirectRunner."""
    from components.errors import user_errors
    from urbansound.beam_features import default_beam_args, run_features
    from urbansound.config import Config

    with user_errors("features"):
        manifest = run_features(waveforms.path, features.path, config=Config.from_json(config_json),
                                beam_args=list(beam_args) or default_beam_args())
        for warning in manifest.get("warnings", []):
            print(f"warning: {warning}")
    features.metadata.update({"folds": manifest["folds"], "deformations": manifest["deformations"],
                              "config_fingerprint": manifest["config_fingerprint"]})
