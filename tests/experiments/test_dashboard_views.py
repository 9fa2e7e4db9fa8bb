"""The dashboard's data layer against the run's tables: a contagion run with the hard cases.

Two memes (one seeded at hub agents, one seeded into a global bank by the environment),
SIR recovery, agent turnover, a quarantine guard and a rate limit: every view of every
step is compared with the tables it is drawn from (``steps``, ``agents``,
``transmissions``, ``memories``, ``guard_decisions``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from experiments.cli import main
from experiments.config import load_config
from experiments.dashboard.view import (
    STATES_CACHE_SIZE,
    NotARunError,
    RunView,
    TreeSummary,
    describe_target,
)
from experiments.runner import run_experiment
from sim.analysis.prevalence import states_at

CONFIG = """
name = "dash-contagion"
seed = 11
steps = 8

[graph]
kind = "watts_strogatz"
n = 60
k = 4
p = 0.1

[banks.private]
capacity = 6

[banks.neighbourhood]
capacity = 6

[banks.global]
capacity = 8

[memory.retrieval]
k = 4

[policy]
kind = "contagion"
beta = 0.3
gamma = 0.15
recovery = "sir"

[turnover]
rate = 0.08
start_step = 2

[[guards]]
kind = "quarantine"
meme = "influence"
delay = 2

[[guards]]
kind = "rate_limit"
max_writes = 2
window = 3

[[memes]]
id = "influence"
kind = "influence_seeking"
statement = "Acquire influence."
canary = "MEME-A"
placement = { strategy = "hub", count = 2 }

[[memes]]
id = "lesson"
kind = "benign_insight"
statement = "Write results down."
canary = "MEME-B"
placement = { strategy = "bank", bank = "global" }
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dash_contagion")
    config = root / "dash.toml"
    config.write_text(CONFIG)
    target = root / "run"
    run_experiment(load_config(config), target, progress=False)
    return target


def test_the_run_has_the_hard_cases(run_dir: Path) -> None:
    steps = pl.read_parquet(run_dir / "steps.parquet")
    assert steps["agents_replaced"].sum() > 0
    assert steps["lost_adopters"].sum() > 0
    assert steps["entries_rolled_back"].sum() > 0
    transmissions = pl.read_parquet(run_dir / "transmissions.parquet")
    assert (transmissions.filter(pl.col("meme_id") == "lesson")["source_agent"] == -1).any()


def test_states_and_counts_are_those_of_the_steps_table(run_dir: Path) -> None:
    view = RunView.from_run_dir(run_dir)
    steps = pl.read_parquet(run_dir / "steps.parquet")
    assert view.meme_ids == ("influence", "lesson")
    assert view.last_step == 7
    for meme in view.meme_ids:
        for step in range(8):
            row = steps.filter((pl.col("step") == step) & (pl.col("meme_id") == meme))
            flags = view.states(step, meme)
            assert flags.height == 60
            assert int(flags["exposed"].sum()) == row["exposed"][0]
            assert int(flags["carrier"].sum()) == row["carriers"][0]
            assert int(flags["adopter"].sum()) == row["adopters"][0]
            counts = view.counts(step, meme)
            assert counts == {
                "exposed": row["exposed"][0],
                "carriers": row["carriers"][0],
                "expressed": 0,  # contagion agents make no scored choices
                "adopters": row["adopters"][0],
            }


def test_states_are_computed_once_per_step_and_meme(run_dir: Path) -> None:
    """The page asks for the states on every slider move: the second time the same
    frame comes from the view's cache, equal to what states_at computes from the
    tables; the cache keeps at most STATES_CACHE_SIZE frames."""
    view = RunView.from_run_dir(run_dir)
    first = view.states(3, "influence")
    info = view.states_cache_info()
    assert (info.hits, info.misses, info.currsize) == (0, 1, 1)
    again = view.states(3, "influence")
    info = view.states_cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)  # not computed again
    assert again is first
    expected = states_at(
        view.tables["agents"], 60, 3, "influence", turnover=view.tables.get("turnover")
    )
    assert_frame_equal(again, expected)
    other = view.states(3, "lesson")  # another meme is another question
    assert view.states_cache_info().misses == 2
    assert not other.equals(first)
    # Bounded: more (step, meme) questions than it holds leave STATES_CACHE_SIZE frames
    # (steps past the last one ask for the run's end).
    for step in range(STATES_CACHE_SIZE // 2 + 1):
        for meme in view.meme_ids:
            view.states(step, meme)
    assert view.states_cache_info().currsize == STATES_CACHE_SIZE
    # Each view has its own cache.
    assert RunView.from_run_dir(run_dir).states_cache_info().currsize == 0


def test_an_unreadable_table_is_a_one_line_error_before_the_page_starts(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated Parquet table made the page fail in the browser; now the command
    names the file and stops before the server starts (exit code 2, one line)."""
    damaged = tmp_path / "run"
    shutil.copytree(run_dir, damaged)
    table = damaged / "agents.parquet"
    data = table.read_bytes()
    table.write_bytes(data[: len(data) // 2])
    message = (
        f"{table}: the table is not readable as Parquet (parquet: File out of "
        "specification: The file must end with PAR1 or PARE): the run directory is "
        "damaged; rerun its config with --overwrite"
    )
    with pytest.raises(NotARunError) as err:
        describe_target(damaged)
    assert str(err.value) == message
    with pytest.raises(NotARunError) as err:
        RunView.from_run_dir(damaged)
    assert str(err.value) == message
    assert main(["dashboard", str(damaged)]) == 2
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == [f"error: {message}"]
    assert "memespread dashboard: http" not in out.out  # the server never started
    # An optional table the page reads (here the guards' decisions) is checked too.
    shutil.copy(run_dir / "agents.parquet", table)
    decisions = damaged / "guard_decisions.parquet"
    decisions.write_bytes(b"")
    with pytest.raises(NotARunError) as err:
        describe_target(damaged)
    assert str(err.value).startswith(f"{decisions}: the table is not readable as Parquet (")


def _recovered_in_tables(run_dir: Path, step: int, meme: str) -> set[int]:
    """The agents recovered after ``step``, read row by row from the Parquet tables.

    An ``adopter = true`` row at or after the node's last replacement (the turnover comes
    first in a step) means the agent on the node has held the meme; the node's last
    ``adopter`` row says whether it holds it now.
    """
    agents = pl.read_parquet(run_dir / "agents.parquet")
    turnover = pl.read_parquet(run_dir / "turnover.parquet")
    swapped: dict[int, int] = {}
    for row in turnover.filter(pl.col("step") <= step).iter_rows(named=True):
        swapped[row["agent_id"]] = max(swapped.get(row["agent_id"], -1), row["step"])
    rows = agents.filter(
        (pl.col("state") == "adopter") & (pl.col("meme_id") == meme) & (pl.col("step") <= step)
    )
    holds: dict[int, bool] = {}
    held: set[int] = set()
    for row in rows.iter_rows(named=True):  # in the table's order
        holds[row["agent_id"]] = row["value"]
        if row["value"] and row["step"] >= swapped.get(row["agent_id"], -1):
            held.add(row["agent_id"])
    return {agent for agent in held if not holds[agent]}


def test_recovered_agents_have_their_own_state_as_the_tables_record(run_dir: Path) -> None:
    view = RunView.from_run_dir(run_dir)
    steps = pl.read_parquet(run_dir / "steps.parquet")
    turnover = pl.read_parquet(run_dir / "turnover.parquet")
    replaced_after_recovery = 0
    for meme in view.meme_ids:
        before: set[int] = set()
        for step in range(8):
            flags = view.states(step, meme)
            shown = set(flags.filter(pl.col("state") == "recovered")["agent_id"].to_list())
            assert shown == set(flags.filter(pl.col("recovered"))["agent_id"].to_list())
            assert shown == _recovered_in_tables(run_dir, step, meme)
            row = steps.filter((pl.col("step") == step) & (pl.col("meme_id") == meme))
            # A recovered agent is no adopter: the adopters drawn are the steps table's.
            assert int((flags["state"] == "adopter").sum()) == row["adopters"][0]
            assert not (flags["recovered"] & flags["adopter"]).any()
            # A new agent on a recovered agent's node is not recovered (it held nothing).
            swapped = set(turnover.filter(pl.col("step") == step)["agent_id"].to_list())
            assert not (before & swapped & shown)
            replaced_after_recovery += len(before & swapped)
            before = shown
    # The hard cases happened: recoveries, and replacements of recovered agents.
    assert replaced_after_recovery > 0
    assert view.states(7, "influence")["state"].to_list().count("recovered") == 17


def test_recovered_agents_are_the_trackers_after_every_live_step(tmp_path: Path) -> None:
    """The view of a live model's tables against the simulator's own flags."""
    from experiments.runner import build_model

    config_path = tmp_path / "dash.toml"
    config_path.write_text(CONFIG)
    config = load_config(config_path)
    model = build_model(config)
    for step in range(config.steps):
        model.step()
        view = RunView.from_model(model, config.name)
        for index, meme in enumerate(view.meme_ids):
            tracker = model.tracker
            want = tracker.recovered[:, index] & ~tracker.adopter[:, index]
            got = view.states(step, meme)["recovered"].to_numpy()
            assert got.tolist() == want.tolist()
    model.close()


def test_the_network_draws_recovered_agents_in_their_colour(run_dir: Path) -> None:
    pytest.importorskip("solara")
    from matplotlib.colors import to_hex

    from experiments.dashboard.app import NODE_STATES, network_figure
    from sim.plots import STATE_COLOURS

    view = RunView.from_run_dir(run_dir)
    assert NODE_STATES == (
        "susceptible", "exposed", "carrier", "expressed", "recovered", "adopter",
    )  # fmt: skip
    fig = network_figure(view, 7)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [*NODE_STATES, "ring: carrier"]
    colour_of = {STATE_COLOURS[s].lower(): s for s in NODE_STATES}
    for ax, meme in zip(fig.axes, view.meme_ids, strict=True):
        states = view.states(7, meme)["state"].to_list()
        drawn = {
            colour_of[to_hex(c.get_facecolor()[0])]: len(c.get_offsets())
            for c in ax.collections[1:]
        }
        assert drawn == {s: states.count(s) for s in NODE_STATES if s in states}
        assert drawn["recovered"] > 0
        assert f"recovered {states.count('recovered')}" in ax.get_title()


def test_prevalence_is_the_steps_counts_over_the_agents(run_dir: Path) -> None:
    view = RunView.from_run_dir(run_dir)
    steps = pl.read_parquet(run_dir / "steps.parquet")
    prev = view.prevalence()
    columns = {"exposed": "exposed", "carrier": "carriers", "infected": "infected"}
    for state, column in columns.items():
        for meme in view.meme_ids:
            got = prev.filter((pl.col("state") == state) & (pl.col("meme_id") == meme)).sort("step")
            want = steps.filter(pl.col("meme_id") == meme).sort("step")[column] / 60
            assert got["step"].to_list() == list(range(8))
            assert got["prevalence"].to_list() == pytest.approx(want.to_list(), abs=1e-12)
    # Recovered agents, which the steps table does not count: those the network shows.
    for meme in view.meme_ids:
        got = prev.filter((pl.col("state") == "recovered") & (pl.col("meme_id") == meme))
        want = [view.states(step, meme)["recovered"].sum() for step in range(8)]
        assert got["step"].to_list() == list(range(8))
        assert got["count"].to_list() == want
        assert got["prevalence"].to_list() == pytest.approx([n / 60 for n in want], abs=1e-12)
    pytest.importorskip("solara")
    from experiments.dashboard.app import prevalence_states

    assert prevalence_states(prev) == ("exposed", "carrier", "adopter", "infected", "recovered")


def test_tree_up_to_each_step_counts_agents_not_the_environment(run_dir: Path) -> None:
    view = RunView.from_run_dir(run_dir)
    steps = pl.read_parquet(run_dir / "steps.parquet")
    transmissions = pl.read_parquet(run_dir / "transmissions.parquet")
    for meme in view.meme_ids:
        for step in range(8):
            summary = TreeSummary.of(view.tree(meme, step))
            infected = steps.filter((pl.col("step") == step) & (pl.col("meme_id") == meme))
            edges = transmissions.filter(
                (pl.col("meme_id") == meme) & pl.col("is_infection") & (pl.col("step") <= step)
            )
            assert summary.agents == infected["infected"][0]
            assert summary.infection_edges == edges.height
            assert summary.environment == (meme == "lesson")
    summary = TreeSummary.of(view.tree("lesson", 7))
    infected = steps.filter((pl.col("step") == 7) & (pl.col("meme_id") == "lesson"))["infected"][0]
    assert summary.caption("lesson", 7).startswith(
        f"meme `lesson`: {infected} agents and the environment in the tree, "
    )


def test_the_inspector_shows_the_guards_verdicts_and_when_entries_left(run_dir: Path) -> None:
    view = RunView.from_run_dir(run_dir)
    decisions = pl.read_parquet(run_dir / "guard_decisions.parquet")
    memories = pl.read_parquet(run_dir / "memories.parquet")
    banks = dict(pl.read_parquet(run_dir / "banks.parquet").select("bank_id", "name").iter_rows())
    assert set(decisions["phase"]) == {"write", "rollback"}
    for (step, agent), rows in decisions.group_by("step", "agent_id", maintain_order=True):
        shown = view.verdicts(agent, step)
        assert shown["verdict"].to_list() == rows["verdict"].to_list()
        assert shown["entry_id"].to_list() == rows["entry_id"].to_list()
        assert shown["bank"].to_list() == [banks[b] for b in rows["bank_id"]]
        assert shown["reason"].to_list() == rows["reason"].to_list()
    # A rejected write never reached a bank: only its verdict shows it.
    held = decisions.filter(pl.col("verdict") == "reject").row(0, named=True)
    assert held["entry_id"] == -1
    assert "reject" in view.verdicts(held["agent_id"], held["step"])["verdict"].to_list()
    # A rolled-back entry is listed where its author wrote it, with the step it left.
    gone = decisions.filter(pl.col("phase") == "rollback").row(0, named=True)
    entry = memories.filter(pl.col("entry_id") == gone["entry_id"]).row(0, named=True)
    written = view.written(entry["author_id"], entry["step"])
    row = written.filter(pl.col("entry_id") == gone["entry_id"]).row(0, named=True)
    assert row["removed_step"] == entry["removed_step"] == gone["step"]
    kept = memories.filter(pl.col("removed_step") == -1).row(0, named=True)
    shown = view.written(kept["author_id"], kept["step"]).filter(
        pl.col("entry_id") == kept["entry_id"]
    )
    assert shown["removed_step"].to_list() == [None]
    assert view.replies(0, 0).height == 0 and not view.has_generations


def test_reset_rewinds_a_replay_to_step_zero_and_step_shows_each_step(run_dir: Path) -> None:
    pytest.importorskip("solara")
    from experiments.dashboard.app import reset_params
    from experiments.dashboard.models import ReplayModel

    opened = ReplayModel(str(run_dir))
    assert (opened.view_step, opened.running) == (7, False)
    params = reset_params(opened)
    assert params == {"run_dir": str(run_dir), "view_step": 0}
    replay = ReplayModel(**params)
    shown = [replay.view_step]
    while replay.running:
        replay.step()
        shown.append(replay.view_step)
    assert shown == list(range(8))
    replay.step()  # past the end: stays at the last step
    assert (replay.view_step, replay.running) == (7, False)


def _stopped_run(
    root: Path, monkeypatch: pytest.MonkeyPatch, stop: BaseException, checkpoint_every: int = 3
) -> Path:
    """The run of :data:`CONFIG` stopped after its last step, as it writes its tables.

    polars' Parquet writer raises ``stop`` for ``steps.parquet`` (an external library,
    not a project class): a KeyboardInterrupt (Ctrl-C) leaves status ``interrupted``,
    another error ``failed``. Either way no table is written and the last checkpoint
    stays: with ``checkpoint_every = 3``, the one after step 5 (6 steps completed).
    """
    root.mkdir()
    config_path = root / "dash.toml"
    config_path.write_text(
        CONFIG.replace("steps = 8\n", f"steps = 8\ncheckpoint_every = {checkpoint_every}\n")
    )
    real = pl.DataFrame.write_parquet

    def write(frame: pl.DataFrame, file: Any, *args: Any, **kwargs: Any) -> None:
        if "steps.parquet" in str(file):
            raise stop
        real(frame, file, *args, **kwargs)

    target = root / "run"
    monkeypatch.setattr(pl.DataFrame, "write_parquet", write)
    with pytest.raises(type(stop)):
        run_experiment(load_config(config_path), target, progress=False)
    monkeypatch.undo()
    return target


def _without_wall_clock(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop([c for c in frame.columns if c.endswith("_wall_s")])


def test_an_interrupted_run_is_replayed_up_to_its_last_checkpoint(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = _stopped_run(tmp_path / "stopped", monkeypatch, KeyboardInterrupt())
    manifest = json.loads((stopped / "manifest.json").read_text())
    assert (manifest["status"], manifest["steps_completed"]) == ("interrupted", 6)
    assert not list(stopped.glob("*.parquet"))  # the runner wrote no table
    on_disk = sorted(p.relative_to(stopped) for p in stopped.rglob("*"))
    assert describe_target(stopped) == {
        "kind": "run",
        "path": str(stopped),
        "name": "dash-contagion",
    }
    view = RunView.from_run_dir(stopped)
    assert sorted(p.relative_to(stopped) for p in stopped.rglob("*")) == on_disk  # untouched
    assert view.unfinished is not None and view.unfinished.steps_completed == 6
    assert view.last_step == 5
    assert view.unfinished.note == (
        "**Unfinished run: status `interrupted`.** The run was interrupted (Ctrl-C or "
        "SIGTERM) some time after its last checkpoint, which holds 6 of its 8 steps (steps 0 "
        "to 5): this page replays those; the steps it ran after the checkpoint were lost. "
        f"`memespread resume {stopped}` finishes it from step 6."
    )
    # Its tables are the complete run's first 6 steps, and so is everything shown.
    whole = RunView.from_run_dir(run_dir)
    assert whole.unfinished is None
    for name in ("steps", "agents", "transmissions", "turnover", "guard_decisions"):
        first = pl.read_parquet(run_dir / f"{name}.parquet").filter(pl.col("step") <= 5)
        assert _without_wall_clock(view.tables[name]).equals(_without_wall_clock(first)), name
    memories = pl.read_parquet(run_dir / "memories.parquet").filter(pl.col("step") <= 5)
    columns = ["entry_id", "bank_id", "author_id", "step", "text", "memes"]
    assert view.tables["memories"].select(columns).equals(memories.select(columns))
    for meme in view.meme_ids:
        for step in range(6):
            assert view.counts(step, meme) == whole.counts(step, meme)
            assert view.states(step, meme).equals(whole.states(step, meme))
            assert view.tree(meme, step).equals(whole.tree(meme, step))
    assert view.prevalence().equals(whole.prevalence().filter(pl.col("step") <= 5))


def test_the_page_says_the_run_is_unfinished_and_how_to_resume_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    solara = pytest.importorskip("solara")
    import ipyvuetify as v

    from experiments.dashboard.app import StepPanel, make_page
    from experiments.dashboard.models import ReplayModel

    stopped = _stopped_run(tmp_path / "stopped", monkeypatch, RuntimeError("disk on fire"))
    assert json.loads((stopped / "manifest.json").read_text())["status"] == "failed"
    model = ReplayModel(str(stopped))
    assert (model.view_step, model.last_step) == (5, 5)
    _, rc = solara.render(StepPanel(model=model, step=5, version=5), handle_error=False)
    alert = rc.find(v.Alert, class_="memespread-unfinished")
    assert len(alert.widgets) == 1
    texts = [w.template for w in rc.find(v.VuetifyTemplate).widgets]
    shown = " ".join(" ".join(t if isinstance(t, str) else t.template for t in texts).split())
    assert (
        "The run failed (RuntimeError: disk on fire) some time after its last checkpoint, "
        "which holds 6 of its 8 steps (steps 0 to 5)"
    ) in shown
    assert f"memespread resume {stopped}</code> tries it again from step 6" in shown
    assert "<strong>step 5</strong> of 5 · 60 agents" in shown  # the slider ends at step 5
    page = make_page(model)
    assert page.kwargs["name"] == (
        "memespread dashboard: dash-contagion (replay, failed after 6 of 8 steps)"
    )


def test_unfinished_runs_without_a_replay_are_one_line_naming_the_status(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    no_checkpoint = _stopped_run(tmp_path / "early", monkeypatch, KeyboardInterrupt(), 0)
    running = tmp_path / "running"
    running.mkdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "running"
    (running / "manifest.json").write_text(json.dumps(manifest))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text((run_dir / "manifest.json").read_text())
    for path, message in (
        (
            no_checkpoint,
            f"{no_checkpoint}: the run is interrupted and has no checkpoint (it "
            "stopped before its first one), so no step of it is on disk to replay; "
            f"`memespread resume {no_checkpoint}` runs it from step 0",
        ),
        (
            running,
            f"{running}: the run's status is 'running': it is still being written (open it "
            f"when it is done), or its process was killed (then `memespread resume {running}` "
            "finishes it); the dashboard opens complete, interrupted and failed runs",
        ),
        (
            damaged,
            f"{damaged}: the run is complete but has no steps, agents, memories, "
            "transmissions, graph table(s): its directory is damaged; rerun its config with "
            "--overwrite",
        ),
    ):
        with pytest.raises(NotARunError) as err:
            describe_target(path)
        assert str(err.value) == message
        assert main(["dashboard", str(path)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == [f"error: {message}"]


def test_the_tree_caption_counts_in_the_right_number() -> None:
    one = TreeSummary(agents=1, infection_edges=1, generations=1, environment=False)
    assert one.caption("m", 2) == (
        "meme `m`: 1 agent in the tree, 1 infection edge, 1 generation deep (up to step 2)"
    )
    more = TreeSummary(agents=3, infection_edges=2, generations=0, environment=True)
    assert more.caption("m", 0) == (
        "meme `m`: 3 agents and the environment in the tree, 2 infection edges, "
        "0 generations deep (up to step 0)"
    )
