"""The ``rate_limit`` guard: at most N writes per author per window of steps.

A write counts against its author when it is committed (a write another guard dropped
does not count). At step ``t`` the window holds the steps ``t - window + 1 .. t``; an
author's proposals of the step are taken in proposal order, and those beyond the
author's remaining allowance are rejected. With ``shared_only`` (the default) only
writes into shared banks are limited and counted; private notes are free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.guards.base import (
    GuardBase,
    GuardDecision,
    GuardSetup,
    RunEngine,
    Verdict,
    Writes,
)
from sim.tracking import run_starts

if TYPE_CHECKING:
    from sim.policy import StepContext


class RateLimitGuardSpec(BaseModel):
    """At most ``max_writes`` writes per author per ``window`` steps.

    Attributes:
        kind: Always "rate_limit".
        max_writes: Writes an author may commit within any window of ``window`` steps.
        window: The window length in steps (1: per step).
        shared_only: Only writes into shared banks are limited and counted.
        name: Name in the ``steps`` columns and ``guard_decisions`` (default: the kind).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["rate_limit"] = "rate_limit"
    max_writes: int = Field(1, ge=0, le=1_000_000)
    window: int = Field(1, ge=1, le=10_000)
    shared_only: bool = True
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,40}$")

    def build(self, run_engine: RunEngine = None) -> RateLimitGuard:
        """The guard this spec describes (it needs no engine)."""
        return RateLimitGuard(self)


class RateLimitGuard(GuardBase):
    """Rejects an author's writes beyond its allowance in the current window."""

    def __init__(self, spec: RateLimitGuardSpec) -> None:
        self.spec = spec
        self.name = spec.name or "rate_limit"
        self._recent = np.zeros((spec.window, 0), dtype=np.int32)
        self._row_step = np.full(spec.window, -1, dtype=np.int64)

    def bind(self, setup: GuardSetup) -> None:
        """Size the per-author counts."""
        self._recent = np.zeros((self.spec.window, setup.n_agents), dtype=np.int32)

    def _row(self, step: int) -> int:
        """The ring row of ``step`` (cleared when it last held an older step)."""
        row = step % self.spec.window
        if self._row_step[row] != step:
            self._recent[row] = 0
            self._row_step[row] = step
        return row

    def used(self, step: int) -> np.ndarray:
        """Writes each author committed in the window ending at ``step`` (inclusive)."""
        live = (self._row_step > step - self.spec.window) & (self._row_step <= step)
        return self._recent[live].sum(axis=0)

    def _in_scope(self, shared: np.ndarray) -> np.ndarray:
        return shared if self.spec.shared_only else np.ones(len(shared), dtype=np.bool_)

    def review(self, writes: Writes, context: StepContext) -> GuardDecision:
        """Reject proposals beyond each author's remaining allowance."""
        self._row(context.step)
        scope = np.flatnonzero(self._in_scope(writes.shared))
        authors = writes.proposals.author[scope].astype(np.int64)
        order = np.argsort(authors, kind="stable")
        sorted_authors = authors[order]
        starts = run_starts(sorted_authors)
        first = np.repeat(starts, np.diff(np.append(starts, len(sorted_authors))))
        rank = np.empty(len(scope), dtype=np.int64)
        rank[order] = np.arange(len(scope)) - first
        over = self.used(context.step)[authors] + rank >= self.spec.max_writes
        verdict = np.zeros(len(writes), dtype=np.int8)
        verdict[scope[over]] = int(Verdict.REJECT)
        reason = f"over {self.spec.max_writes} writes per {self.spec.window} step(s)"
        return GuardDecision(
            verdict=verdict,
            weight=np.ones(len(writes), dtype=np.float32),
            reason=[reason] * len(writes),
        )

    def committed(
        self,
        entry_ids: np.ndarray,
        causes: np.ndarray,
        flagged_authors: np.ndarray,
        context: StepContext,
    ) -> None:
        """Count the committed writes against their authors."""
        if len(entry_ids) == 0:
            return
        store = context.store
        shared = context.banks.shared[store.bank[entry_ids]]
        authors = store.author[entry_ids][self._in_scope(shared)]
        authors = authors[authors >= 0]
        row = self._row(context.step)
        self._recent[row] += np.bincount(authors, minlength=self._recent.shape[1]).astype(np.int32)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Window counts per author."""
        return {"recent": self._recent.copy(), "row_step": self._row_step.copy()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the window counts."""
        self._recent = np.asarray(arrays["recent"], dtype=np.int32).copy()
        self._row_step = np.asarray(arrays["row_step"], dtype=np.int64).copy()
