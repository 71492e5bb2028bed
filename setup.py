"""urbansound: UrbanSound8K classification as an orchestrated Kubeflow pipeline."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def pinned_requirements():
    """The tested version set (requirements.txt), minus muda which installs with --no-deps."""
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [l.split("#")[0].strip() for l in lines if l.split("#")[0].strip()]


setup(
    name="urbansound",
    version="0.1.0",
    description="UrbanSound8K → log-mel → per-fold Keras CNNs, as a Kubeflow Pipelines v2 pipeline "
                "with Apache Beam features and MLflow tracking",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The library (urbansound), the KFP component adapters and the pipeline wiring.
    packages=find_packages(include=["urbansound", "urbansound.*", "components", "components.*",
                                    "pipeline", "pipeline.*"]),
    install_requires=pinned_requirements(),
    extras_require={"test": ["pytest>=8"], "dask": ["dask[distributed]>=2024.1"]},
    entry_points={"console_scripts": ["urbansound=pipeline.cli:main"]},
)
