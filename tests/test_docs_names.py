"""Every module, class and function the README and docs/ name by dotted path exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/extending.md")
PACKAGES = ("sim", "agents", "topologies", "experiments")


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_dotted_names_in_the_docs_exist():
    pattern = re.compile(rf"`((?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)+)")
    names = {
        name
        for doc in DOCS
        for name in pattern.findall((ROOT / doc).read_text())
        if not name.endswith(".parquet")  # a table file such as agents.parquet
    }
    assert len(names) > 30
    assert "experiments.fork.fork_run" in names
    assert sorted(n for n in names if not _resolve(n)) == []
