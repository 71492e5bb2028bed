"""urbansound: UrbanSound8K classification as an orchestrated Kubeflow pipeline.

The metadata lives here (the user asked for a setup.py); pyproject.toml names the build
backend and configures the linters.  The folders ``pipeline/`` and ``components/`` are
installed as ``urbansound.pipeline`` and ``urbansound.components``, so nothing but
``urbansound`` lands at the top level of site-packages.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# Folder in the repository -> its package name once installed.
SUBPACKAGE_FOLDERS = {"urbansound.pipeline": "pipeline", "urbansound.components": "components"}


def pinned_requirements():
    """The tested version set (requirements.txt), minus muda which installs with --no-deps."""
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def packages():
    """``urbansound`` and its subpackages, with the two folders mapped under it."""
    found = find_packages(include=["urbansound", "urbansound.*"])
    for package, folder in SUBPACKAGE_FOLDERS.items():
        found += [package] + [f"{package}.{sub}" for sub in find_packages(folder)]
    return found


setup(
    name="urbansound",
    version="0.1.0",
    description="UrbanSound8K → log-mel → per-fold Keras CNNs, as a Kubeflow Pipelines v2 pipeline "
    "with Apache Beam features and MLflow tracking",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The library (urbansound), the KFP component adapters and the pipeline wiring.
    packages=packages(),
    package_dir=SUBPACKAGE_FOLDERS,
    install_requires=pinned_requirements(),
    extras_require={
        "test": ["pytest>=8"],
        "dask": ["dask[distributed]>=2024.1"],
        "lint": ["ruff==0.17.6", "mypy==2.4.1"],
    },
    entry_points={"console_scripts": ["urbansound=urbansound.pipeline.cli:main"]},
)
