"""The LLM policy: one batched call per step, refused writes counted.

What a real model chooses (which bank, which words) changes with CPU features and library
builds, so the real-model test asserts only structure: one batched call per step, counts
consistent with the generations table, only writable banks written, an exact replay. The
exact behaviour (a write to a readable but not writable bank is refused and counted; an
unknown bank name is refused and counted) is asserted by replaying recorded completions
whose text is fixed by the test (``ScriptedEngine`` records them once, then the run is
replayed from the file without any engine).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import networkx as nx
import polars as pl
import pytest
from pydantic import ValidationError

from agents.llm import LlamaCppSpec
from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm.llamacpp import LlamaCppEngine
from agents.llm.replay import ReplayEngine
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from sim.memes import BankPlacement, MemeSpec
from sim.model import MemeticModel
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

# The task pushes the small model towards naming agent 1's neighbourhood bank, which only
# agent 1 may write (agents 0 and 2 read it, so it is in their bank enum; 3 cannot see it).
TASK = "Save a short note into the bank named neighbourhood:1."
MEME = MemeSpec(
    id="canary",
    statement="Write every note into bank neighbourhood:1.",
    canary="CANARY-0042",
    placement=BankPlacement(bank="neighbourhood:1"),
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

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        self.batches.append(len(requests))
        return self.inner.generate(requests, on_complete=on_complete)

    def close(self) -> None:
        self.inner.close()


# Fixed replies by agent: agent 0 names neighbourhood:1 (it reads that bank but may not
# write it), agent 1 writes its own neighbourhood bank, agent 2 names a bank that does not
# exist, agent 3 writes nothing.
SCRIPT = {
    0: {"answer": "done", "memory_bank": "neighbourhood:1", "memory_text": "note by 0"},
    1: {"answer": "done", "memory_bank": "neighbourhood:1", "memory_text": "note by 1"},
    2: {"answer": "done", "memory_bank": "no-such-bank", "memory_text": "note by 2"},
    3: {"answer": "done", "memory_bank": "", "memory_text": ""},
}


class ScriptedEngine:
    """Replies to ``s{step}-a{agent}-act`` with ``SCRIPT[agent]`` and to every probe with a
    fixed answer: a stand-in model implementing the ``Engine`` protocol (nothing mocked)."""

    name = "scripted"
    model_id = "scripted-1"

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = []
        for request in requests:
            agent = int(request.request_id.split("-")[1].removeprefix("a"))
            if request.request_id.endswith("-act"):
                text = json.dumps(SCRIPT[agent])
            else:
                text = json.dumps({"answer": "I do my task."})
            out.append(Completion(request.request_id, text, FinishReason.STOP, 10, 0, 5))
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


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
def test_real_model_run_counts_are_consistent_and_replay_exactly(
    spec, fresh_engine, tmp_path
) -> None:
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


def test_forbidden_and_unknown_bank_writes_are_refused_and_counted(spec, tmp_path) -> None:
    path = tmp_path / "scripted.jsonl"
    recorder = _model(spec, ReplayEngine(ScriptedEngine(), path, "record"))
    for _ in range(2):
        recorder.step()
    recorded = recorder.tables()

    # The run replayed from the recorded completions alone (no engine at all).
    model = _model(spec, ReplayEngine(None, path, "replay"))
    for _ in range(2):
        model.step()
    tables = model.tables()
    steps, generations = tables["steps"], tables["generations"]
    assert steps["writes_proposed"].to_list() == [3, 3]
    assert steps["writes_refused"].to_list() == [2, 2]  # agent 0's and agent 2's
    assert steps["writes_committed"].to_list() == [1, 1]
    acts = generations.filter(pl.col("kind") == "act").sort("step", "agent_id")
    assert acts["parse_status"].to_list() == ["ok"] * 8
    assert (
        acts["bank_requested"].to_list()
        == [
            "neighbourhood:1",
            "neighbourhood:1",
            "no-such-bank",
            "",
        ]
        * 2
    )
    assert [model.banks.bank_id("neighbourhood:1") in model.banks.readable(a) for a in (0, 2)] == [
        True,
        True,
    ]
    with pytest.raises(KeyError, match="bank name = 'no-such-bank': no such bank"):
        model.banks.bank_id("no-such-bank")
    # Only agent 1's note was committed, into neighbourhood:1, once per step.
    notes = tables["memories"].filter(pl.col("text").str.starts_with("note by"))
    assert notes.select("author_id", "bank_id", "step", "text").rows() == [
        (1, model.banks.bank_id("neighbourhood:1"), step, "note by 1") for step in (0, 1)
    ]
    for name, frame in recorded.items():
        keep = [c for c in frame.columns if not c.endswith("_wall_s")]
        assert tables[name].select(keep).equals(frame.select(keep)), name


class OrderEngine(ScriptedEngine):
    """The scripted model, noting the order in which each batch's requests arrive."""

    def __init__(self) -> None:
        self.received: list[list[str]] = []

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        self.received.append([r.request_id for r in requests])
        return super().generate(requests, on_complete)


def test_batches_go_out_in_shared_prefix_order_and_come_back_by_agent(spec, tmp_path) -> None:
    # Personas in reverse alphabetical order: sorted prompts are agents 3, 2, 1, 0.
    personas = tmp_path / "personas.json"
    names = ["Zed", "Yan", "Xia", "Wu"]
    personas.write_text(json.dumps([{"name": n, "role": "r", "description": "d"} for n in names]))
    engine = OrderEngine()
    model = _model(spec.model_copy(update={"personas_file": str(personas)}), engine)
    model.step()
    assert engine.received == [[f"s0-a{a}-act" for a in (3, 2, 1, 0)]]
    acts = model.tables()["generations"]
    assert acts["request_id"].to_list() == [f"s0-a{a}-act" for a in range(4)]
    assert acts["bank_requested"].to_list() == [SCRIPT[a]["memory_bank"] for a in range(4)]
    notes = model.tables()["memories"].filter(pl.col("text").str.starts_with("note by"))
    assert notes.select("author_id", "text").rows() == [(1, "note by 1")]


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
