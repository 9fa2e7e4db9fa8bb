"""Recovered agents in ``states_at`` and the network figure: the tracker's own flags.

An SIR contagion run with agent turnover: agents recover (they held the meme and lost
it), and recovered agents' nodes are replaced by new agents, who are not recovered.
``states_at`` reads who is recovered from the ``agents`` and ``turnover`` tables
(:mod:`sim.analysis.recovery`, the dashboard's rule); the figure draws them in their own
colour instead of their earlier state (carrier or exposed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from analysis_tables import contagion_config
from matplotlib.colors import to_hex

from experiments.runner import build_model, run_experiment
from sim import plots
from sim.analysis.loading import load_run
from sim.analysis.prevalence import states_at

STEPS = 10


def _sir_with_turnover(name: str = "sir-turnover"):
    return contagion_config(
        name,
        steps=STEPS,
        graph={"kind": "watts_strogatz", "n": 60, "k": 4, "p": 0.1},
        policy={"kind": "contagion", "beta": 0.3, "gamma": 0.2, "recovery": "sir"},
        turnover={"rate": 0.1, "start_step": 2},
    )


def test_recovered_agents_are_the_trackers_after_every_step() -> None:
    model = build_model(_sir_with_turnover())
    recovered_seen = replaced_recovered = 0
    before = np.zeros(60, dtype=np.bool_)
    for step in range(STEPS):
        model.step()
        tables = model.tables()
        flags = states_at(tables["agents"], 60, step, "influence", turnover=tables["turnover"])
        want = model.tracker.recovered[:, 0] & ~model.tracker.adopter[:, 0]
        assert flags["recovered"].to_numpy().tolist() == want.tolist()
        assert (flags["state"] == "recovered").to_numpy().tolist() == want.tolist()
        # The rest keep their most advanced state; adopters are the tracker's.
        assert (flags["state"] == "adopter").to_numpy().tolist() == (
            model.tracker.adopter[:, 0].tolist()
        )
        swapped = tables["turnover"].filter(tables["turnover"]["step"] == step)["agent_id"]
        replaced_recovered += int(before[swapped.to_numpy()].sum())
        recovered_seen += int(want.sum())
        before = want
    model.close()
    # The hard cases happened: recoveries, and replacements of recovered agents.
    assert recovered_seen > 0 and replaced_recovered > 0


def test_without_the_turnover_table_a_replaced_adopter_would_read_as_recovered() -> None:
    """Why ``turnover`` is a required argument: the replacement's ``adopter = false`` row
    looks like a recovery."""
    model = build_model(_sir_with_turnover())
    for _ in range(STEPS):
        model.step()
    tables = model.tables()
    model.close()
    right = states_at(tables["agents"], 60, STEPS - 1, "influence", turnover=tables["turnover"])
    wrong = states_at(tables["agents"], 60, STEPS - 1, "influence", turnover=None)
    assert int(wrong["recovered"].sum()) > int(right["recovered"].sum())


def test_the_network_figure_draws_recovered_agents_in_their_colour(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_experiment(_sir_with_turnover(), run_dir, progress=False)
    run = load_run(run_dir)
    fig = plots.network_states(run, [1, STEPS - 1])
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "susceptible", "exposed", "carrier", "recovered", "adopter",
        "ring: carrier (has written the meme)",
    ]  # fmt: skip
    colour_of = {plots.STATE_COLOURS[s].lower(): s for s in plots.NODE_STATES}
    for ax, step in zip(fig.axes, [1, STEPS - 1], strict=True):
        flags = states_at(run.agents, 60, step, "influence", turnover=run.tables["turnover"])
        states = flags["state"].to_list()
        drawn = {
            colour_of[to_hex(c.get_facecolor()[0])]: len(c.get_offsets())
            for c in ax.collections[1:]
        }
        assert drawn == {s: states.count(s) for s in set(states)}
        assert f"recovered {states.count('recovered')}," in ax.get_title()
    # The last step has recovered agents, who were drawn as carriers before.
    recovered = flags.filter(flags["recovered"])
    assert recovered.height > 0 and recovered["carrier"].all()
    fig.savefig(tmp_path / "net.png")


def test_a_run_without_recoveries_has_no_recovered_entry(contagion_run) -> None:
    fig = plots.network_states(contagion_run, [20])
    assert "recovered" not in [t.get_text() for t in fig.legends[0].get_texts()]
    assert "recovered" not in fig.axes[0].get_title()
