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
    "sim.plots",
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


def test_every_public_figure_name_is_exported():
    """``from sim import plots; plots.X`` reaches every public name of sim/plots/*.py."""
    import sim.plots

    public = set()
    for path in sorted((ROOT / "sim" / "plots").glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                public.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                public.update(t.id for t in targets if isinstance(t, ast.Name))
    public = {name for name in public if not name.startswith("_")}
    assert sorted(public ^ set(sim.plots.__all__)) == []
    # Every name sim/plots.py had before it became a package (notebooks, the report and
    # the dashboard import them) is still there.
    before = {
        "CENSORED_MARKER", "COUNT_STATES", "FUNNEL_STAGES", "MAX_LEGEND_INSIDE",
        "STATE_COLOURS", "STATE_ORDER", "STATE_STYLES", "UNDEFENDED_MARKER",
        "carrier_ring_width", "counts_per_step", "default_states", "defense_frontier_plot",
        "draw_network_states", "edge_segments", "fitted_curve", "funnel", "group_style",
        "heatmap", "memes_compared", "metric_by_parameter", "mutation_by_hop",
        "network_node_size", "network_states", "prevalence_curves", "side_by_side_curves",
        "spread_curves", "state_legend", "state_style", "transmission_tree",
    }  # fmt: skip
    assert sorted(before - public) == []


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
