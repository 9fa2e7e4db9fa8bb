"""The dashboard's data layer against the run's tables: a contagion run with the hard cases.

Two memes (one seeded at hub agents, one seeded into a global bank by the environment),
SIR recovery, agent turnover, a quarantine guard and a rate limit: every view of every
step is compared with the tables it is drawn from (``steps``, ``agents``,
``transmissions``, ``memories``, ``guard_decisions``).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from experiments.cli import main
from experiments.config import load_config
from experiments.dashboard.view import NotARunError, RunView, TreeSummary, describe_target
from experiments.runner import run_experiment

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


def test_an_interrupted_run_is_one_line_naming_resume(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An interrupted run: a manifest and (here, no) checkpoint, none of the tables yet.
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (interrupted / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(NotARunError) as err:
        describe_target(interrupted)
    assert str(err.value) == (
        f"{interrupted}: the run has no steps, agents, memories, transmissions, graph "
        f"table(s) yet (status 'interrupted'); finish it first (memespread resume "
        f"{interrupted})"
    )
    assert main(["dashboard", str(interrupted)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {err.value}"]


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
