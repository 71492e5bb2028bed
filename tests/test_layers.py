"""The three layers stay apart: the library never imports kfp or mlflow."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "urbansound").glob("*.py")), ids=lambda p: p.name)
def test_library_module_imports_neither_kfp_nor_mlflow_nor_the_upper_layers(path):
    assert not _imported_modules(path) & {"kfp", "mlflow", "components", "pipeline"}


MLFLOW_ADAPTERS = {"tracking_store.py", "runs.py", "fold_logging.py", "final_logging.py",
                   "model_logging.py", "serving.py"}
"""The components that talk to MLflow (store, runs, a fold's and a final run's logging, the
logged model and its pyfunc); the KFP adapters (ingest, train, ...) go through them."""


def test_only_the_tracking_adapters_import_mlflow():
    users = {p.name for p in (ROOT / "components").glob("*.py") if "mlflow" in _imported_modules(p)}
    assert users and users <= MLFLOW_ADAPTERS


def test_importing_the_library_and_the_cli_loads_no_heavy_framework():
    code = ("import sys, urbansound.config, urbansound.audio, urbansound.features, "
            "urbansound.models, urbansound.dataset, urbansound.ingest, urbansound.training, "
            "urbansound.evaluation, pipeline.cli; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow', 'kfp', 'librosa') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
