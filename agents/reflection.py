"""Reflection: agents consolidate their top memories into belief entries.

With a :class:`ReflectionSpec`, after every ``every`` steps (steps ``every - 1``,
``2 * every - 1``, ...), after the step's writes are committed and before the probe,
each agent that retrieved at least one memory this step and may write a bank of the
configured layer (``bank``) is asked, in ONE batched engine call for all agents, what
it has learned and what matters to it now, shown its top ``memories`` retrieved entries
(best first). Its answer becomes a *belief* entry in its bank of that layer (the first
such bank it may write, by bank id): written by the agent at this step with importance
``importance`` (the retrieval boost of beliefs over notes), and with parents exactly the
consolidated memories, in rank order. So a meme that enters a belief through a memory
by another agent is a transmission edge like any write, and beliefs show in the
transmission tree.

Beliefs go through the same validation, guards and commit as every write (a guard may
reject or down-weight them); they are visible from the next step on. Reflection prompts
follow the shared-prefix-first layout of :mod:`agents.prompts` (shared system text, then
persona, the memories and the reflection question).

The ``reflections`` table has one row per asked agent: step, agent_id, n_parents,
bank_id, status (``written``; ``empty`` when the reply held no usable answer), and
entry_id (the belief's entry, -1 when none was committed, e.g. rejected by a guard).
The ``generations`` table holds the completions with ``kind = "reflect"``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from agents.containment import MIN_CHARS, neutralise
from agents.llm.base import GenerationRequest, SamplingParams, request_seeds
from agents.output_schema import dump_schema, probe_schema_dict
from agents.parsing import ParseStatus, parse_output
from agents.prompts import MemoryLine, probe_messages
from sim.policy import EngineStats, WriteProposals
from sim.retrieval import Retrieval
from topologies.banks import BankKind, Banks

if TYPE_CHECKING:
    from agents.llm_policy import LLMPolicy
    from sim.policy import StepContext

#: The default reflection question.
REFLECTION_QUESTION = (
    "Think about your memories above. In one or two sentences: what have you learned, "
    "and what matters most to you now?"
)

#: Columns of the ``reflections`` table.
REFLECTIONS_SCHEMA = {
    "step": pl.Int32,
    "agent_id": pl.Int32,
    "bank_id": pl.Int32,
    "n_parents": pl.Int32,
    "status": pl.String,
    "entry_id": pl.Int64,
}


class ReflectionSpec(BaseModel):
    """Reflection into belief entries (``[reflection]``).

    Attributes:
        every: Reflect after every this many steps.
        bank: The layer of the bank beliefs are written to (``private``,
            ``neighbourhood``, ``community``, ``edge`` or ``global``); the layout must
            have it (an agent that may write no bank of it does not reflect).
        memories: How many of its top retrieved memories each agent consolidates.
        importance: Importance of a belief entry in [0, 1] (notes have 0.5): with
            ``memory.retrieval.importance_weight > 0`` beliefs are retrieved with this
            boost.
        question: The reflection question.
        max_tokens: Token budget of a reflection reply.
        max_belief_chars: A belief is neutralised and cut to this many characters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: int = Field(5, ge=1)
    bank: Literal["private", "neighbourhood", "community", "edge", "global"] = "private"
    memories: int = Field(5, ge=1, le=64)
    importance: float = Field(1.0, ge=0, le=1)
    question: str = Field(REFLECTION_QUESTION, min_length=1, max_length=2000)
    max_tokens: int = Field(96, ge=1)
    max_belief_chars: int = Field(300, ge=MIN_CHARS)


@dataclass(frozen=True)
class Beliefs:
    """What one reflection phase proposes.

    Attributes:
        writes: One proposed belief per agent that answered (cause -1).
        consolidated: The consolidated memories of every agent (CSR over all agents;
            agents that were not asked have none): the parents of their beliefs.
        asked: Agents asked, ascending.
        banks: The belief bank of each asked agent.
        statuses: ``written`` or ``empty`` per asked agent.
        generations: Rows of the ``generations`` table (``kind = "reflect"``).
        stats: Engine figures.
    """

    writes: WriteProposals
    consolidated: Retrieval
    asked: np.ndarray
    banks: np.ndarray
    statuses: list[str]
    generations: pl.DataFrame | None
    stats: EngineStats


def belief_banks(kind: str, banks: Banks, n_agents: int) -> np.ndarray:
    """Per agent, the first bank of layer ``kind`` it may write, or -1."""
    code = int(BankKind[kind.upper()])
    out = np.full(n_agents, -1, dtype=np.int32)
    for agent in range(n_agents):
        writable = banks.writable(agent)
        hits = writable[banks.kind[writable] == code]
        if len(hits):
            out[agent] = int(hits.min())
    return out


class Reflector:
    """Builds and parses the reflection phase of a step.

    Args:
        spec: The reflection settings.
    """

    def __init__(self, spec: ReflectionSpec) -> None:
        self.spec = spec
        self._banks: np.ndarray | None = None

    def due(self, step: int) -> bool:
        """Whether agents reflect at the end of ``step``."""
        return (step + 1) % self.spec.every == 0

    def consolidated(self, context: StepContext) -> Retrieval:
        """Each agent's top ``memories`` retrieved entries (none for agents without a bank)."""
        retrieval = context.retrieval
        n = retrieval.n_agents
        if self._banks is None:
            self._banks = belief_banks(self.spec.bank, context.banks, n)
        counts = np.minimum(np.diff(retrieval.indptr), self.spec.memories)
        counts[self._banks < 0] = 0
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        rows = np.concatenate(
            [np.arange(s, s + c) for s, c in zip(retrieval.indptr[:-1], counts, strict=True)]
            or [np.zeros(0, dtype=np.int64)]
        ).astype(np.int64)
        return Retrieval(
            indptr=indptr, entry_ids=retrieval.entry_ids[rows], scores=retrieval.scores[rows]
        )

    def requests(
        self, policy: LLMPolicy, context: StepContext, consolidated: Retrieval
    ) -> tuple[list[GenerationRequest], np.ndarray]:
        """One reflection request per agent with memories to consolidate (ascending ids).

        Draws one seed per agent of the model (all agents, as one array) first.
        """
        n = consolidated.n_agents
        seeds = request_seeds(context.rng, n)
        asked = np.flatnonzero(np.diff(consolidated.indptr) > 0).astype(np.int32)
        schema = (
            dump_schema(probe_schema_dict(self.spec.max_belief_chars))
            if policy.spec.json_mode
            else None
        )
        requests = []
        store, names = context.store, context.banks.names
        for agent in asked.tolist():
            memories = [
                MemoryLine(names[int(store.bank[e])], store.texts.get(int(store.text_id[e])))
                for e in consolidated.of(agent).tolist()
            ]
            persona = policy.persona(agent, int(context.tracker.lineage[agent]))
            requests.append(
                GenerationRequest(
                    request_id=f"s{context.step}-a{agent}-reflect",
                    messages=probe_messages(
                        policy.shared,
                        persona,
                        memories,
                        self.spec.question,
                        policy.spec.max_memory_chars,
                    ),
                    sampling=SamplingParams(
                        temperature=policy.spec.temperature,
                        top_p=policy.spec.top_p,
                        max_tokens=self.spec.max_tokens,
                        seed=int(seeds[agent]),
                    ),
                    json_schema=schema,
                )
            )
        return requests, asked

    def reflect(self, policy: LLMPolicy, context: StepContext) -> Beliefs:
        """Ask every agent with memories, in one batched call; propose their beliefs."""
        from agents.llm_policy import batch_stats, generations_frame

        consolidated = self.consolidated(context)
        requests, asked = self.requests(policy, context, consolidated)
        assert self._banks is not None
        if not requests:
            return Beliefs(
                writes=WriteProposals.empty(),
                consolidated=consolidated,
                asked=asked,
                banks=np.zeros(0, dtype=np.int32),
                statuses=[],
                generations=None,
                stats=EngineStats(),
            )
        started = time.perf_counter()
        completions = policy.engine.generate(requests)
        wall = time.perf_counter() - started
        parsed = [parse_output(c) for c in completions]
        texts, statuses = [], []
        for p in parsed:
            text = p.answer if p.status is ParseStatus.OK else ""
            text = neutralise(text, self.spec.max_belief_chars).strip() if text.strip() else ""
            texts.append(text)
            statuses.append("written" if text else "empty")
        keep = np.array([bool(t) for t in texts], dtype=np.bool_)
        banks = self._banks[asked]
        writes = WriteProposals(
            author=asked[keep],
            bank=banks[keep],
            text=[t for t in texts if t],
            importance=np.full(int(keep.sum()), self.spec.importance, dtype=np.float32),
            cause=np.full(int(keep.sum()), -1, dtype=np.int64),
        )
        frame = generations_frame(
            context.step,
            asked.tolist(),
            "reflect",
            [self.spec.question] * len(asked),
            requests,
            completions,
            parsed,
        )
        stats = batch_stats(completions, parsed, wall)
        return Beliefs(writes, consolidated, asked, banks, statuses, frame, stats)


def reflections_frame(
    step: int, beliefs: Beliefs, authors: np.ndarray, entry_ids: np.ndarray
) -> pl.DataFrame:
    """Rows of the ``reflections`` table.

    Args:
        step: The step.
        beliefs: The phase's proposals.
        authors: Author of each committed belief entry.
        entry_ids: The committed belief entries (parallel to ``authors``).
    """
    committed = dict(zip(authors.tolist(), entry_ids.tolist(), strict=True))
    asked = beliefs.asked.tolist()
    n_parents = np.diff(beliefs.consolidated.indptr)
    return pl.DataFrame(
        {
            "step": [step] * len(asked),
            "agent_id": asked,
            "bank_id": beliefs.banks.tolist(),
            "n_parents": [int(n_parents[a]) for a in asked],
            "status": beliefs.statuses,
            "entry_id": [committed.get(a, -1) for a in asked],
        },
        schema=REFLECTIONS_SCHEMA,
    )
