"""Every plot returns a Figure with axes and saves to PNG."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from analysis_tables import contagion_config
from matplotlib.figure import Figure

from experiments.runner import run_experiment
from sim import plots
from sim.analysis.aggregate import curve_bands, sweep_curves, sweep_metrics
from sim.analysis.cascades import tree_edges
from sim.analysis.fits import fit_prevalence
from sim.analysis.loading import load_run, load_sweep
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
    fig = plots.transmission_tree(tree)
    # One point per agent of the tree (plus any source outside it, drawn as a root), one
    # segment per infection edge, coloured by infection step.
    ax = fig.axes[0]
    sources = set(tree["source_agent"].drop_nulls().to_list()) - set(tree["agent_id"].to_list())
    n_nodes = tree.height + len(sources)
    assert ax.collections[1].get_offsets().shape == (n_nodes, 2)
    assert len(ax.collections[0].get_segments()) == tree["source_agent"].drop_nulls().len()
    assert ax.get_title() == f"Transmission tree ({n_nodes} nodes)"
    assert fig.axes[1].get_ylabel() == "infection step"
    _check(fig, tmp_path / "tree.png")
    drift = entry_drift(run.memories, run.transmissions, run.agents)
    by_hop = drift_by_hop(drift)
    fig = plots.mutation_by_hop(by_hop)
    ax = fig.axes[0]
    (bars,) = ax.containers  # one meme: one error-bar line of means, one point per hop
    line = bars.lines[0]
    part = by_hop.sort("hop")
    assert line.get_ydata().tolist() == pytest.approx(part["edit_mean"].to_list())
    assert ax.get_ylim()[0] == 0.0
    assert ax.get_ylabel() == "normalized edit distance\n(mean ± 1 sd over entries)"
    _check(fig, tmp_path / "mut.png")
    fig = plots.mutation_by_hop(by_hop, metric="jaccard")
    assert fig.axes[0].containers[0].lines[0].get_ydata().tolist() == pytest.approx(
        part["jaccard_mean"].to_list()
    )
    _check(fig, tmp_path / "jac.png")
    fit = fit_prevalence(prevalence(run.steps, run.n_agents), run.n_agents, model="sir")
    fig = plots.fitted_curve(fit)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["observed", "sir fit", "removed (observed)", "removed (fit)"]
    k = len(fit.t)
    assert ax.lines[1].get_ydata().tolist() == pytest.approx(list(fit.fitted[:k]))
    assert ax.get_title().endswith(f"RMSE={fit.rmse:.3g}")
    # A share axis from 0 to 1 with whole steps, as in every share plot: a fit to a flat
    # curve near 0 once filled the figure on an axis from 0 to 0.0125.
    assert ax.get_ylim() == (0.0, 1.0)
    assert all(float(t).is_integer() for t in ax.get_xticks())
    _check(fig, tmp_path / "fit.png")
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
    fig = plots.side_by_side_curves(curves)
    ax = fig.axes[0]
    assert [line.get_ydata().tolist() for line in ax.lines] == [[0.1, 0.2], [0.1, 0.4]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    _check(fig, tmp_path / "side.png")


def test_state_curves_legend_order_palette_and_visibility(contagion_run):
    run = contagion_run
    prev = prevalence(run.steps, run.n_agents)
    fig = plots.prevalence_curves(prev, title=f"{run.name}: meme 'influence'")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["exposed", "carrier", "adopter", "infected"]  # state order
    lines = {line.get_label(): line for line in ax.lines}
    assert {k: v.get_color() for k, v in lines.items()} == {
        s: plots.STATE_COLOURS[s] for s in labels
    }
    # Coinciding lines differ in dash pattern or width, and the wide band lies below.
    styles = {(v.get_linestyle(), v.get_linewidth()) for v in lines.values()}
    assert len(styles) == 4
    assert lines["infected"].get_zorder() < min(
        lines[s].get_zorder() for s in ("exposed", "carrier", "adopter")
    )
    assert ax.get_ylim() == (0.0, 1.0)
    assert ax.get_title() == f"{run.name}: meme 'influence'"


def test_heatmap_marks_never_and_fixes_the_scale():
    frame = pl.DataFrame(
        {
            "beta": [0.1, 0.1, 0.3, 0.3, 0.1, 0.3],
            "graph": ["ring", "ring", "ring", "ring", "ws", "ws"],
            "seed": [0, 1, 0, 1, 0, 0],
            "t50": [None, None, 4, None, 9, 3],
            "final_size": [0.1, 0.2, 0.6, 0.4, 0.3, 0.9],
        }
    )
    fig = plots.heatmap(frame, "beta", "graph", "t50", fmt=".0f")
    ax = fig.axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["3", "4\n1/2", "9", "never"]
    assert len([p for p in ax.patches if p.get_hatch() == "//"]) == 1
    assert ax.images[0].get_clim() == (0.0, 9.0)  # counts of steps: from 0
    assert "mean over 1/2 seeds per cell" in ax.get_title()
    assert "never" in fig._supxlabel.get_text()
    shares = plots.heatmap(frame, "beta", "graph", "final_size")
    assert shares.axes[0].images[0].get_clim() == (0.0, 1.0)
    ring = frame.filter(pl.col("graph") == "ring")
    one = plots.heatmap(ring, "beta", "seed", "final_size", title="final size per seed")
    assert "one row per cell" in one.axes[0].get_title()
    mixed = plots.heatmap(frame, "beta", "seed", "final_size")  # ring and ws share cells
    assert "mean over 1/2 rows per cell" in mixed.axes[0].get_title()
    two = pl.concat([frame.with_columns(pl.lit(m).alias("meme_id")) for m in ("a", "b")])
    with pytest.raises(ValueError, match="average over memes"):
        plots.heatmap(two, "beta", "graph", "final_size")


def test_network_states_rings_carriers(contagion_run):
    fig = plots.network_states(contagion_run, [20])
    title = fig.axes[0].get_title()
    assert title.startswith("step 20\nsusceptible ")
    assert "ring (carrier) " in title
    carriers = int(title.rsplit(" ", 1)[1])
    assert carriers > 0
    rings = sum(
        int((np.asarray(c.get_edgecolor())[:, 3] > 0).sum()) for c in fig.axes[0].collections[1:]
    )
    assert rings == carriers


def test_carrier_rings_scale_with_the_nodes_at_every_graph_size(tmp_path):
    """On 8 agents a fixed 20-point node with a 0.9-point ring was barely visible."""
    assert plots.network_node_size(8) == 400.0  # 20 points across
    assert plots.network_node_size(500) == pytest.approx(16.635, abs=1e-3)
    assert plots.network_node_size(100_000) == 8.0
    assert plots.carrier_ring_width(400.0) == pytest.approx(4.0)
    assert plots.carrier_ring_width(16.635) == 1.0
    for n in (8, 60, 500, 5000):
        size = plots.network_node_size(n)
        assert plots.carrier_ring_width(size) >= max(1.0, 0.2 * size**0.5 - 1e-9)
    graph = {"kind": "ring", "n": 8, "k": 2}
    run_dir = tmp_path / "ring8"
    run_experiment(contagion_config("ring8", graph=graph, steps=4), run_dir, progress=False)
    fig = plots.network_states(load_run(run_dir), [3])
    nodes = fig.axes[0].collections[1:]
    assert sum(len(c.get_offsets()) for c in nodes) == 8
    for collection in nodes:
        assert collection.get_sizes().tolist() == [400.0]
        assert collection.get_linewidths().tolist() == [pytest.approx(4.0)]
    rings = sum(int((np.asarray(c.get_edgecolor())[:, 3] > 0).sum()) for c in nodes)
    assert rings == int(fig.axes[0].get_title().rsplit(" ", 1)[1]) > 0
    # An explicit node_size still wins, and its ring follows it.
    fig = plots.network_states(load_run(run_dir), [3], node_size=100.0)
    assert fig.axes[0].collections[1].get_linewidths().tolist() == [pytest.approx(2.0)]


def test_memes_compared_and_counts(contagion_run, tmp_path):
    prev = prevalence(contagion_run.steps, contagion_run.n_agents)
    _check(plots.memes_compared(prev, title="x"), tmp_path / "memes.png")
    fig = plots.counts_per_step(contagion_run.steps, ("transmissions", "new_adopters"))
    for ax in fig.axes:
        assert ax.get_ylim()[0] == 0
        assert all(float(t).is_integer() for t in ax.get_yticks())
    # Counts that are all 0 (the demo's adopters): an axis from 0 to 1, integer ticks.
    quiet = contagion_run.steps.with_columns(pl.lit(0, dtype=pl.Int64).alias("new_adopters"))
    (ax,) = plots.counts_per_step(quiet, ("new_adopters",)).axes
    assert ax.get_ylim() == (0, 1)
    assert all(float(t).is_integer() for t in ax.get_yticks())
    # Two memes with the same counts over three steps: the later marker sits inside.
    same = pl.DataFrame(
        {"step": [0, 1, 2] * 2, "meme_id": ["a"] * 3 + ["b"] * 3, "transmissions": [1, 3, 1] * 2}
    )
    (ax,) = plots.counts_per_step(same, ("transmissions",)).axes
    assert [line.get_markersize() for line in ax.get_lines()] == [10, 5.5]
    assert {line.get_markeredgecolor() for line in ax.get_lines()} == {"white"}
    with pytest.raises(ValueError, match="not in the steps table"):
        plots.counts_per_step(contagion_run.steps, ("nope",))


def test_expressed_is_drawn_only_when_some_agent_expressed():
    steps = pl.DataFrame(
        {
            "step": [0, 1],
            "meme_id": ["m", "m"],
            "exposed": [2, 5],
            "carriers": [1, 2],
            "adopters": [1, 2],
            "infected": [1, 2],
            "new_exposed": [2, 3],
            "new_carriers": [1, 1],
            "new_adopters": [1, 1],
        }
    )
    older = prevalence(steps, 10)  # no expressed column: no expressed state
    assert older["state"].unique().sort().to_list() == ["adopter", "carrier", "exposed", "infected"]
    zero = steps.with_columns(pl.lit(0).alias("expressed"), pl.lit(0).alias("new_expressed"))
    assert plots.default_states(prevalence(zero, 10)) == ("exposed", "carrier", "adopter")
    some = zero.with_columns(pl.Series("expressed", [0, 3]), pl.Series("new_expressed", [0, 3]))
    prev = prevalence(some, 10)
    assert prev.filter(pl.col("state") == "expressed")["count"].to_list() == [0, 3]
    fig = plots.prevalence_curves(prev)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["exposed", "carrier", "expressed", "adopter", "infected"]


def test_many_groups_stay_distinct_and_panels_split_memes():
    # No two of the first 56 group lines share colour and marker (a sweep over 9
    # defenses once drew "none" and "vaccine" in the same colour with the same marker).
    pairs = [(plots.group_style(i)["color"], plots.group_style(i)["marker"]) for i in range(56)]
    assert len(set(pairs)) == 56
    # 9 arms x 2 memes: one panel per meme, each with the 9 arms, the legend beside them.
    arms = [f"arm{i}" for i in range(9)]
    bands = pl.DataFrame(
        [
            {"arm": arm, "meme_id": meme, "step": step, "mean": 0.1 * step, "low": 0.0}
            | {"high": 0.2 * step}
            for arm in arms
            for meme in ("fact", "influence")
            for step in range(3)
        ]
    )
    fig = plots.spread_curves(bands, group="arm", title="t", panel="meme_id")
    assert [ax.get_title() for ax in fig.axes] == ["meme_id = fact", "meme_id = influence"]
    assert [len(ax.lines) for ax in fig.axes] == [9, 9]
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == arms
    # One panel: more than MAX_LEGEND_INSIDE lines also move the legend out of the axes.
    fig = plots.spread_curves(bands.filter(pl.col("meme_id") == "fact"), group="arm")
    assert len(fig.axes) == 1 and fig.axes[0].get_legend() is None and len(fig.legends) == 1
    few = bands.filter(pl.col("arm").is_in(arms[:2]) & (pl.col("meme_id") == "fact"))
    fig = plots.spread_curves(few, group="arm")
    assert fig.axes[0].get_legend() is not None and not fig.legends


def test_a_legend_beside_the_panels_leaves_the_figure_title_readable():
    """The legend beside the panels once sat at the top and covered the title's end."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    bands = pl.DataFrame(
        [
            {"guards.0.delay": d, "policy.beta": b, "meme_id": meme, "step": step}
            | {"mean": 0.1 * step}
            for d in (0, 2, 5)
            for b in (0.1, 0.3)
            for meme in ("influence", "insight")
            for step in range(3)
        ]
    )
    title = "my-grid: adopters by guards.0.delay, policy.beta (mean and 95 % CI over seeds)"
    groups = ["guards.0.delay", "policy.beta"]
    fig = plots.spread_curves(bands, group=groups, title=title, panel="meme_id")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert not box.overlaps(fig._suptitle.get_window_extent(renderer))
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)


def test_metric_by_parameter_joins_points_only_for_numeric_parameters():
    def agg(values: list) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "p": values,
                "final_size_mean": [0.2, 0.5, 0.4],
                "final_size_low": [0.1, 0.4, 0.3],
                "final_size_high": [0.3, 0.6, 0.5],
                "final_size_n": [3, 3, 3],
            }
        )

    numeric = plots.metric_by_parameter(agg([0.1, 0.2, 0.4]), "p", "final_size")
    (line,) = [ln for ln in numeric.axes[0].lines if ln.get_marker() == "o"]
    assert line.get_linestyle() == "-"
    labels = plots.metric_by_parameter(agg(["none", "pattern", "quarantine"]), "p", "final_size")
    (points,) = [ln for ln in labels.axes[0].lines if ln.get_marker() == "o"]
    assert points.get_linestyle() == "None"


def test_metric_by_parameter_spaces_numbers_by_value_and_categories_evenly(tmp_path):
    """k = 0, 2, 5 sit at 0, 2, 5 (evenly spaced they made the slope from 2 to 5 look
    as steep per unit as from 0 to 2); labels stay at 0..k-1."""

    def agg(values: list, memes: tuple[str, ...] = ("m",)) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "k": values * len(memes),
                "meme_id": [m for m in memes for _ in values],
                "final_size_mean": [0.1, 0.3, 0.6] * len(memes),
                "final_size_low": [0.05, 0.25, 0.5] * len(memes),
                "final_size_high": [0.15, 0.35, 0.7] * len(memes),
                "final_size_n": [3, 3, 3] * len(memes),
            }
        )

    def positions(fig: Figure) -> list[list[float]]:
        ax = fig.axes[0]
        marks = [plots.group_style(i)["marker"] for i in range(2)]
        return [ln.get_xdata().tolist() for ln in ax.lines if ln.get_marker() in marks]

    numeric = plots.metric_by_parameter(agg([5, 0, 2]), "k", "final_size")
    ax = numeric.axes[0]
    assert positions(numeric) == [[0.0, 2.0, 5.0]]
    assert ax.get_xticks().tolist() == [0.0, 2.0, 5.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "5"]
    assert ax.get_xlim() == (-1.0, 6.0)  # half the smallest gap (2) beyond each end
    _check(numeric, tmp_path / "numeric.png")
    floats = plots.metric_by_parameter(agg([0.05, 0.1, 0.5]), "k", "final_size")
    assert positions(floats) == [[0.05, 0.1, 0.5]]
    assert floats.axes[0].get_xlim() == pytest.approx((0.005, 0.545))  # a tenth of 0.45
    # Values too close for their labels level: every value keeps its tick and its label,
    # the labels in two rows (see test_every_value_of_a_parameter_axis_is_labelled).
    betas = [0.01, 0.02, 0.05, 0.1, 0.3, 0.5]
    close = plots.metric_by_parameter(agg(betas[:3]).vstack(agg(betas[3:])), "k", "final_size")
    ax = close.axes[0]
    assert positions(close) == [betas]
    assert ax.get_xticks().tolist() == betas
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(b) for b in betas]
    pads = [tick.get_pad() for tick in ax.xaxis.get_major_ticks()]
    assert [p > pads[0] for p in pads] == [False, True, False, False, False, False]
    labels = plots.metric_by_parameter(agg(["none", "pattern", "quarantine"]), "k", "final_size")
    ax = labels.axes[0]
    assert positions(labels) == [[0.0, 1.0, 2.0]]
    assert ax.get_xticks().tolist() == [0.0, 1.0, 2.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none", "pattern", "quarantine"]
    assert ax.get_xlim() == (-0.5, 2.5)
    # Two lines are drawn apart by an eighth of the smallest gap between two values: of 2
    # (k = 0 to 2) on the numeric axis, of 1 between categories.
    two = plots.metric_by_parameter(
        agg([0, 2, 5], ("a", "b")), "k", "final_size", group=["meme_id"]
    )
    assert positions(two) == [[-0.125, 1.875, 4.875], [0.125, 2.125, 5.125]]
    cats = agg(["none", "pattern", "quarantine"], ("a", "b"))
    two = plots.metric_by_parameter(cats, "k", "final_size", group=["meme_id"])
    assert positions(two) == [[-0.0625, 0.9375, 1.9375], [0.0625, 1.0625, 2.0625]]


def test_mutation_bars_stay_in_the_distance_range_and_say_what_they_are():
    by_hop = pl.DataFrame(
        {
            "meme_id": ["m", "m", "m"],
            "hop": [0, 1, 2],
            "edit_mean": [0.0, 0.02, 0.95],
            "edit_sd": [0.0, 0.05, None],
        }
    )
    ax = plots.mutation_by_hop(by_hop).axes[0]
    assert ax.get_ylabel() == "normalized edit distance\n(mean ± 1 sd over entries)"
    (bars,) = ax.collections
    spans = [(seg[0][1], seg[1][1]) for seg in bars.get_segments()]
    # Hop 1: 0.02 - 0.05 would be negative: the bar starts at 0.
    assert spans[1] == (pytest.approx(0.0), pytest.approx(0.07))
    assert ax.get_ylim()[0] == 0.0


def test_a_time_bound_beyond_the_last_step_is_drawn_as_censored(tmp_path):
    agg = pl.DataFrame(
        {
            "beta": [0.1, 0.3],
            "t50_mean": [4.67, 3.0],
            "t50_low": [0.0, 2.0],
            "t50_high": [10.0, 4.0],
            "t50_n": [3, 3],
            "t50_high_censored": [True, False],
        }
    )
    fig = plots.metric_by_parameter(agg, "beta", "t50", title="steps to 50 %")
    ax = fig.axes[0]
    (arrows,) = [line for line in ax.lines if line.get_marker() == plots.CENSORED_MARKER]
    assert arrows.get_xdata().tolist() == [0.1]  # only the censored point, at its beta
    assert arrows.get_ydata().tolist() == [10.0]  # at the last step, where its bar stops
    assert "beyond the runs' last step" in fig._supxlabel.get_text()
    _check(fig, tmp_path / "censored.png")
    plain = plots.metric_by_parameter(agg.drop("t50_high_censored"), "beta", "t50")
    assert plain._supxlabel is None
    # A line without a censored bound draws no (empty) arrow line: one at (0, 0) pixels
    # made the layout shrink the axes to take it in.
    two = agg.with_columns(pl.lit("b").alias("g")).vstack(
        agg.with_columns(pl.lit("a").alias("g"), pl.lit(False).alias("t50_high_censored"))
    )
    fig = plots.metric_by_parameter(two, "beta", "t50", group=["g"])
    ax = fig.axes[0]
    arrows = [line for line in ax.lines if line.get_marker() == plots.CENSORED_MARKER]
    assert [line.get_ydata().tolist() for line in arrows] == [[10.0]]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    assert ax.get_tightbbox(renderer).y0 > 0


def test_the_time_figure_plots_the_kaplan_meier_median_and_marks_it_censored(tmp_path):
    """Per beta: KM median censored beyond step 30 (2/10 reached), 8 (5/10), 3 (3/3), and
    no seed observed at all (undefined)."""
    agg = pl.DataFrame(
        {
            "beta": [0.1, 0.2, 0.3, 0.4],
            "t50_mean": [3.0, 4.8, 3.0, None],  # the means over the seeds that got there
            "t50_km_median": [None, 8, 3, None],
            "t50_km_end": [30, 30, 30, None],
            "t50_n": [2, 5, 3, 0],
            "runs": [10, 10, 3, 2],
        },
        schema_overrides={"t50_km_median": pl.Int64, "t50_km_end": pl.Int64},
    )
    fig = plots.time_by_parameter(agg, "beta", "t50", title="steps to 50 %")
    ax = fig.axes[0]
    (medians,) = [line for line in ax.lines if line.get_marker() == "o"]
    assert medians.get_xdata().tolist() == [0.1, 0.2, 0.3, 0.4]
    ydata = medians.get_ydata()
    assert np.isnan(ydata[[0, 3]]).all() and ydata[1:3].tolist() == [8.0, 3.0]  # not 4.8
    (arrows,) = [line for line in ax.lines if line.get_marker() == plots.CENSORED_MARKER]
    assert (arrows.get_xdata().tolist(), arrows.get_ydata().tolist()) == ([0.1], [30.0])
    assert [t.get_text() for t in ax.texts] == [">30\n2/10", "5/10", "3/3", "undefined (0/2)"]
    assert ax.get_ylabel() == "t50: Kaplan-Meier median step\n(k/n: seeds that reached 50 %)"
    caption = fig._supxlabel.get_text()
    assert "counted as not there by their last step; no interval" in caption
    assert "\u2191 >T: fewer than half reached 50 % by the last step T" in caption
    assert ax.get_ylim() == (0.0, pytest.approx(30 * 1.12 + 0.5))
    _check(fig, tmp_path / "km.png")
    # Nothing censored: no arrow, and the caption does not explain one.
    plain = plots.time_by_parameter(agg.filter(pl.col("beta").is_in([0.2, 0.3])), "beta")
    assert not [line for line in plain.axes[0].lines if line.get_marker() == plots.CENSORED_MARKER]
    assert "\u2191" not in plain._supxlabel.get_text()
    with pytest.raises(ValueError, match="t90_km_median"):
        plots.time_by_parameter(agg, "beta", "t90")


def _three_parameter_metrics() -> pl.DataFrame:
    """Final sizes of 2 seeds at every (beta, graph, k): k = 4 spreads further."""
    rows = []
    for beta in (0.1, 0.3):
        for graph in ("ring", "ws"):
            for k in (2, 4):
                for seed in (0, 1):
                    size = beta + (0.4 if k == 4 else 0.0) + 0.02 * seed
                    rows.append({"beta": beta, "graph": graph, "k": k, "seed": seed, "size": size})
    return pl.DataFrame(rows)


def test_a_heat_map_never_calls_a_mean_over_another_parameter_a_mean_over_seeds(tmp_path):
    frame = _three_parameter_metrics()
    # Averaging over k without saying so: 4 rows per cell, 2 of each seed. Not "seeds".
    pooled = plots.heatmap(frame, "beta", "graph", "size")
    title = pooled.axes[0].get_title()
    assert title == "size\n(mean over 4 rows per cell)"
    assert "cells pool rows of the same seed" in pooled._supxlabel.get_text()
    # Naming what is averaged: the title says so.
    named = plots.heatmap(frame, "beta", "graph", "size", averaged=["k"])
    assert named.axes[0].get_title() == "size\n(mean over 4 runs per cell, pooling seeds, k)"
    assert named._supxlabel is None
    # One panel per value of the third parameter: cells are means over seeds only, on
    # one colour scale.
    panels = plots.heatmap(frame, "beta", "graph", "size", panel="k", title="final size")
    heat_axes = [ax for ax in panels.axes if ax.images]
    assert [ax.get_title() for ax in heat_axes] == ["k = 2", "k = 4"]
    assert panels._suptitle.get_text() == "final size\n(mean over 2 seeds per cell)"
    assert {ax.images[0].get_clim() for ax in heat_axes} == {(0.0, 1.0)}
    cells = sorted(t.get_text() for t in heat_axes[1].texts)
    assert cells == ["0.51", "0.51", "0.71", "0.71"]  # k = 4: beta + 0.4 + mean seed 0.01
    _check(panels, tmp_path / "panels.png")


def _frontier_frame(panels: bool) -> pl.DataFrame:
    """A defense frontier of 4 arms (arm ``none`` undefended), in 2 panels if asked."""
    rows = []
    for stratum in (0, 1) if panels else (0,):
        for i, (name, attack, utility) in enumerate(
            [("none", 0.8, 0.7), ("a", 0.2, 0.6), ("b", 0.4, 0.65), ("c", 0.5, 0.3)]
        ):
            rows.append(
                {"defense": name, "beta": stratum, "attack_mean": attack - 0.1 * stratum}
                | {"attack_low": attack - 0.15, "attack_high": attack + 0.05}
                | {"utility_mean": utility, "utility_low": utility - 0.05}
                | {"utility_high": utility + 0.05, "pareto": name in ("a", "b", "none")}
                | {"undefended": i == 0}
            )
    return pl.DataFrame(rows)


def _marker_vertices(marker: str) -> np.ndarray:
    from matplotlib.markers import MarkerStyle

    style = MarkerStyle(marker)
    return style.get_path().transformed(style.get_transform()).vertices


def test_the_undefended_arm_has_a_marker_no_group_uses(tmp_path):
    # A square was both the undefended arm's marker and group_style(1)'s.
    groups = {plots.group_style(i)["marker"] for i in range(56)}
    assert plots.UNDEFENDED_MARKER not in groups
    hexagon = _marker_vertices(plots.UNDEFENDED_MARKER)
    fig = plots.defense_frontier_plot(_frontier_frame(panels=False), title="t")
    ax = fig.axes[0]
    shapes = {}
    for coll in ax.collections:
        label = coll.get_label()
        if not label.startswith("_") and coll.get_offsets().shape == (1, 2) and coll.get_paths():
            shapes[label] = coll.get_paths()[0].vertices
    assert set(shapes) == {"none (undefended) (Pareto)", "a (Pareto)", "b (Pareto)", "c"}
    assert np.allclose(shapes["none (undefended) (Pareto)"], hexagon)
    for label, vertices in shapes.items():
        if "undefended" not in label:
            assert vertices.shape != hexagon.shape or not np.allclose(vertices, hexagon)
    _check(fig, tmp_path / "frontier.png")
    # With panels: the legend's mark of the undefended arm is the hexagon too.
    fig = plots.defense_frontier_plot(_frontier_frame(panels=True), title="t", panel="beta")
    legend = fig.legends[0]
    marks = {
        t.get_text(): h.get_marker()
        for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }
    assert marks["none (undefended)"] == plots.UNDEFENDED_MARKER
    assert marks["a"] == plots.group_style(1)["marker"] == "s"
    _check(fig, tmp_path / "frontier_panels.png")


def test_categories_that_are_numbers_sort_by_value_and_the_others_naturally():
    """``delay=10`` after ``delay=2``, ``10`` after ``2``: text order put them first."""
    from sim.plots.axes import ParameterAxis, category_order

    values = ["delay=10", "b", "10", "a10", "delay=2", "2", "A", "a2", "-1", "0.5", "nan"]
    assert sorted(values, key=category_order) == [
        "-1",
        "0.5",
        "2",
        "10",
        "A",
        "a2",
        "a10",
        "b",
        "delay=2",
        "delay=10",
        "nan",
    ]
    # Ties between equal numbers written differently go by the text.
    assert sorted(["2", "02", "2.0"], key=category_order) == ["02", "2", "2.0"]
    axis = ParameterAxis.of(pl.DataFrame({"d": ["delay=10", "delay=2", "delay=5"]}), "d")
    assert axis.values == ("delay=2", "delay=5", "delay=10")
    assert axis.positions == (0.0, 1.0, 2.0) and not axis.ordered
    # Numeric columns keep their values as positions.
    numeric = ParameterAxis.of(pl.DataFrame({"d": [10, 2, 5]}), "d")
    assert (numeric.values, numeric.positions) == ((2, 5, 10), (2.0, 5.0, 10.0))
    fig = plots.metric_by_parameter(
        pl.DataFrame(
            {
                "d": ["10", "2", "5"],
                "final_size_mean": [0.6, 0.1, 0.3],
                "final_size_low": [0.5, 0.05, 0.25],
                "final_size_high": [0.7, 0.15, 0.35],
                "final_size_n": [3, 3, 3],
            }
        ),
        "d",
        "final_size",
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "5", "10"]
    (points,) = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert points.get_xdata().tolist() == [0.0, 1.0, 2.0]
    assert points.get_ydata().tolist() == [0.1, 0.3, 0.6]
    # Lines of a grouping parameter are listed in the same order in the legend.
    grouped = pl.DataFrame(
        {
            "k": [1, 1, 1],
            "delay": ["delay=10", "delay=2", "delay=5"],
            "final_size_mean": [0.6, 0.1, 0.3],
            "final_size_low": [0.5, 0.05, 0.25],
            "final_size_high": [0.7, 0.15, 0.35],
            "final_size_n": [3, 3, 3],
        }
    )
    fig = plots.metric_by_parameter(grouped, "k", "final_size", group=["delay"])
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["delay=2", "delay=5", "delay=10"]


def test_the_legend_of_a_metric_figure_shows_what_each_line_draws():
    """A line whose points are all "never" draws no line or marker: its legend entry is
    its label and "(never)", without line or marker, as the time figure's "(undefined)"."""
    agg = pl.DataFrame(
        {
            "beta": [0.1, 0.3] * 2,
            "meme_id": ["a", "a", "b", "b"],
            "t50_mean": [9.0, 4.0, None, None],
            "t50_low": [8.0, 3.0, None, None],
            "t50_high": [10.0, 5.0, None, None],
            "t50_n": [3, 3, 0, 0],
        }
    )
    fig = plots.metric_by_parameter(agg, "beta", "t50", group=["meme_id"])
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b (never)"]
    _, b = legend.legend_handles  # (a's handle is its error bar)
    assert (b.get_linestyle(), b.get_marker()) == ("None", "None")
    assert legend.get_texts()[1].get_color() == plots.group_style(1)["color"]
    # Only a's line is drawn; b is its two "never" texts.
    drawn = [(ln.get_marker(), ln.get_color()) for ln in ax.lines if ln.get_marker() != "_"]
    assert drawn == [("o", plots.group_style(0)["color"])]  # ("_": a's error bar caps)
    nevers = [t for t in ax.texts if t.get_text() == "never"]
    assert [t.get_color() for t in nevers] == [plots.group_style(1)["color"]] * 2


def test_the_metric_axis_counts_the_seeds_of_the_points_with_a_value():
    """A point without a value ("never") is no mean over 0 seeds: the label counts the
    seeds of the other points, as a range when they differ (it read "over 0/2/3 seeds")."""

    def label(n: list[int], rows: list[int] | None = None) -> str:
        mean = [None if k == 0 else 5.0 for k in n]
        agg = pl.DataFrame(
            {
                "beta": [0.1, 0.3, 0.5] * 2,
                "meme_id": ["a"] * 3 + ["b"] * 3,
                "t50_mean": mean,
                "t50_low": [None if m is None else 4.0 for m in mean],
                "t50_high": [None if m is None else 6.0 for m in mean],
                "t50_n": n,
            },
            schema_overrides={"t50_mean": pl.Float64},
        )
        if rows is not None:
            agg = agg.with_columns(pl.Series("t50_rows", rows))
        fig = plots.metric_by_parameter(agg, "beta", "t50", group=["meme_id"])
        return fig.axes[0].get_ylabel()

    assert label([3, 3, 3, 0, 0, 0]) == "t50 (mean, 95 % CI over 3 seeds)"
    assert label([3, 3, 3, 2, 0, 3]) == "t50 (mean, 95 % CI over 2\u20133 seeds)"
    # Seeds without a value count neither: the k/n labels say how many of n had one.
    assert label([3, 3, 3, 2, 0, 3], [3] * 6) == "t50 (mean, 95 % CI over 2\u20133 seeds)"
    assert label([1, 0, 1, 1, 1, 0], [2] * 6) == "t50 (mean, 95 % CI over 1 seed)"
    assert label([0] * 6, [3] * 6) == "t50 (mean, 95 % CI over seeds: none has a value)"


def test_the_legend_of_a_time_figure_shows_what_each_line_draws():
    """A line whose medians are all censored is its arrows: its legend entry is the arrow,
    "(all beyond T)"; one with no seed observed at all is only its "undefined" texts."""
    agg = pl.DataFrame(
        {
            "beta": [0.1, 0.3] * 3,
            "meme_id": ["a", "a", "b", "b", "c", "c"],
            "t50_km_median": [9, 4, None, None, None, None],
            "t50_km_end": [20, 20, 20, 20, None, None],
            "t50_n": [6, 10, 1, 2, 0, 0],
            "runs": [10] * 6,
        },
        schema_overrides={"t50_km_median": pl.Int64, "t50_km_end": pl.Int64},
    )
    fig = plots.time_by_parameter(agg, "beta", group=["meme_id"])
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "a",
        "b (all beyond T)",
        "c (undefined)",
    ]
    a, b, c = legend.legend_handles
    assert (a.get_marker(), a.get_color()) == ("o", plots.group_style(0)["color"])
    # (the legend draws a copy of the arrow path)
    assert b.get_marker().vertices.tolist() == plots.CENSORED_MARKER.vertices.tolist()
    assert b.get_color() == plots.group_style(1)["color"]
    assert (b.get_linestyle(), c.get_linestyle(), c.get_marker()) == ("None", "None", "None")
    # c's entry, without line or marker, is in c's colour as its "undefined" texts are
    # (it was black, while the metric figure's "(never)" entries had their line's colour).
    colours = [t.get_color() for t in legend.get_texts()]
    assert colours[2] == plots.group_style(2)["color"]
    undefined = [t.get_color() for t in ax.texts if t.get_text().startswith("undefined")]
    assert undefined == [plots.group_style(2)["color"]] * 2
    # Every line drawn is a line or the arrows of a legend entry: b and c draw no
    # line-and-marker of their own (their medians are all missing).
    drawn = [(line.get_marker(), line.get_color()) for line in ax.lines]
    assert drawn == [
        ("o", plots.group_style(0)["color"]),
        (plots.CENSORED_MARKER, plots.group_style(1)["color"]),
    ]


def _overlapping_notes(fig: Figure, dpi: float) -> list[tuple[str, str]]:
    """The pairs of notes (texts in the axes) whose boxes overlap, rendered with Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    FigureCanvasAgg(fig).draw()
    texts = fig.axes[0].texts
    boxes = [t.get_window_extent() for t in texts]
    return [
        (texts[i].get_text(), texts[j].get_text())
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes)
        if i < j and a.overlaps(b)
    ]


def test_censored_notes_of_lines_at_the_same_x_do_not_overlap(tmp_path):
    """Two lines censored at beta = 0.1 (drawn slightly apart: by an eighth of 0.05) wrote
    ">20 2/10" and ">20 1/10" over each other; now the second stands under the first.
    Three lines at two values that close (0.1, 0.105) form one column, clear of a
    median's k/n too."""
    two = pl.DataFrame(
        {
            "beta": [0.1, 0.15, 0.5] * 2,
            "meme_id": ["a"] * 3 + ["b"] * 3,
            "t50_km_median": [None, 4, 3, None, 6, None],
            "t50_km_end": [20] * 6,
            "t50_n": [2, 8, 9, 1, 6, 3],
            "runs": [10] * 6,
        },
        schema_overrides={"t50_km_median": pl.Int64, "t50_km_end": pl.Int64},
    )
    fig = plots.time_by_parameter(two, "beta", group=["meme_id"])
    notes = {t.get_text(): t for t in fig.axes[0].texts}
    assert notes[">20\n2/10"].xyann == (0, -13)  # the first line's note stays
    assert notes[">20\n3/10"].xyann == (0, -13)  # alone at 0.5: it stays too
    x, y = notes[">20\n1/10"].xyann
    assert x == 0 and y < -13  # the second line's note, under the first
    for dpi in (100, 200):
        assert _overlapping_notes(fig, dpi) == []
    _check(fig, tmp_path / "two.png")
    three = pl.DataFrame(
        {
            "beta": [0.1, 0.105, 0.5] * 3,
            "meme_id": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "t50_km_median": [None, None, 3, None, None, None, None, 18, None],
            "t50_km_end": [20, 20, 20, 20, 20, 20, 18, 20, 20],
            "t50_n": [2, 3, 9, 1, 4, 3, 0, 6, 2],
            "runs": [10] * 9,
        },
        schema_overrides={"t50_km_median": pl.Int64, "t50_km_end": pl.Int64},
    )
    fig = plots.time_by_parameter(three, "beta", group=["meme_id"])
    for dpi in (100, 200):
        assert _overlapping_notes(fig, dpi) == []


def test_rendering_the_censored_arrows_prints_no_font_warning(tmp_path):
    """The arrow is a path, not a glyph: the mathtext arrow made matplotlib look for
    STIX and Computer Modern fonts and log "findfont: Font family ... not found" for
    each (once per process, so a fresh interpreter renders the figures)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    script = f"""
import polars as pl
from sim import plots

km = pl.DataFrame({{"beta": [0.1, 0.2], "t50_km_median": [None, 4.0],
                   "t50_km_end": [20.0, 20.0], "t50_n": [2, 8], "runs": [10, 10]}})
plots.time_by_parameter(km, "beta").savefig({str(tmp_path / "km.png")!r})
ci = pl.DataFrame({{"beta": [0.1, 0.2], "t50_mean": [5.0, 3.0], "t50_low": [2.0, 2.0],
                   "t50_high": [20.0, 4.0], "t50_n": [3, 3],
                   "t50_high_censored": [True, False]}})
plots.metric_by_parameter(ci, "beta", "t50").savefig({str(tmp_path / "ci.png")!r})
print("drawn")
"""
    env = {**os.environ, "PYTHONPATH": str(root), "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "drawn\n", "")
    assert (tmp_path / "km.png").stat().st_size > 1000


def _labels_readable(fig: Figure, values: list[object]) -> list[float]:
    """Check the x tick labels of a drawn figure: each value's label is written, at its
    tick, and no two labels' rendered boxes overlap. Returns the labels' rotations."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == [str(v) for v in values]
    boxes = [t.get_window_extent() for t in labels]
    ticks = ax.transData.transform([(x, 0) for x in ax.get_xticks()])[:, 0]
    for box, at in zip(boxes, ticks, strict=True):
        assert box.width > 0 and box.x0 <= at <= box.x1  # under its own tick
    overlapping = [
        (str(values[i]), str(values[j]))
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes)
        if i < j and a.overlaps(b)
    ]
    assert overlapping == []
    return [t.get_rotation() for t in labels]


def test_every_value_of_a_parameter_axis_is_labelled():
    """A label too close to the previous one was left blank (0.07 between 0.05 and 0.1):
    that point's value could not be read."""
    betas = [0.02, 0.05, 0.07, 0.1, 0.2, 0.5]
    agg = pl.DataFrame(
        {
            "beta": betas,
            "final_size_mean": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            "final_size_low": [0.0] * 6,
            "final_size_high": [0.7] * 6,
            "final_size_n": [3] * 6,
            "t50_km_median": [None, None, 9, 6, 4, 2],
            "t50_km_end": [20] * 6,
            "t50_n": [1, 2, 6, 8, 10, 10],
            "runs": [10] * 6,
        },
        schema_overrides={"t50_km_median": pl.Int64, "t50_km_end": pl.Int64},
    )
    assert (
        _labels_readable(plots.metric_by_parameter(agg, "beta", "final_size"), betas) == [0.0] * 6
    )
    assert _labels_readable(plots.time_by_parameter(agg, "beta"), betas) == [0.0] * 6
    # Closer than a line's height: level labels in as many rows as needed.
    close = [0.01, 0.011, 0.012, 0.02, 0.05, 0.5]
    fig = plots.time_by_parameter(agg.with_columns(pl.Series("beta", close)), "beta")
    _labels_readable(fig, close)
    pads = [tick.get_pad() for tick in fig.axes[0].xaxis.get_major_ticks()]
    # 0.01, 0.011, 0.012 and 0.02 each in a row of its own, 0.05 and 0.5 in the first.
    rows = [pads.index(p) for p in pads]
    assert rows == [0, 1, 2, 3, 0, 0] and pads == sorted(pads[:4]) + pads[:1] * 2


def test_every_category_of_a_crowded_parameter_axis_is_labelled():
    """Long defense-arm names, wider than the room between two ticks: two rows, and when
    even those collide, upright labels."""

    def agg(arms: list[str]) -> pl.DataFrame:
        n = len(arms)
        return pl.DataFrame(
            {
                "arm": arms,
                "final_size_mean": [0.5] * n,
                "final_size_low": [0.4] * n,
                "final_size_high": [0.6] * n,
                "final_size_n": [3] * n,
            }
        )

    arms = sorted(f"quarantine(delay={d})+rate_limit(max_writes=2)" for d in range(8))
    upright = plots.metric_by_parameter(agg(arms), "arm", "final_size")
    assert _labels_readable(upright, arms) == [90.0] * 8
    # The figure grew by the labels' height: the axes keep theirs (they shrank to a
    # sliver when the figure stayed 4 inches tall).
    level = plots.metric_by_parameter(agg(["a", "b"]), "arm", "final_size")
    level.draw_without_rendering()
    tall = [f.axes[0].get_position().height * f.get_figheight() for f in (upright, level)]
    assert upright.get_figheight() > 6.5 and tall[0] == pytest.approx(tall[1], abs=0.1)
    arms = sorted(f"quarantine(delay={d})+rate_limit" for d in range(8))
    fig = plots.metric_by_parameter(agg(arms), "arm", "final_size")
    assert _labels_readable(fig, arms) == [0.0] * 8
    pads = [tick.get_pad() for tick in fig.axes[0].xaxis.get_major_ticks()]
    assert pads[0::2] == [pads[0]] * 4 and pads[1::2] == [pads[1]] * 4 and pads[1] > pads[0]


def test_the_persona_figure_draws_each_arm_with_decisions_and_its_chance_level():
    """One row per persona: a marker per arm with decisions, its interval as a bar, the
    chance level as a grey tick and the count of decisions at the right."""
    outcomes = pl.DataFrame(
        {
            "meme_id": ["m"] * 4,
            "persona_name": ["Ada", "Ada", "Ben", "Ben"],
            "arm": ["exposed", "unexposed"] * 2,
            "n_decisions": [3, 4, 0, 1],
            "expressed_share": [2 / 3, 0.25, None, 1.0],
            "ci_low": [0.4, 0.0, None, None],
            "ci_high": [0.9, 0.5, None, None],
            "chance": [1 / 3, 0.375, None, 1 / 3],
            "level": [0.95] * 4,
            "clusters": ["agents"] * 4,
        }
    )
    fig = plots.persona_shares(outcomes, title="t")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Ada", "Ben"]
    points = [ln for ln in ax.lines if ln.get_marker() in ("o", "s")]
    assert [ln.get_xdata().tolist() for ln in points] == [[2 / 3], [0.25, 1.0]]
    # Row i, the exposed arm 0.14 above it and the unexposed 0.14 below (y grows down).
    ys = [ln.get_ydata().tolist() for ln in points]
    assert ys[0] == pytest.approx([-0.14], abs=1e-12)
    assert ys[1] == pytest.approx([0.14, 1.14], abs=1e-12)
    ticks = [ln for ln in ax.lines if ln.get_color() == plots.CHANCE_COLOUR]  # not caps
    assert [ln.get_xdata().tolist() for ln in ticks] == [[1 / 3], [0.375, 1 / 3]]
    assert [t.get_text() for t in ax.texts] == ["3", "4", "1"]
    assert "95 % CI clustered by agents" in ax.get_xlabel()
