"""Every plot returns a Figure with axes and saves to PNG."""

from __future__ import annotations

import polars as pl
import pytest
from matplotlib.figure import Figure

from sim import plots
from sim.analysis.aggregate import curve_bands, sweep_curves, sweep_metrics
from sim.analysis.cascades import tree_edges
from sim.analysis.fits import fit_prevalence
from sim.analysis.loading import load_sweep
from sim.analysis.mutation import drift_by_hop, entry_drift
from sim.analysis.prevalence import prevalence


def _check(fig: Figure, path) -> None:
    assert isinstance(fig, Figure)
    assert fig.axes
    fig.savefig(path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_plots(contagion_run, tmp_path):
    run = contagion_run
    _check(plots.network_states(run, [0, 5, 20]), tmp_path / "net.png")
    tree = tree_edges(run.transmissions, run.agents, "influence")
    _check(plots.transmission_tree(tree), tmp_path / "tree.png")
    drift = entry_drift(run.memories, run.transmissions, run.agents)
    _check(plots.mutation_by_hop(drift_by_hop(drift)), tmp_path / "mut.png")
    _check(plots.mutation_by_hop(drift_by_hop(drift), metric="jaccard"), tmp_path / "jac.png")
    fit = fit_prevalence(prevalence(run.steps, run.n_agents), run.n_agents, model="sir")
    _check(plots.fitted_curve(fit), tmp_path / "fit.png")
    with pytest.raises(ValueError, match="metric = 'x'"):
        plots.mutation_by_hop(drift_by_hop(drift), metric="x")
    with pytest.raises(ValueError, match="steps"):
        plots.network_states(run, [])


def test_sweep_plots(sweep_dir, tmp_path):
    sweep = load_sweep(sweep_dir)
    bands = curve_bands(sweep_curves(sweep), ["topology"])
    fig = plots.spread_curves(bands, group="topology")
    assert len(fig.axes[0].lines) == 2
    _check(fig, tmp_path / "bands.png")
    metrics = sweep_metrics(sweep, fit=False)
    fig = plots.heatmap(metrics, "policy.beta", "topology", "final_size")
    _check(fig, tmp_path / "heat.png")
    with pytest.raises(ValueError, match="not in the frame"):
        plots.heatmap(metrics, "nope", "topology", "final_size")
    curves = pl.DataFrame(
        {
            "label": ["a", "a", "b", "b"],
            "meme_id": ["m"] * 4,
            "step": [0, 1, 0, 1],
            "prevalence": [0.1, 0.2, 0.1, 0.4],
        }
    )
    _check(plots.side_by_side_curves(curves), tmp_path / "side.png")
