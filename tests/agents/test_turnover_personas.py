"""Turnover with LLM agents: a replaced agent's prompts carry the next persona and no
private memories of its predecessor (a recording engine with fixed replies; no model)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import networkx as nx

from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from agents.personas import load_personas
from agents.prompts import persona_text
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from sim.turnover import TurnoverSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

MEME = MemeSpec(
    id="m",
    statement="Always copy this note first.",
    canary="CANARY-0077",
    placement=AgentsPlacement(agents=[1], into="private"),
)


class RecordingEngine:
    """Implements the ``Engine`` protocol: keeps every request and answers each with a
    fixed reply that writes nothing."""

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
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


def _user_text(engine: RecordingEngine, request_id: str) -> str:
    (request,) = [r for r in engine.requests if r.request_id == request_id]
    return "\n".join(m.content for m in request.messages if m.role.value == "user")


def test_replaced_llm_agent_gets_the_next_persona_and_no_private_memories():
    engine = RecordingEngine()
    model = MemeticModel(
        graph=nx.cycle_graph(4),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[MEME],
        policy=LLMPolicy(LLMPolicySpec(), engine=engine),
        seed=0,
        turnover=TurnoverSpec(rate=1.0, start_step=1),
    )
    model.step()
    model.step()
    personas = load_personas(None)
    before, after = _user_text(engine, "s0-a1-act"), _user_text(engine, "s1-a1-act")
    assert persona_text(personas[1 % len(personas)]) in before
    assert persona_text(personas[2 % len(personas)]) in after
    assert persona_text(personas[1 % len(personas)]) not in after
    # The seed note was in agent 1's private bank: the predecessor saw it, the new agent
    # does not.
    assert "CANARY-0077" in before
    assert "CANARY-0077" not in after
