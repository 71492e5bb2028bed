"""Small helpers for KFP output artifacts."""

import json
import os


def write_metric_files(*artifacts) -> None:
    """Write each Metrics/ClassificationMetrics artifact's metadata to its file.

    The numbers live in the artifact's metadata; the file is written too because
    kfp's local cache treats an output whose file is missing as a cache miss, so a
    finished fold would be trained again on a rerun.
    """
    for artifact in artifacts:
        os.makedirs(os.path.dirname(artifact.path) or ".", exist_ok=True)
        with open(artifact.path, "w") as fh:
            json.dump(dict(artifact.metadata), fh)
