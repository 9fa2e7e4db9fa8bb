"""The public face: each package's ``__all__`` resolves, and analysis is one import."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FACES = [
    "sim",
    "agents",
    "topologies",
    "experiments",
    "sim.analysis",
    "sim.guards",
    "topologies.graphs",
]


@pytest.mark.parametrize("package", FACES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(set(module.__all__), key=module.__all__.index)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []


def test_every_public_analysis_function_is_exported():
    import sim.analysis

    public = {
        node.name
        for path in sorted((ROOT / "sim" / "analysis").glob("*.py"))
        if path.name != "__init__.py"
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")
    }
    assert sorted(public - set(sim.analysis.__all__)) == []


def test_one_line_analysis_imports():
    from sim.analysis import load_run, prevalence, reproduction_number, run_metrics

    assert callable(load_run) and callable(prevalence)
    assert callable(reproduction_number) and callable(run_metrics)


def test_package_faces_load_lazily():
    code = (
        "import sys, sim.memory, agents.contagion, sim.analysis;"
        "print(sorted(m for m in ('sim.model', 'agents.llm_policy', 'matplotlib') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
