"""The ``provenance_trust`` guard: trust per entry from its author chain.

Every entry gets a number of *untrusted hops*: 0 for an entry by the environment (when
``environment_trusted``) or by one of the ``trusted_agents``; otherwise one more than its
source's, where the source is the write's cause (the entry it names as its reason, when
that was in its context) or else its best-ranked parent; an entry with neither has 1.
An entry's trust is ``author_trust * hop_decay ** hops`` (1 for trusted authors), with
the author's trust at the time of writing. Every author starts at trust 1, and each step
in which any guard flags one of its writes (or rolls back one of its entries as flagged)
multiplies it by ``penalty``.

Writes whose trust is below ``threshold`` get ``action``; with ``read_time`` retrieved
entries below ``threshold`` are also dropped before they enter a prompt.

The per-entry hops and trust live in buffers that double their capacity when full (as
the memory store's columns do), so scoring a run's entries costs amortised O(1) per entry;
:attr:`ProvenanceTrustGuard.hops` and :attr:`ProvenanceTrustGuard.trust` are views of the
scored part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.guards.base import GuardBase, GuardDecision, GuardSetup, RunEngine, Verdict, Writes
from sim.memory import ENVIRONMENT
from sim.unique import sorted_unique

if TYPE_CHECKING:
    from sim.memory import MemoryStore
    from sim.policy import StepContext
    from sim.retrieval import Retrieval


class ProvenanceTrustGuardSpec(BaseModel):
    """Trust from provenance: hops from trusted sources, and authors' flag history.

    Attributes:
        kind: Always "provenance_trust".
        threshold: Writes (and, with ``read_time``, retrieved entries) with trust below
            this are acted on, in [0, 1].
        hop_decay: Trust factor per untrusted hop, in (0, 1].
        trusted_agents: Agents whose entries are trusted (0 hops, trust 1).
        environment_trusted: Entries injected by the experimenter are trusted.
        penalty: An author's trust is multiplied by this in each step in which any guard
            flags it, in [0, 1] (1: flags do not matter).
        action: What happens to a write below the threshold.
        weight: Importance multiplier for "downweight".
        read_time: Also drop retrieved entries below the threshold before use.
        shared_only: Only review writes into shared banks.
        name: Name in the ``steps`` columns and ``guard_decisions`` (default: the kind).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["provenance_trust"] = "provenance_trust"
    threshold: float = Field(0.5, ge=0, le=1)
    hop_decay: float = Field(0.8, gt=0, le=1)
    trusted_agents: list[int] = []
    environment_trusted: bool = True
    penalty: float = Field(0.5, ge=0, le=1)
    action: Literal["reject", "quarantine", "downweight"] = "reject"
    weight: float = Field(0.1, ge=0, le=1)
    read_time: bool = False
    shared_only: bool = True
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,40}$")

    def build(self, run_engine: RunEngine = None) -> ProvenanceTrustGuard:
        """The guard this spec describes (it needs no engine)."""
        return ProvenanceTrustGuard(self)


_VERDICT = {
    "reject": Verdict.REJECT,
    "quarantine": Verdict.QUARANTINE,
    "downweight": Verdict.DOWNWEIGHT,
}


class ProvenanceTrustGuard(GuardBase):
    """Scores every entry's trust from its provenance and acts on untrusted writes."""

    def __init__(self, spec: ProvenanceTrustGuardSpec) -> None:
        self.spec = spec
        self.name = spec.name or "provenance_trust"
        self.author_trust = np.ones(0, dtype=np.float32)
        self._trusted = np.zeros(0, dtype=np.bool_)
        self._hops = np.zeros(0, dtype=np.int32)  # per entry id, capacity-sized buffer
        self._trust = np.zeros(0, dtype=np.float32)  # per entry id, capacity-sized buffer
        self._scored = 0  # entries scored: ids 0.._scored-1

    @property
    def hops(self) -> np.ndarray:
        """Untrusted hops of every scored entry, by entry id (a view; do not write)."""
        return self._hops[: self._scored]

    @property
    def trust(self) -> np.ndarray:
        """Trust of every scored entry, by entry id (a view; do not write)."""
        return self._trust[: self._scored]

    def bind(self, setup: GuardSetup) -> None:
        """Every author starts at trust 1; mark the trusted agents."""
        bad = [a for a in self.spec.trusted_agents if not 0 <= a < setup.n_agents]
        if bad:
            raise ValueError(
                f"guards.provenance_trust.trusted_agents: {bad} are not agents "
                f"(0..{setup.n_agents - 1})"
            )
        self.author_trust = np.ones(setup.n_agents, dtype=np.float32)
        self._trusted = np.zeros(setup.n_agents, dtype=np.bool_)
        self._trusted[self.spec.trusted_agents] = True

    # ------------------------------------------------------------ scoring
    def _trusted_author(self, authors: np.ndarray) -> np.ndarray:
        env = authors == ENVIRONMENT
        agent = self._trusted[np.maximum(authors, 0)] & ~env
        return (env & self.spec.environment_trusted) | agent

    def _score(self, authors: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hops and trust of writes by ``authors`` whose sources are ``sources`` (-1: none)."""
        known = sources >= 0
        src_hops = np.zeros(len(authors), dtype=np.int32)
        src_hops[known] = self.hops[sources[known]]
        trusted = self._trusted_author(authors)
        hops = np.where(trusted, 0, src_hops + 1).astype(np.int32)
        author_trust = np.where(authors >= 0, self.author_trust[np.maximum(authors, 0)], 1.0)
        trust = np.where(
            trusted, 1.0, author_trust * self.spec.hop_decay ** hops.astype(np.float64)
        ).astype(np.float32)
        return hops, trust

    @staticmethod
    def _best_parents(store: MemoryStore, ids: np.ndarray) -> np.ndarray:
        """The best-ranked parent of each entry (-1: it has none)."""
        indptr = store.parent_indptr
        has = indptr[ids + 1] > indptr[ids]
        best = np.full(len(ids), -1, dtype=np.int64)
        best[has] = store.parent_ids[indptr[ids[has]]]
        return best

    def _append(self, store: MemoryStore, ids: np.ndarray, sources: np.ndarray) -> None:
        """Score the consecutive entries ``ids``, which follow every scored entry."""
        hops, trust = self._score(store.author[ids].astype(np.int64), sources)
        start, end = self._scored, self._scored + len(ids)
        if end > len(self._hops):  # double the capacity: amortised O(1) per entry
            capacity = max(end, 2 * len(self._hops), 64)
            self._hops = np.concatenate([self.hops, np.zeros(capacity - start, np.int32)])
            self._trust = np.concatenate([self.trust, np.zeros(capacity - start, np.float32)])
        self._hops[start:end] = hops
        self._trust[start:end] = trust
        self._scored = end

    def _catch_up(self, store: MemoryStore, end: int | None = None) -> None:
        """Score entries written without passing the commit (injected seeds), in id order.

        Their source is their best-ranked parent (seeds have none).
        """
        end = len(store) if end is None else end
        if self._scored < end:
            ids = np.arange(self._scored, end, dtype=np.int64)
            self._append(store, ids, self._best_parents(store, ids))

    def _sources(self, writes: Writes, context: StepContext) -> np.ndarray:
        """Each proposal's source: its cause when in range, else its best-ranked parent."""
        proposals = writes.proposals
        cause = proposals.cause.astype(np.int64)
        retrieval = context.retrieval
        authors = proposals.author.astype(np.int64)
        counts = np.diff(retrieval.indptr)[authors]
        best = np.full(len(authors), -1, dtype=np.int64)
        has = counts > 0
        best[has] = retrieval.entry_ids[retrieval.indptr[authors[has]]]
        ok = (cause >= 0) & (cause < len(context.store))
        return np.where(ok, cause, best)

    # ------------------------------------------------------------ phases
    def screen(self, retrieval: Retrieval, context: StepContext) -> np.ndarray | None:
        """With ``read_time``, drop retrieved entries whose trust is below the threshold."""
        if not self.spec.read_time:
            return None
        self._catch_up(context.store)
        return self.trust[retrieval.entry_ids] >= self.spec.threshold

    def review(self, writes: Writes, context: StepContext) -> GuardDecision:
        """Act on writes whose trust is below the threshold."""
        self._catch_up(context.store)
        proposals = writes.proposals
        _, trust = self._score(proposals.author.astype(np.int64), self._sources(writes, context))
        low = trust < self.spec.threshold
        if self.spec.shared_only:
            low &= writes.shared
        verdict = np.where(low, int(_VERDICT[self.spec.action]), 0).astype(np.int8)
        weight = np.where(low & (verdict == Verdict.DOWNWEIGHT), self.spec.weight, 1.0).astype(
            np.float32
        )
        reason = [f"trust {t:.3g} < {self.spec.threshold:g}" for t in trust.tolist()]
        return GuardDecision(verdict=verdict, weight=weight, reason=reason)

    def committed(
        self,
        entry_ids: np.ndarray,
        causes: np.ndarray,
        flagged_authors: np.ndarray,
        context: StepContext,
    ) -> None:
        """Score the committed entries, then lower the trust of flagged authors."""
        store = context.store
        if len(entry_ids):
            self._catch_up(store, int(entry_ids[0]))
            best = self._best_parents(store, entry_ids)
            self._append(store, entry_ids, np.where(causes >= 0, causes, best))
        authors = sorted_unique(flagged_authors[flagged_authors >= 0])
        self.author_trust[authors] *= np.float32(self.spec.penalty)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Author trust and every scored entry's hops and trust."""
        return {
            "author_trust": self.author_trust.copy(),
            "hops": self.hops.copy(),
            "trust": self.trust.copy(),
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` saved."""
        self.author_trust = np.asarray(arrays["author_trust"], dtype=np.float32).copy()
        self._hops = np.asarray(arrays["hops"], dtype=np.int32).copy()
        self._trust = np.asarray(arrays["trust"], dtype=np.float32).copy()
        self._scored = len(self._hops)
