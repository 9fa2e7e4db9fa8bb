"""The ``quarantine`` guard: flagged entries and their descendants leave the banks.

An entry is *flagged* when it carries the guard's ``meme`` (as the run's detector reads
it) or its text matches ``pattern``, and detection succeeds (probability ``detect_prob``,
one draw from the model's generator per candidate, in entry-id order, only when below
1). Detection takes ``delay`` steps: an entry written at step ``s`` is examined at step
``s + delay``, in the guard phase (after the agents of that step read their context).
A flagged entry is rolled back: removed from its bank (the ``memories`` table keeps it,
with ``removed_step``; ``guard_decisions`` has the reason) together with, when
``descendants`` is set, every alive entry descending from it through the parents column.

Writes are reviewed too: with ``delay = 0`` a proposed write that would be flagged is
quarantined (it never enters a bank), and, with ``descendants``, so is a write whose
writer's context held an entry this guard rolled back (the write would descend from it).
A write that escaped detection at review (``detect_prob < 1``) is examined once more by
the next step's sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.guards.base import (
    GuardBase,
    GuardDecision,
    GuardSetup,
    RollbackRequest,
    RunEngine,
    Verdict,
    Writes,
)
from sim.guards.pattern import _searchable, compile_pattern
from sim.retrieval import expand_ranges

if TYPE_CHECKING:
    from sim.policy import StepContext


class QuarantineGuardSpec(BaseModel):
    """Detect harmful entries (after a delay) and roll them back with their descendants.

    Attributes:
        kind: Always "quarantine".
        meme: Flag entries carrying this meme of the run (the run's detector decides).
        pattern: Or: flag entries whose text matches this RE2 regular expression.
        delay: Steps between a write and its detection (detection latency), >= 0.
        detect_prob: Probability that a candidate entry is detected, in [0, 1].
        descendants: Roll back every descendant of a flagged entry too (and quarantine
            writes descending from rolled-back entries).
        shared_only: Only examine entries (and writes) in shared banks.
        name: Name in the ``steps`` columns and ``guard_decisions`` (default: the kind).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["quarantine"] = "quarantine"
    meme: str | None = None
    pattern: str | None = Field(None, min_length=1)
    delay: int = Field(0, ge=0, le=100_000)
    detect_prob: float = Field(1.0, ge=0, le=1)
    descendants: bool = True
    shared_only: bool = True
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,40}$")

    @model_validator(mode="after")
    def _one_detector(self) -> QuarantineGuardSpec:
        if (self.meme is None) == (self.pattern is None):
            raise ValueError(
                "quarantine: set exactly one of meme (a meme id of the run) or pattern "
                "(an RE2 regular expression)"
            )
        return self

    def build(self, run_engine: RunEngine = None) -> QuarantineGuard:
        """The guard this spec describes (it needs no engine)."""
        return QuarantineGuard(self)


class QuarantineGuard(GuardBase):
    """Rolls back flagged entries (and descendants) after the detection delay."""

    def __init__(self, spec: QuarantineGuardSpec) -> None:
        self.spec = spec
        self.name = spec.name or "quarantine"
        self._regex: Any = None
        if spec.pattern is not None:
            try:
                self._regex = compile_pattern(spec.pattern)
            except ValueError as err:
                raise ValueError(f"guards.quarantine.pattern = {spec.pattern!r}: {err}") from None
        self._meme = -1
        self._rng: np.random.Generator | None = None
        self._examined = 0  # entries with a smaller id have been examined
        self.removed = np.zeros(0, dtype=np.bool_)  # per entry id: rolled back by this guard
        what = f"carries {spec.meme}" if spec.meme is not None else f"matches {spec.pattern!r}"
        self._reason = f"flagged: {what}"

    def bind(self, setup: GuardSetup) -> None:
        """Resolve the meme and keep the model's generator."""
        if self.spec.meme is not None:
            self._meme = setup.meme_index(self.spec.meme, "guards.quarantine.meme")
        self._rng = setup.rng

    def _matches(self, masks: np.ndarray, texts: list[str]) -> np.ndarray:
        if self._regex is not None:
            return np.fromiter(
                (self._regex.search(_searchable(t)) is not None for t in texts),
                dtype=np.bool_,
                count=len(texts),
            )
        return ((masks >> self._meme) & 1).astype(np.bool_)

    def _detected(self, candidates: np.ndarray) -> np.ndarray:
        """Which candidates are detected (one draw each when ``detect_prob < 1``)."""
        if self.spec.detect_prob >= 1.0 or len(candidates) == 0:
            return np.ones(len(candidates), dtype=np.bool_)
        assert self._rng is not None
        return self._rng.random(len(candidates)) < self.spec.detect_prob

    def sweep(self, context: StepContext) -> RollbackRequest | None:
        """Flag the entries whose detection is due (written ``delay`` steps ago)."""
        store = context.store
        end = int(np.searchsorted(store.step, context.step - self.spec.delay, side="right"))
        if end <= self._examined:
            return None
        ids = np.arange(self._examined, end, dtype=np.int64)
        self._examined = end
        ids = ids[store.alive[ids]]
        if self.spec.shared_only:
            ids = ids[context.banks.shared[store.bank[ids]]]
        texts = [store.text(i) for i in ids.tolist()] if self._regex is not None else []
        flagged = ids[self._matches(store.memes[ids], texts)]
        flagged = flagged[self._detected(flagged)]
        if len(flagged) == 0:
            return None
        return RollbackRequest(flagged, descendants=self.spec.descendants, reason=self._reason)

    def rolled_back(self, entry_ids: np.ndarray) -> None:
        """Remember what this guard removed (writes descending from it are quarantined)."""
        if len(entry_ids) == 0:
            return
        top = int(entry_ids.max()) + 1
        if top > len(self.removed):
            self.removed = np.concatenate(
                [self.removed, np.zeros(top - len(self.removed), dtype=np.bool_)]
            )
        self.removed[entry_ids] = True

    def review(self, writes: Writes, context: StepContext) -> GuardDecision:
        """Quarantine writes that would be flagged now, or that descend from a removed entry."""
        n = len(writes)
        proposals = writes.proposals
        scope = writes.shared if self.spec.shared_only else np.ones(n, dtype=np.bool_)
        reasons = [""] * n
        hit = np.zeros(n, dtype=np.bool_)
        if self.spec.descendants and self.removed.any():
            retrieval = context.retrieval
            authors = proposals.author.astype(np.int64)
            counts = np.diff(retrieval.indptr)[authors]
            parents = retrieval.entry_ids[expand_ranges(retrieval.indptr[authors], counts)]
            owner = np.repeat(np.arange(n), counts)
            removed = np.zeros(len(parents), dtype=np.bool_)
            inside = parents < len(self.removed)
            removed[inside] = self.removed[parents[inside]]
            descends = np.bincount(owner, weights=removed, minlength=n) > 0
            hit |= descends & scope
            for i in np.flatnonzero(descends & scope).tolist():
                reasons[i] = "descendant of a rolled-back entry"
        if self.spec.delay == 0:
            candidates = np.flatnonzero(scope & ~hit)
            texts = [proposals.text[i] for i in candidates.tolist()] if self._regex else []
            matched = candidates[self._matches(writes.memes[candidates], texts)]
            matched = matched[self._detected(matched)]
            hit[matched] = True
            for i in matched.tolist():
                reasons[i] = self._reason
        verdict = np.where(hit, int(Verdict.QUARANTINE), 0).astype(np.int8)
        return GuardDecision(verdict=verdict, weight=np.ones(n, dtype=np.float32), reason=reasons)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """How far entries were examined and what this guard removed."""
        return {"examined": np.array([self._examined], dtype=np.int64), "removed": self.removed}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` saved."""
        self._examined = int(arrays["examined"][0])
        self.removed = np.asarray(arrays["removed"], dtype=np.bool_).copy()
