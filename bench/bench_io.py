"""What every benchmark does last: write its JSON result and say where."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(path: str | Path, result: dict) -> None:
    """Write ``result`` as indented JSON to ``path`` (folders made) and print the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"written {path}")
