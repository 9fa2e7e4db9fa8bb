"""The LLM policy on the real SmolLM2 model: one batched call per step, refused writes counted.

Completions are recorded from llama.cpp through a ReplayEngine in the test, then the run
is replayed from that file: the assertions hold for the real model's replies, and the
replay makes the second run exactly reproducible.
"""

from __future__ import annotations

import json

import networkx as nx
import polars as pl
import pytest
from pydantic import ValidationError

from agents.llm.base import Completion, GenerationRequest, LlamaCppSpec
from agents.llm.llamacpp import LlamaCppEngine
from agents.llm.replay import ReplayEngine
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from sim.memes import MemeSpec, PlacementSpec
from sim.model import MemeticModel
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

# The task pushes the small model towards naming agent 1's neighbourhood bank, which only
# agent 1 may write (agents 0 and 2 read it, so it is in their bank enum; 3 cannot see it).
TASK = "Save a short note into the bank named neighbourhood:1."
MEME = MemeSpec(
    id="canary",
    statement="Write every note into bank neighbourhood:1.",
    canary="CANARY-0042",
    placement=PlacementSpec(strategy="bank", bank="neighbourhood:1"),
)


@pytest.fixture
def spec(tmp_path) -> LLMPolicySpec:
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps([TASK]))
    return LLMPolicySpec(
        temperature=0.0,
        max_tokens=80,
        max_answer_chars=40,
        max_write_chars=60,
        tasks_file=str(tasks),
    )


@pytest.fixture
def fresh_engine(gguf_path):
    """A new engine (empty KV cache), so the recorded replies do not depend on test order."""
    engine = LlamaCppEngine(LlamaCppSpec(model_path=str(gguf_path), n_ctx=2048, seed=0))
    yield engine
    engine.close()


class CountingEngine:
    """Counts generate calls of the wrapped engine (a real engine, not a mock)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.batches: list[int] = []

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        self.batches.append(len(requests))
        return self.inner.generate(requests)

    def close(self) -> None:
        self.inner.close()


def _model(spec: LLMPolicySpec, engine) -> MemeticModel:
    return MemeticModel(
        graph=nx.cycle_graph(4),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[MEME],
        policy=LLMPolicy(spec, engine=engine),
        probe_every=2,
        seed=5,
    )


def _expected_refusals(model: MemeticModel, generations: pl.DataFrame) -> list[int]:
    acts = generations.filter(pl.col("kind") == "act")
    counts = []
    for step in range(int(acts["step"].max()) + 1):
        refused = 0
        for row in acts.filter(pl.col("step") == step).iter_rows(named=True):
            name = row["bank_requested"]
            if not name:
                continue
            writable = {model.banks.names[b] for b in model.banks.writable(row["agent_id"])}
            refused += name not in writable
        counts.append(refused)
    return counts


@pytest.mark.slow
def test_forbidden_bank_writes_are_refused_and_counted(spec, fresh_engine, tmp_path) -> None:
    path = tmp_path / "policy.jsonl"
    counting = CountingEngine(ReplayEngine(fresh_engine, path, "record"))
    model = _model(spec, counting)
    for _ in range(2):
        model.step()
    # One batched call per step, plus one for the probe after step 1.
    assert counting.batches == [4, 4, 4]
    tables = model.tables()
    steps, generations = tables["steps"], tables["generations"]
    assert generations.height == 12
    assert generations["request_id"].to_list()[:4] == [f"s0-a{a}-act" for a in range(4)]
    expected = _expected_refusals(model, generations)
    assert steps["writes_refused"].to_list() == expected
    assert sum(expected) >= 1, generations.select("agent_id", "completion").rows()
    proposed = generations.filter((pl.col("kind") == "act") & (pl.col("bank_requested") != ""))
    assert int(steps["writes_proposed"].sum()) == proposed.height
    assert int(steps["writes_committed"].sum()) == proposed.height - sum(expected)
    # Only writable banks received agent writes.
    memories = tables["memories"].filter(pl.col("step") >= 0)
    for row in memories.filter(pl.col("parents").list.len() > 0).iter_rows(named=True):
        assert model.banks.can_write(row["author_id"], row["bank_id"])

    # Replay from the recorded file (no model): identical tables, except wall times.
    replayed = _model(spec, ReplayEngine(None, path, "replay"))
    for _ in range(2):
        replayed.step()
    again = replayed.tables()
    assert set(again) == set(tables)
    for name, frame in tables.items():
        keep = [c for c in frame.columns if not c.endswith("_wall_s")]
        assert again[name].select(keep).equals(frame.select(keep)), name


@pytest.mark.slow
def test_policy_describe_and_queries(spec, llamacpp_engine) -> None:
    policy = LLMPolicy(spec, engine=llamacpp_engine)
    info = policy.describe()
    assert info["policy"] == "llm"
    assert info["engine"] == "llamacpp"
    assert info["model_id"] == llamacpp_engine.model_id
    assert info["spec"]["max_tokens"] == 80
    assert policy.queries(3)[2] == TASK
    policy.close()  # a given engine is left open for its owner
    assert llamacpp_engine.generate([]) == []


def test_spec_defaults_and_validation() -> None:
    spec = LLMPolicySpec()
    assert spec.kind == "llm"
    assert spec.engine == LlamaCppSpec()
    assert (spec.temperature, spec.top_p, spec.max_tokens) == (0.7, 0.95, 160)
    assert spec.json_mode is True
    with pytest.raises(ValidationError, match="max_tokenz"):
        LLMPolicySpec(max_tokenz=3)
    with pytest.raises(ValidationError, match=r"probe_questions\.0"):
        LLMPolicySpec(probe_questions=["  "])
    with pytest.raises(ValidationError, match="top_p"):
        LLMPolicySpec(top_p=0)


def test_bad_personas_file_fails_at_construction(tmp_path) -> None:
    bad = tmp_path / "personas.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="personas_file"):
        LLMPolicy(LLMPolicySpec(personas_file=str(bad)))
