"""The policy interface: what the model hands a policy each step and what it gets back.

A policy decides, for ALL agents of a step at once, what they write and whether they
adopt memes. The model calls ``policy.act(context)`` exactly once per step (one batched
engine call for an LLM policy) and, every ``probe_every`` steps, ``policy.probe(context)``.
Policies never set provenance: the model attaches parents (the writer's retrieved
entries) and validates every proposed write against the bank layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from sim.memebook import MemeBook
    from sim.memory import MemoryStore
    from sim.retrieval import AgentQueries, Retrieval
    from sim.tracking import Tracker
    from sim.utility import AnswerScores
    from topologies.banks import Banks


@dataclass(frozen=True)
class StepContext:
    """Everything a policy may look at in one step (treat as read-only).

    Attributes:
        step: The current step (0-based).
        retrieval: Each agent's retrieved entries, best first.
        store: The memory store (texts, authors, meme masks of entries).
        banks: The bank layout (read and write rights).
        memes: The run's memes and detectors.
        tracker: Exposure, carrier and adoption state per (agent, meme).
        rng: The model's numpy generator: the only source of randomness a policy may use.
    """

    step: int
    retrieval: Retrieval
    store: MemoryStore
    banks: Banks
    memes: MemeBook
    tracker: Tracker
    rng: np.random.Generator


@dataclass(frozen=True)
class WriteProposals:
    """Proposed memory writes of one step, column by column.

    Attributes:
        author: Writing agent per proposal.
        bank: Target bank per proposal (refused by the model unless the author may write it).
        text: The text per proposal (agent-written text is untrusted).
        importance: Importance in [0, 1] per proposal.
        cause: Optional entry id per proposal (-1 for none) that the policy names as the
            reason for the write; the model accepts it only if it is among the writer's
            retrieved entries (it then decides the source of a transmission edge).
        replaces: Optional entry id per proposal (-1 for none) that the write rewrites
            (the ``update`` action): the model honours it only for an alive entry in the
            writer's context, in the bank written (see :mod:`sim.updates`). None: -1 for
            every proposal.
    """

    author: np.ndarray
    bank: np.ndarray
    text: list[str]
    importance: np.ndarray
    cause: np.ndarray
    replaces: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.author)

    def replaced(self) -> np.ndarray:
        """The entry each proposal rewrites (-1 for none), as an int64 array."""
        if self.replaces is None:
            return np.full(len(self), -1, dtype=np.int64)
        return self.replaces.astype(np.int64)

    @staticmethod
    def empty() -> WriteProposals:
        """No writes."""
        return WriteProposals(
            author=np.zeros(0, dtype=np.int32),
            bank=np.zeros(0, dtype=np.int32),
            text=[],
            importance=np.zeros(0, dtype=np.float32),
            cause=np.zeros(0, dtype=np.int64),
        )

    def select(self, mask: np.ndarray) -> WriteProposals:
        """The proposals where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        return WriteProposals(
            author=self.author[idx],
            bank=self.bank[idx],
            text=[self.text[i] for i in idx.tolist()],
            importance=self.importance[idx],
            cause=self.cause[idx],
            replaces=None if self.replaces is None else self.replaces[idx],
        )


@dataclass(frozen=True)
class Adoptions:
    """Adoption decisions, one per row.

    Agent ``agent[i]`` does (``adopted[i]``) or does not hold meme ``meme[i]`` from now
    on; ``cause[i]`` names the retrieved entry that triggered an adoption, or -1.
    """

    agent: np.ndarray
    meme: np.ndarray
    adopted: np.ndarray
    cause: np.ndarray

    def __len__(self) -> int:
        return len(self.agent)

    @staticmethod
    def empty() -> Adoptions:
        """No decisions."""
        return Adoptions(
            agent=np.zeros(0, dtype=np.int32),
            meme=np.zeros(0, dtype=np.int32),
            adopted=np.zeros(0, dtype=np.bool_),
            cause=np.zeros(0, dtype=np.int64),
        )


@dataclass(frozen=True)
class EngineStats:
    """Inference figures of one batched call (all zero for non-LLM policies)."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    wall_s: float = 0.0

    def __add__(self, other: EngineStats) -> EngineStats:
        return EngineStats(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            failures=self.failures + other.failures,
            wall_s=self.wall_s + other.wall_s,
        )


@dataclass(frozen=True)
class PolicyOutput:
    """What a policy returns for one step (or one probe).

    Attributes:
        writes: Proposed memory writes.
        adoptions: Adoption decisions.
        generations: Optional rows for the ``generations`` table (LLM policies).
        stats: Inference figures.
        removals: Ids of entries the policy retracts (e.g. a recovering agent's carrying
            entries under the contagion policy); the model marks the alive ones removed
            at this step, after retrieval, so they were still visible in this step.
        expressed: Optional boolean (n_agents, n_memes): whose scored choice expressed
            which meme this step (LLM decision tasks).
        answers: Choices on tasks with a known correct answer (LLM policies whose tasks
            have answers; see :mod:`sim.utility`), or None.
        tables: Further rows by table name (``actions``, ``probes``, ``detections``),
            appended to the run's table of that name.
    """

    writes: WriteProposals = field(default_factory=WriteProposals.empty)
    adoptions: Adoptions = field(default_factory=Adoptions.empty)
    generations: pl.DataFrame | None = None
    stats: EngineStats = field(default_factory=EngineStats)
    removals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    expressed: np.ndarray | None = None
    answers: AnswerScores | None = None
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)


class Policy(Protocol):
    """Decides what all agents do in a step, in one batch.

    Optional hooks the model calls when a policy has them: ``bind(rng)`` once when the
    model is built (what the policy draws once per run, from the model's generator),
    ``get_state()`` / ``set_state(state)`` for checkpoints (:mod:`sim.state`) and
    ``forget_agents(agents)`` at turnover.
    """

    name: str

    def queries(self, step: int) -> AgentQueries | None:
        """One retrieval query per agent for this step (its task), or None for no relevance."""
        ...

    def act(self, context: StepContext) -> PolicyOutput:
        """Decide writes (and, for rule-based policies, adoptions) for every agent."""
        ...

    def probe(self, context: StepContext) -> PolicyOutput:
        """Ask every agent the adoption probe; return adoption decisions."""
        ...

    def describe(self) -> dict[str, object]:
        """JSON-serialisable identity of the policy (engine, model, parameters) for the manifest."""
        ...

    def close(self) -> None:
        """Release resources (engines)."""
        ...
