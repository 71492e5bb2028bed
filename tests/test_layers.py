"""The three layers stay apart: the library never imports kfp or mlflow."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


UPPER_LAYERS = ("urbansound.components", "urbansound.pipeline")
"""Installed under the library's name (package_dir), but layers above it all the same."""


def _top(name: str) -> str:
    """``kfp`` for ``kfp.dsl``; ``urbansound.pipeline`` for ``urbansound.pipeline.cli``."""
    upper = [layer for layer in UPPER_LAYERS if name == layer or name.startswith(layer + ".")]
    return upper[0] if upper else name.split(".")[0]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {_top(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(_top(node.module))
            # ``from urbansound import pipeline`` names the layer in the imported names
            names |= {_top(f"{node.module}.{alias.name}") for alias in node.names} & set(
                UPPER_LAYERS
            )
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "urbansound").glob("*.py")), ids=lambda p: p.name)
def test_library_module_imports_neither_kfp_nor_mlflow_nor_the_upper_layers(path):
    assert not _imported_modules(path) & {"kfp", "mlflow", *UPPER_LAYERS}


MLFLOW_ADAPTERS = {
    "tracking_store.py",
    "runs.py",
    "fold_logging.py",
    "final_logging.py",
    "model_logging.py",
    "serving.py",
}
"""The components that talk to MLflow (store, runs, a fold's and a final run's logging, the
logged model and its pyfunc); the KFP adapters (ingest, train, ...) go through them."""


def test_only_the_tracking_adapters_import_mlflow():
    users = {p.name for p in (ROOT / "components").glob("*.py") if "mlflow" in _imported_modules(p)}
    assert users and users <= MLFLOW_ADAPTERS


def test_importing_the_library_and_the_cli_loads_no_heavy_framework():
    code = (
        "import sys, urbansound.config, urbansound.audio, urbansound.features, "
        "urbansound.models, urbansound.dataset, urbansound.ingest, urbansound.training, "
        "urbansound.evaluation, urbansound.pipeline.cli; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow', 'kfp', 'librosa') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_upper_layers_are_installed_under_the_library_name_only():
    """``pip install`` puts nothing but ``urbansound`` at the top level (no ``pipeline``)."""
    code = (
        "import importlib.util as u, urbansound.pipeline.cli, urbansound.components.train; "
        "print([u.find_spec(n) is None for n in ('pipeline', 'components')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT.parent
    )
    assert out.stdout.strip() == "[True, True]"
