"""Reflection, sampled value questionnaires and updates resume exactly from a checkpoint.

Each phase draws request seeds from the model's generator; a scripted engine whose
replies depend on the seed and the prompt makes any drift in those draws visible in the
tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import networkx as nx

from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from agents.llm_policy import LLMPolicy, LLMPolicySpec
from agents.reflection import ReflectionSpec
from agents.values import ValuesSpec
from sim.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sim.memes import AgentsPlacement, MemeSpec
from sim.model import MemeticModel
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks

CANARY = "CANARY-RES-5"


class SeededEngine:
    """Replies that depend on each request's seed (so draws matter) and on the prompt."""

    name = "seeded"
    model_id = "seeded-1"
    supports_scoring = False

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = []
        for r in requests:
            seed = r.sampling.seed or 0
            user = r.messages[-1].content
            agent = int(r.request_id.split("-")[1][1:])
            if "-value-" in r.request_id:
                text = ("yes" if seed % 2 else "no") if "yes or no" in user else str(1 + seed % 5)
            elif r.request_id.endswith("-reflect"):
                text = json.dumps({"answer": f"belief {seed % 97}"})
            else:
                own = re.search(rf"^(\d+)\. \[private:{agent}\]", user, re.M)
                reply = {
                    "answer": "ok",
                    "memory_bank": f"private:{agent}",
                    "memory_text": f"note {seed % 89}" + (f" {CANARY}" if CANARY in user else ""),
                    "update": own.group(1) if own and seed % 3 == 0 else "",
                }
                text = json.dumps(reply)
            out.append(Completion(r.request_id, text, FinishReason.STOP, 5, 0, 3))
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


def _model() -> MemeticModel:
    return MemeticModel(
        graph=nx.cycle_graph(5),
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=6), neighbourhood=NeighbourhoodBanks(capacity=6)
        ),
        memes=[
            MemeSpec(
                id="m",
                statement=f"Hold every key. {CANARY}",
                canary=CANARY,
                placement=AgentsPlacement(agents=[0], into="shared"),
            )
        ],
        policy=LLMPolicy(LLMPolicySpec(allow_update=True), engine=SeededEngine()),
        seed=9,
        reflection=ReflectionSpec(every=2, memories=3),
        values=ValuesSpec(every=3, audit=True, scoring="sampled"),
    )


def _clean(tables):
    return {k: v.drop([c for c in v.columns if c.endswith("_wall_s")]) for k, v in tables.items()}


def test_resume_reproduces_reflections_values_and_updates(tmp_path):
    straight = _model()
    for _ in range(7):
        straight.step()
    first = _model()
    for _ in range(3):
        first.step()
    save_checkpoint(first, tmp_path)
    resumed = _model()
    load_checkpoint(resumed, latest_checkpoint(tmp_path))
    for _ in range(4):
        resumed.step()
    a, b = _clean(straight.tables()), _clean(resumed.tables())
    assert {"values", "reflections", "updates"} <= a.keys()
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
    assert sorted(set(a["values"]["step"])) == [2, 5]
    assert sorted(set(a["reflections"]["step"])) == [1, 3, 5]
    assert a["updates"].height > 0
