"""The dashboard page: Mesa's SolaraViz with memespread's panels (needs the ``dashboard`` extra).

Panels, each a function of the model that SolaraViz re-renders after every step (and
after the step slider moves):

* the step slider and the run's counts at the shown step (the ``steps`` table); for an
  interrupted or failed run, a note that the replay ends at its last checkpoint and
  how to resume it;
* the network, one panel per meme, nodes coloured by their state (the palette of
  :mod:`sim.plots`; carriers ringed; recovered agents in their own colour);
* prevalence curves per state (recovered too, when some agent recovered), with the
  shown step marked;
* the transmission tree of each meme up to the shown step;
* the memory inspector: for an agent and the shown step, the entries it retrieved
  (bank, author, memes carried, text), the entries it wrote, the guards' verdicts on
  its writes and entries, and (LLM runs) its raw replies.

Serve it with ``memespread dashboard RUN_DIR | CONFIG`` (see
:mod:`experiments.dashboard.server`); :func:`Page` reads the target from the environment
variable :data:`TARGET_ENV` when the page is rendered.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

import numpy as np
import polars as pl
import solara
from matplotlib.figure import Figure
from mesa.visualization import SolaraViz
from mesa.visualization.utils import force_update

from experiments.dashboard.models import LiveModel, ReplayModel
from experiments.dashboard.view import TARGET_ENV, RunView, TreeSummary
from sim.analysis.recovery import RECOVERED
from sim.plots import (
    NODE_STATES,
    default_states,
    draw_network_states,
    edge_segments,
    network_node_size,
    prevalence_curves,
    state_legend,
    transmission_tree,
)

DashboardModel = ReplayModel | LiveModel

#: Each panel fills its cell of SolaraViz's grid and scrolls inside it: the grid's cells
#: have a fixed height, and a panel taller than its cell (a prevalence chart or tree per
#: meme, stacked) would otherwise run on beneath the panel below, hiding its last memes.
PANEL_STYLE = {"max-height": "100%", "overflow-y": "auto"}

#: The most nodes a transmission tree draws (the earliest infected; the caption says so).
MAX_TREE_NODES = 2000


def _shown_step(model: DashboardModel) -> int | None:
    """The step the page shows (None before a live run's first step)."""
    if model.view.last_step is None:
        return None
    step = model.view_step if model.view_step is not None else model.view.last_step
    return max(0, min(int(step), model.view.last_step))


def _table_html(frame: pl.DataFrame, css_class: str) -> str:
    """A small HTML table (escaped; nulls as empty cells) for the inspector."""
    head = "".join(
        f'<th style="padding:2px 6px;text-align:left">{html.escape(c)}</th>' for c in frame.columns
    )
    rows = []
    for row in frame.iter_rows():
        cells = []
        for value in row:
            if value is None:  # a null: no removal step, no question, no error
                shown = ""
            else:
                shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            cells.append(f'<td style="padding:2px 6px">{html.escape(shown)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    style = (
        "border-collapse:collapse;font-size:12px;width:100%;"
        "font-family:sans-serif;table-layout:auto"
    )
    return (
        f'<table class="{css_class}" style="{style}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


# ---------------------------------------------------------------- panels
@solara.component
def StepPanel(model: DashboardModel, step: int | None, version: int) -> None:  # noqa: N802
    """The step slider and the counts of every meme at the shown step."""
    view = model.view
    with solara.Column(classes=["memespread-steps"], style=PANEL_STYLE):
        solara.Markdown(f"### {view.name}")
        if view.unfinished is not None:
            solara.Warning(
                children=[solara.Markdown(view.unfinished.note)], classes=["memespread-unfinished"]
            )
        if step is None:
            solara.Markdown("No step run yet: press the step button (or play).")
            return

        def move(value: int) -> None:
            model.show(value)
            force_update()

        solara.SliderInt(
            "step",
            value=step,
            min=0,
            max=max(view.last_step or 0, 0),
            on_value=move,
            thumb_label="always",
        )
        if model.controls_off and step < (view.last_step or 0):
            solara.Markdown(
                "Step and Play stay off once the replay has reached its last step "
                "(Mesa's controls): Reset rewinds it to step 0.",
                style={"font-size": "small"},
            )
        lines = [f"**step {step}** of {view.last_step} · {view.n_agents} agents", ""]
        for meme in view.meme_ids:
            counts = view.counts(step, meme)
            shown = ", ".join(f"{label} {n}" for label, n in counts.items())
            lines.append(f"- meme `{meme}`: {shown}")
        solara.Markdown("\n".join(lines))


def network_figure(view: RunView, step: int) -> Figure:
    """The network once per meme, nodes filled by their state after ``step``.

    A large network is drawn as a sample of its agents (see
    :mod:`experiments.dashboard.layout`); the titles count all agents. Nodes are drawn
    as :func:`sim.plots.network_states` draws them: carriers ringed, node and ring sized
    by the number of agents drawn.
    """
    memes = view.meme_ids
    layout = view.layout
    fig = Figure(figsize=(4.2 * len(memes), 3.4), layout="constrained")
    axes = fig.subplots(1, len(memes), squeeze=False)[0]
    xy = layout.xy
    segments = edge_segments(xy, layout.edges)
    size = network_node_size(len(layout.nodes))
    for ax, meme in zip(axes, memes, strict=True):
        flags = view.states(step, meme)
        every = np.array(flags["state"].to_list())
        states = every[layout.nodes]
        carrier = flags["carrier"].to_numpy()[layout.nodes]
        draw_network_states(
            ax, xy, segments, states, carrier, NODE_STATES, node_size=size, edge_width=0.4
        )
        counts = ", ".join(
            f"{s} {int((every == s).sum())}" for s in NODE_STATES if (every == s).any()
        )
        ax.set_title(f"meme {meme!r}, step {step}\n{counts}", fontsize="small")
        ax.set_axis_off()
        ax.margins(0.1)
        ax.autoscale_view()
    handles = state_legend(NODE_STATES, "ring: carrier")
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small")
    if layout.sampled:
        fig.suptitle(layout.note.replace(" (", "\n("), fontsize="small")
    return fig


@solara.component
def NetworkPanel(model: DashboardModel, step: int | None, version: int) -> None:  # noqa: N802
    """The network coloured by each meme's state."""
    with solara.Column(classes=["memespread-network"], style=PANEL_STYLE):
        solara.Markdown(
            "**Network** (node colour: each agent's most advanced state for each meme "
            "after the step, or recovered: it held the meme since its node's last "
            "replacement and no longer does; the titles count agents by colour, so their "
            "carriers leave out adopters and recovered agents, which the `steps` counts "
            "above include)"
        )
        if step is None:
            return
        if model.view.layout.sampled:
            solara.Markdown(model.view.layout.note)
        solara.FigureMatplotlib(network_figure(model.view, step), format="png")


def prevalence_states(prev: pl.DataFrame) -> tuple[str, ...]:
    """The states the prevalence panel draws.

    Those of :func:`sim.plots.default_states`, then infected, then recovered when some
    agent recovered (drawn in the network's colour of recovered agents).
    """
    recovered = prev.filter((pl.col("state") == RECOVERED) & (pl.col("count") > 0)).height
    return default_states(prev, extra=("infected", RECOVERED) if recovered else ("infected",))


@solara.component
def PrevalencePanel(model: DashboardModel, step: int | None, version: int) -> None:  # noqa: N802
    """Prevalence per state over the steps, one chart per meme, the shown step marked."""
    with solara.Column(classes=["memespread-prevalence"], style=PANEL_STYLE):
        solara.Markdown("**Prevalence per state**")
        if step is None:
            return
        view = model.view
        prev = view.prevalence()
        for meme in view.meme_ids:
            fig = prevalence_curves(
                prev,
                meme_id=meme,
                states=prevalence_states(prev),
                title=f"{view.name}: meme {meme!r}",
            )
            fig.set_size_inches(6.0, 3.4)
            for ax in fig.axes[:1]:
                ax.axvline(step, color="#555555", linewidth=1.0, linestyle=":")
            solara.FigureMatplotlib(fig, format="png")


@solara.component
def TreePanel(model: DashboardModel, step: int | None, version: int) -> None:  # noqa: N802
    """The transmission tree of each meme up to the shown step."""
    with solara.Column(classes=["memespread-tree"], style=PANEL_STYLE):
        solara.Markdown("**Transmission tree**")
        if step is None:
            return
        view = model.view
        for meme in view.meme_ids:
            tree = view.tree(meme, step)
            caption = TreeSummary.of(tree).caption(meme, step)
            if tree.height > MAX_TREE_NODES:
                caption += f"; drawn: the first {MAX_TREE_NODES} nodes by infection step"
            solara.Markdown(caption)
            if tree.height:
                fig = transmission_tree(
                    tree, title=f"meme {meme!r} up to step {step}", max_nodes=MAX_TREE_NODES
                )
                fig.set_size_inches(6.0, 3.2)
                solara.FigureMatplotlib(fig, format="png")


@solara.component
def InspectorPanel(model: DashboardModel, step: int | None, version: int) -> None:  # noqa: N802
    """The memory inspector: what one agent retrieved at the shown step, and what it wrote."""
    view = model.view
    nobody: int | None = None  # no agent picked yet: the most exposed reader is shown
    picked, set_picked = solara.use_state(nobody)
    # The last out-of-range id typed, and how many were: a new count remounts the field,
    # so that it shows the agent still inspected rather than the refused id.
    refused, set_refused = solara.use_state((nobody, 0))
    with solara.Column(classes=["memespread-inspector"], style=PANEL_STYLE):
        solara.Markdown("**Memory inspector**")
        if step is None:
            return
        agent = picked if picked is not None else view.busiest_reader(step)

        def pick(value: int | None) -> None:
            if value is not None and 0 <= value < view.n_agents:
                set_picked(int(value))
                set_refused((None, refused[1]))
            else:
                set_refused((value, refused[1] + 1))

        field = solara.InputInt("agent", value=agent, on_value=pick, continuous_update=False)
        field.key(f"agent-{refused[1]}")
        if refused[0] is not None:
            solara.Text(
                f"no agent {refused[0]}: the ids run from 0 to {view.n_agents - 1} "
                f"(still showing agent {agent})",
                classes=["memespread-agent-refused"],
                style={"color": "#b00020"},
            )
        retrieved = view.retrieved(agent, step)
        written = view.written(agent, step)
        if not view.has_contexts:
            solara.Markdown("This run recorded no contexts (only LLM runs record them).")
        else:
            solara.Markdown(f"agent {agent} at step {step}: retrieved {retrieved.height} entries")
            solara.HTML(unsafe_innerHTML=_table_html(retrieved, "memespread-retrieved"))
        solara.Markdown(f"agent {agent} wrote {written.height} entries at step {step}")
        if written.height:
            solara.HTML(unsafe_innerHTML=_table_html(written, "memespread-written"))
        verdicts = view.verdicts(agent, step)
        if verdicts.height:
            solara.Markdown(
                f"guards at step {step}: {verdicts.height} verdicts on agent {agent}'s "
                "writes and entries (a rejected or quarantined write is in no bank)"
            )
            solara.HTML(unsafe_innerHTML=_table_html(verdicts, "memespread-verdicts"))
        if view.has_generations:
            replies = view.replies(agent, step)
            solara.Markdown(f"agent {agent}'s replies at step {step}: {replies.height}")
            if replies.height:
                solara.HTML(unsafe_innerHTML=_table_html(replies, "memespread-replies"))


def _panel(component: Any) -> Any:
    """A SolaraViz component: re-rendered with the shown step after every update."""

    def render(model: DashboardModel) -> Any:
        return component(model=model, step=_shown_step(model), version=model.steps)

    render.__name__ = component.__name__
    return render


PANELS = (StepPanel, NetworkPanel, PrevalencePanel, TreePanel, InspectorPanel)


def build_model(target: dict[str, Any]) -> DashboardModel:
    """The model of a target (``{"kind": "run"|"config", "path": ...}``)."""
    if target["kind"] == "run":
        return ReplayModel(target["path"])
    return LiveModel(target["path"])


def reset_params(model: DashboardModel) -> dict[str, Any]:
    """The arguments SolaraViz's Reset button builds a new model of ``model``'s class with.

    A replay is reset to step 0, from where Step and Play show it again (Mesa's controller
    disables them once a replay has reached its last step, even when the step slider
    then moves back); a live run is built again from its config.
    """
    if isinstance(model, ReplayModel):
        return {"run_dir": model.run_dir, "view_step": 0}
    return {"config": model.config_path}


def make_page(model: DashboardModel) -> Any:
    """The SolaraViz page of a replay or live model."""
    params = reset_params(model)
    kind = "replay" if isinstance(model, ReplayModel) else "live"
    unfinished = model.view.unfinished
    if unfinished is not None:
        kind += (
            f", {unfinished.status} after {unfinished.steps_completed} of {unfinished.steps} steps"
        )
    name = f"memespread dashboard: {model.view.name} ({kind})"
    return SolaraViz(
        model,
        components=[(_panel(p), 0) for p in PANELS],
        model_params=params,
        name=name,
        play_interval=400,
    )


@solara.component
def Page() -> Any:  # noqa: N802
    """The page served by ``solara run``: the target comes from :data:`TARGET_ENV`."""
    raw = os.environ.get(TARGET_ENV)
    model = solara.use_memo(lambda: build_model(json.loads(raw)) if raw else None, [raw])
    if model is None:
        return solara.Error(f"no dashboard target: set {TARGET_ENV} (memespread dashboard does)")
    return make_page(model)
