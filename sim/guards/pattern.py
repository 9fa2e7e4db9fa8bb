"""The ``pattern`` guard: acts on writes whose text matches a regular expression.

A matching write is rejected (dropped), quarantined (dropped from the banks but counted
separately, for inspection) or down-weighted (committed with its importance multiplied by
the guard's weight, so retrieval ranks it lower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.guards.base import GuardBase, GuardDecision, RunEngine, Verdict, Writes

if TYPE_CHECKING:
    from sim.policy import StepContext


class PatternGuardSpec(BaseModel):
    """A guard that acts on writes whose text matches a regular expression.

    Attributes:
        kind: Always "pattern".
        pattern: Regular expression searched in the write's text, in RE2 syntax (Python's
            syntax without lookaround and backreferences); RE2 matches in linear time,
            so no pattern can hang a run.
        action: What to do with a matching write.
        weight: Importance multiplier for "downweight".
        shared_only: Only review writes into shared banks.
        name: Name in the ``steps`` columns and ``guard_decisions`` (default: the kind,
            numbered when a run has several of a kind).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pattern"] = "pattern"
    pattern: str = Field(min_length=1)
    action: Literal["reject", "quarantine", "downweight"] = "reject"
    weight: float = Field(0.1, ge=0, le=1)
    shared_only: bool = True
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,40}$")

    def build(self, run_engine: RunEngine = None) -> PatternGuard:
        """The guard this spec describes (it needs no engine)."""
        return PatternGuard(self)


def compile_pattern(pattern: str) -> Any:
    """Compile a guard pattern with RE2 (linear-time matching, no catastrophic patterns).

    Raises:
        ValueError: The pattern is not valid RE2 syntax; the message says why.
    """
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options=options)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"not a valid RE2 regular expression ({reason})") from None
    except UnicodeError:
        raise ValueError("not a valid regular expression (not encodable as UTF-8)") from None


def _searchable(text: str) -> str:
    """``text`` as RE2 can take it: lone surrogates (not UTF-8 encodable) replaced."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


class PatternGuard(GuardBase):
    """Rejects, quarantines or down-weights writes whose text matches a pattern."""

    def __init__(self, spec: PatternGuardSpec) -> None:
        try:
            self._regex = compile_pattern(spec.pattern)
        except ValueError as err:
            raise ValueError(f"guards.pattern = {spec.pattern!r}: {err}") from None
        self.spec = spec
        self.name = spec.name or "pattern"
        self._verdict = {
            "reject": Verdict.REJECT,
            "quarantine": Verdict.QUARANTINE,
            "downweight": Verdict.DOWNWEIGHT,
        }[spec.action]

    def review(self, writes: Writes, context: StepContext) -> GuardDecision:
        """Flag proposals whose text matches the pattern."""
        proposals = writes.proposals
        hit = np.fromiter(
            (self._regex.search(_searchable(t)) is not None for t in proposals.text),
            dtype=np.bool_,
            count=len(proposals),
        )
        if self.spec.shared_only:
            hit &= writes.shared
        verdict = np.where(hit, int(self._verdict), int(Verdict.ACCEPT)).astype(np.int8)
        weight = np.where(hit & (verdict == Verdict.DOWNWEIGHT), self.spec.weight, 1.0).astype(
            np.float32
        )
        return GuardDecision(verdict=verdict, weight=weight)
