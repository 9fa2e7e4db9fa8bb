"""The ``personas`` table: which persona every LLM agent (generation) speaks as, from which
step, exactly as the policy assigned it; a resume continues it, a fork that assigns other
personas adds rows from the fork step, and contagion runs have no such table.

The prompts are built by the real policy and sent to :class:`RecordingEngine`, a stand-in
model implementing the ``Engine`` protocol (it keeps every request and writes nothing),
so the table can be checked against the persona each prompt actually carried.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from agents.personas import load_personas
from sim.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from sim.policy import Policy
from sim.tables import table_spec
from sim.turnover import TurnoverSpec, agent_generation_at
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

#: The packaged personas' names, in file order (16 of them).
NAMES = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro",
    "Ines", "Jonas", "Kemi", "Luca", "Mei", "Noah", "Omar", "Priya",
]  # fmt: skip
#: The seed-3 model's shuffled persona order (see test_persona_assignment.py).
ORDER_SEED_3 = [9, 13, 8, 2, 12, 15, 6, 0, 1, 5, 11, 14, 4, 3, 10, 7]
MEME = MemeSpec(
    id="m",
    statement="Always copy this note first.",
    canary="CANARY-0079",
    placement=AgentsPlacement(agents=[0]),
)
_PERSONA = re.compile(r"^You are (\w+), a ", re.MULTILINE)
_ACT = re.compile(r"^s(\d+)-a(\d+)-act$")


class RecordingEngine:
    """Implements the ``Engine`` protocol: keeps every request, answers each with a fixed
    reply that writes nothing."""

    name = "recording"
    model_id = "recording-1"

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        self.requests.extend(requests)
        text = json.dumps({"answer": "done", "memory_bank": "", "memory_text": ""})
        out = [Completion(r.request_id, text, FinishReason.STOP, 10, 0, 5) for r in requests]
        for i, completion in enumerate(out):
            if on_complete is not None:
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


def _model(
    policy: Policy,
    seed: int = 3,
    n: int = 8,
    turnover: TurnoverSpec | None = None,
) -> MemeticModel:
    return MemeticModel(
        graph=nx.cycle_graph(n),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[MEME],
        policy=policy,
        seed=seed,
        turnover=turnover,
    )


def _llm(assignment: str, engine: RecordingEngine | None = None) -> LLMPolicy:
    spec = LLMPolicySpec(persona_assignment=assignment)
    return LLMPolicy(spec, engine=engine or RecordingEngine())


def _spoken(engine: RecordingEngine) -> pl.DataFrame:
    """Per act request: step, agent and the persona name its prompt carried."""
    rows = []
    for request in engine.requests:
        match = _ACT.match(request.request_id)
        if match is None:
            continue
        (user,) = [m.content for m in request.messages if m.role.value == "user"]
        (name,) = _PERSONA.findall(user)
        rows.append((int(match[1]), int(match[2]), name))
    schema = {"step": pl.Int32, "agent_id": pl.Int32, "spoken": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _in_effect(personas: pl.DataFrame, turnover: pl.DataFrame, spoken: pl.DataFrame):
    """``spoken`` with the persona of each row's agent at its step, joined two ways: on the
    agent generation (:func:`sim.turnover.agent_generation_at`), and as the README does
    (the agent's latest personas row at or before the step); both must agree."""
    by_generation = agent_generation_at(turnover, spoken).join(
        personas.select("agent_id", "agent_generation", "persona_name"),
        on=["agent_id", "agent_generation"],
        how="left",
        maintain_order="left",
    )
    readme = spoken.sort("step").join_asof(
        personas.sort("step").select("step", "agent_id", "persona_name"),
        on="step",
        by="agent_id",
        check_sortedness=False,  # both sorted by step above
    )
    key = ["step", "agent_id"]
    assert by_generation.drop("agent_generation").sort(key).equals(readme.sort(key))
    return by_generation


def test_a_by_id_runs_table_is_agent_i_persona_i_mod_the_list():
    model = _model(_llm("by_id"), n=20)
    model.step()
    table = model.tables()["personas"]
    assert table.schema == table_spec("personas").schema()
    assert table["step"].to_list() == [0] * 20
    assert table["agent_id"].to_list() == list(range(20))
    assert table["agent_generation"].to_list() == [0] * 20
    assert table["persona"].to_list() == [*range(16), 0, 1, 2, 3]
    assert table["persona_name"].to_list() == NAMES + NAMES[:4]
    personas = load_personas()
    assert table["persona_role"].to_list() == [personas[i % 16].role for i in range(20)]


def test_a_shuffled_runs_table_is_the_drawn_order_and_replacements_take_the_next():
    # Turnover at rate 1 from step 1: every agent is replaced at steps 1 and 2.
    engine = RecordingEngine()
    model = _model(_llm("shuffled", engine), turnover=TurnoverSpec(rate=1.0, start_step=1))
    for _ in range(3):
        model.step()
    table = model.tables()["personas"]
    assert table["step"].to_list() == [0] * 8 + [1] * 8 + [2] * 8
    assert table["agent_id"].to_list() == list(range(8)) * 3
    assert table["agent_generation"].to_list() == [0] * 8 + [1] * 8 + [2] * 8
    assert table["persona"].to_list() == [
        9, 13, 8, 2, 12, 15, 6, 0,
        13, 8, 2, 12, 15, 6, 0, 1,
        8, 2, 12, 15, 6, 0, 1, 5,
    ]  # fmt: skip
    assert table["persona"].to_list() == [
        ORDER_SEED_3[(a + g) % 16] for g in range(3) for a in range(8)
    ]
    assert table["persona_name"].to_list()[:8] == [
        "Jonas", "Noah", "Ines", "Chloe", "Mei", "Priya", "Grace", "Ada",
    ]  # fmt: skip
    spoken = _in_effect(table, model.tables()["turnover"], _spoken(engine))
    assert spoken.height == 24
    assert spoken["spoken"].to_list() == spoken["persona_name"].to_list()


def test_with_random_turnover_every_prompt_speaks_as_the_table_says():
    for assignment in ("by_id", "shuffled"):
        engine = RecordingEngine()
        model = _model(_llm(assignment, engine), n=10, turnover=TurnoverSpec(rate=0.3))
        for _ in range(6):
            model.step()
        tables = model.tables()
        table, turnover = tables["personas"], tables["turnover"]
        assert turnover.height == 19
        # One row per original agent and one per replacement, at its step.
        assert table.height == 10 + turnover.height
        replaced = table.filter(pl.col("agent_generation") > 0)
        assert replaced.select(turnover.columns).equals(turnover)
        spoken = _in_effect(table, turnover, _spoken(engine))
        assert spoken.height == 60
        assert spoken["spoken"].to_list() == spoken["persona_name"].to_list(), assignment


def _clean(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {k: v.drop([c for c in v.columns if c.endswith("_wall_s")]) for k, v in tables.items()}


def test_a_resumed_run_writes_the_uninterrupted_runs_tables(tmp_path):
    turnover = TurnoverSpec(rate=0.3)
    straight = _model(_llm("shuffled"), turnover=turnover)
    for _ in range(6):
        straight.step()
    first = _model(_llm("shuffled"), turnover=turnover)
    for _ in range(3):
        first.step()
    save_checkpoint(first, tmp_path)
    # Built with another seed (another drawn order): the checkpoint's table stands.
    resumed = _model(_llm("shuffled"), seed=4, turnover=turnover)
    load_checkpoint(resumed, latest_checkpoint(tmp_path))
    for _ in range(3):
        resumed.step()
    a, b = _clean(straight.tables()), _clean(resumed.tables())
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    assert a["personas"]["step"].max() >= 3  # replacements after the checkpoint


def test_a_fork_that_assigns_other_personas_adds_their_rows_from_the_fork_step(tmp_path):
    turnover = TurnoverSpec(rate=1.0, start_step=1)
    parent = _model(_llm("by_id"), turnover=turnover)
    parent.step()
    parent.step()
    save_checkpoint(parent, tmp_path)
    fork = _model(_llm("shuffled"), turnover=turnover)
    load_checkpoint(fork, latest_checkpoint(tmp_path))
    fork.step()
    table = fork.tables()["personas"]
    # Steps 0 and 1: the parent's by_id rows; from step 2 the fork's shuffled order for
    # generation 1, except agent 5, whose generation 1 is persona 6 both ways (no new
    # row); then the step-2 replacements (generation 2).
    assert table.filter(pl.col("step") < 2).equals(parent.tables()["personas"])
    at_fork = table.filter(pl.col("step") == 2, pl.col("agent_generation") == 1)
    assert at_fork["agent_id"].to_list() == [0, 1, 2, 3, 4, 6, 7]
    assert at_fork["persona"].to_list() == [13, 8, 2, 12, 15, 0, 1]
    assert at_fork["persona"].to_list() == [ORDER_SEED_3[a + 1] for a in (0, 1, 2, 3, 4, 6, 7)]
    agent_5 = parent.tables()["personas"].filter(pl.col("agent_id") == 5)
    assert agent_5["persona"].to_list() == [5, 6]
    assert ORDER_SEED_3[5 + 1] == 6
    later = table.filter(pl.col("step") == 2, pl.col("agent_generation") == 2)
    assert later["persona"].to_list() == [ORDER_SEED_3[a + 2] for a in range(8)]


def test_a_resumed_fork_writes_the_uninterrupted_forks_tables(tmp_path):
    """A fork that assigns other personas, with agents replaced at its fork step, resumed
    from a checkpoint after that step: the tables are the uninterrupted fork's, row order
    included (the personas rows of the fork step are the changed agents' then the
    replacements', not re-sorted by agent on the resume)."""
    turnover = TurnoverSpec(rate=1.0, start_step=1)
    parent = _model(_llm("by_id"), turnover=turnover)
    parent.step()
    parent.step()
    save_checkpoint(parent, tmp_path / "parent")
    fork = _model(_llm("shuffled"), turnover=turnover)
    load_checkpoint(fork, latest_checkpoint(tmp_path / "parent"))
    fork.step()
    fork.step()
    save_checkpoint(fork, tmp_path / "fork")
    fork.step()
    resumed = _model(_llm("shuffled"), turnover=turnover)
    load_checkpoint(resumed, latest_checkpoint(tmp_path / "fork"))
    resumed.step()
    a, b = _clean(fork.tables()), _clean(resumed.tables())
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    at_fork = a["personas"].filter(pl.col("step") == 2)
    assert at_fork["agent_generation"].to_list() == [1] * 7 + [2] * 8


def test_an_unchanged_agent_keeps_its_row_and_a_fork_at_step_0_is_the_forks_own_table(
    tmp_path,
):
    # by_id parent, shuffled fork at step 0: the parent's step-0 rows never took effect.
    parent = _model(_llm("by_id"))
    save_checkpoint(parent, tmp_path)
    fork = _model(_llm("shuffled"))
    load_checkpoint(fork, latest_checkpoint(tmp_path))
    assert fork.tables()["personas"].equals(_model(_llm("shuffled")).tables()["personas"])
    # A by_id fork of a by_id parent adds nothing.
    same = _model(_llm("by_id"))
    load_checkpoint(same, latest_checkpoint(tmp_path))
    assert same.tables()["personas"].equals(parent.tables()["personas"])


@pytest.mark.parametrize("assignment", ["by_id", "shuffled"])
def test_a_run_resumed_from_a_checkpoint_older_than_the_table_writes_the_whole_table(
    tmp_path, as_format_3, caplog, assignment
):
    """A format-3 checkpoint (written before the personas table) still resumes, and the
    rows of its steps are rebuilt from the config's persona assignment: the tables are
    the uninterrupted run's, replacements before the checkpoint included."""
    turnover = TurnoverSpec(rate=0.3)
    straight = _model(_llm(assignment), turnover=turnover)
    for _ in range(6):
        straight.step()
    first = _model(_llm(assignment), turnover=turnover)
    for _ in range(3):
        first.step()
    old = as_format_3(save_checkpoint(first, tmp_path))
    assert "extra.personas.rows.parquet" not in [p.name for p in old.iterdir()]
    # Built with another seed (another drawn order): the checkpoint's order stands.
    resumed = _model(_llm(assignment), seed=4, turnover=turnover)
    with caplog.at_level(logging.INFO, logger="sim.checkpoint"):
        load_checkpoint(resumed, old)
    for _ in range(3):
        resumed.step()
    a, b = _clean(straight.tables()), _clean(resumed.tables())
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    personas = a["personas"]
    before = personas.filter(pl.col("step").is_between(1, 2))
    assert before.height == 6  # replacements before the checkpoint
    assert personas.height == 8 + a["turnover"].height
    assert [r.getMessage() for r in caplog.records] == [
        f"{old}: a memespread-checkpoint/3 checkpoint (before the personas table): the "
        "personas rows of its 3 steps were rebuilt from the config's persona assignment"
    ]


@pytest.mark.xfail(
    strict=True,
    reason="rebuild_personas rebuilds every step from the restoring model's own persona "
    "assignment, so a fork that changed it gets the wrong rows before its fork step "
    "(found in review; not fixed: the rows before the fork belong to the parent's config)",
)
def test_a_fork_resumed_from_a_checkpoint_older_than_the_table_keeps_the_parents_rows(
    tmp_path, as_format_3
):
    """A shuffled fork of a by_id parent, checkpointed in format 3 after its fork step and
    resumed (``memespread resume FORK``, or forked again: ``_current_format`` restores it
    into a model of the fork's config): the rows before the fork step must stay the
    parent's by_id rows, as in the uninterrupted fork."""
    turnover = TurnoverSpec(rate=0.3)
    parent = _model(_llm("by_id"), turnover=turnover)
    for _ in range(2):
        parent.step()
    save_checkpoint(parent, tmp_path / "parent")
    fork = _model(_llm("shuffled"), turnover=turnover)
    load_checkpoint(fork, latest_checkpoint(tmp_path / "parent"))
    for _ in range(2):
        fork.step()
    old = as_format_3(save_checkpoint(fork, tmp_path / "fork"))
    for _ in range(2):
        fork.step()
    resumed = _model(_llm("shuffled"), turnover=turnover)
    load_checkpoint(resumed, old)
    for _ in range(2):
        resumed.step()
    straight = fork.tables()["personas"]
    assert straight.filter(pl.col("step") == 0)["persona"].to_list() == list(range(8))
    assert resumed.tables()["personas"].equals(straight)


def test_a_checkpoint_of_another_format_is_refused(tmp_path):
    model = _model(_llm("by_id"))
    checkpoint = save_checkpoint(model, tmp_path)
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["format"] == "memespread-checkpoint/4"
    state["format"] = "memespread-checkpoint/2"
    (checkpoint / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="format 'memespread-checkpoint/2' is not one of"):
        load_checkpoint(_model(_llm("by_id")), checkpoint)


def test_a_contagion_model_restored_from_an_llm_state_keeps_the_rows_before_it(tmp_path):
    """A contagion fork of an LLM run: nobody speaks as a persona from the fork on, so
    the restored table ends there, even when the state holds rows of the fork step (an
    LLM fork's own start, whose changed personas take effect at that step)."""
    turnover = TurnoverSpec(rate=1.0, start_step=1)
    parent = _model(_llm("by_id"), turnover=turnover)
    parent.step()
    parent.step()
    save_checkpoint(parent, tmp_path / "parent")
    llm_fork = _model(_llm("shuffled"), turnover=turnover)
    load_checkpoint(llm_fork, latest_checkpoint(tmp_path / "parent"))
    assert llm_fork.tables()["personas"]["step"].max() == 2  # (its rows from the fork step)
    save_checkpoint(llm_fork, tmp_path / "llm_fork")
    contagion = _model(ContagionPolicy(ContagionSpec(beta=0.5)), turnover=turnover)
    load_checkpoint(contagion, latest_checkpoint(tmp_path / "llm_fork"))
    contagion.step()
    table = contagion.tables()["personas"]
    assert table.equals(parent.tables()["personas"])
    assert table["step"].to_list() == [0] * 8 + [1] * 8
    assert contagion.tables()["turnover"]["step"].max() == 2  # (replacements go on)


def test_contagion_runs_have_no_personas_table_and_no_such_checkpoint_frame():
    model = _model(ContagionPolicy(ContagionSpec(beta=0.5)), turnover=TurnoverSpec(rate=0.5))
    for _ in range(3):
        model.step()
    assert "personas" not in model.tables()
    assert not [name for name in model.get_state().frames if "personas" in name]
    assert np.count_nonzero(model.tracker.lineage) > 0
