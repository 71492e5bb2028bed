"""The project's import graph has no circle (that the library imports neither kfp nor
mlflow is test_layers').

Imports inside functions count too: a circle hidden by a function-level import is
still a circle (the two modules cannot be understood, or moved, one without the other).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "urbansound": "urbansound",
    "urbansound.components": "components",
    "urbansound.pipeline": "pipeline",
}
"""Installed package -> its folder in the repository (setup.py's package_dir)."""


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = package.split(".") + list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imported_names(
    path: Path, module: str, is_package: bool, modules: frozenset = frozenset()
) -> list[str]:
    """Every dotted name imported anywhere in the file (module level or inside functions).

    ``from a import b`` yields ``a.b`` when that is one of ``modules`` (the name taken
    is the submodule), else ``a``; relative imports are resolved against ``module``.
    """
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.append(full if full in modules else base)
    return names


def _graph() -> dict[str, set[str]]:
    """Module -> the in-project modules it imports (a package's ``__init__`` is its own node)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for name in _imported_names(path, module, path.name == "__init__.py", frozenset(modules)):
            if name in modules and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle as [a, b, ..., a], or None (depth-first search, three colours)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(module):
        colour[module] = GREY
        stack.append(module)
        for target in sorted(graph[module]):
            if colour[target] == GREY:
                return stack[stack.index(target) :] + [target]
            if colour[target] == WHITE:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        colour[module] = BLACK
        return None

    for module in sorted(graph):
        if colour[module] == WHITE:
            found = visit(module)
            if found:
                return found
    return None


def test_the_graph_sees_function_level_imports():
    # Guard the test itself: a circle hidden inside a function must be found.
    graph = {"a": {"b"}, "b": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    source = "def f():\n    from urbansound.config import Config\n"
    path = ROOT / "tests" / "_import_graph_probe.py"
    try:
        path.write_text(source)
        assert "urbansound.config" in _imported_names(path, "urbansound.x", False)
    finally:
        path.unlink()


def test_no_import_circle():
    graph = _graph()
    assert len(graph) > 20  # the walk found the packages
    cycle = _find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)
