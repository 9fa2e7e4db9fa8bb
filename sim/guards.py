"""Guards: defenses that see every proposed write before it is committed.

A guard returns one verdict per proposal: accept, reject (dropped), quarantine (dropped
from the banks but counted separately, for inspection) or down-weight (committed with
its importance multiplied by the guard's weight, so retrieval ranks it lower). Guards
run in order; the first non-accept verdict for a proposal stands.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from sim.policy import StepContext, WriteProposals


class Verdict(enum.IntEnum):
    """A guard's decision on one proposed write."""

    ACCEPT = 0
    REJECT = 1
    QUARANTINE = 2
    DOWNWEIGHT = 3


@dataclass(frozen=True)
class GuardDecision:
    """Verdict and importance multiplier per proposal."""

    verdict: np.ndarray
    weight: np.ndarray


class Guard(Protocol):
    """A defense reviewing the proposed writes of a step."""

    name: str

    def review(self, proposals: WriteProposals, context: StepContext) -> GuardDecision:
        """One verdict per proposal."""
        ...


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
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pattern"] = "pattern"
    pattern: str = Field(min_length=1)
    action: Literal["reject", "quarantine", "downweight"] = "reject"
    weight: float = Field(0.1, ge=0, le=1)
    shared_only: bool = True


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


class PatternGuard:
    """Rejects, quarantines or down-weights writes whose text matches a pattern."""

    def __init__(self, spec: PatternGuardSpec) -> None:
        try:
            self._regex = compile_pattern(spec.pattern)
        except ValueError as err:
            raise ValueError(f"guards.pattern = {spec.pattern!r}: {err}") from None
        self.spec = spec
        self.name = f"pattern:{spec.action}"
        self._verdict = {
            "reject": Verdict.REJECT,
            "quarantine": Verdict.QUARANTINE,
            "downweight": Verdict.DOWNWEIGHT,
        }[spec.action]

    def review(self, proposals: WriteProposals, context: StepContext) -> GuardDecision:
        """Flag proposals whose text matches the pattern."""
        hit = np.fromiter(
            (self._regex.search(_searchable(t)) is not None for t in proposals.text),
            dtype=np.bool_,
            count=len(proposals),
        )
        if self.spec.shared_only:
            from topologies.banks import BankKind

            hit &= context.banks.kind[proposals.bank] != int(BankKind.PRIVATE)
        verdict = np.where(hit, int(self._verdict), int(Verdict.ACCEPT)).astype(np.int8)
        weight = np.where(hit & (verdict == Verdict.DOWNWEIGHT), self.spec.weight, 1.0).astype(
            np.float32
        )
        return GuardDecision(verdict=verdict, weight=weight)


def combine(decisions: list[GuardDecision], n: int) -> GuardDecision:
    """Combine guards in order: the first non-accept verdict per proposal stands."""
    verdict = np.zeros(n, dtype=np.int8)
    weight = np.ones(n, dtype=np.float32)
    for decision in decisions:
        open_ = verdict == Verdict.ACCEPT
        verdict = np.where(open_, decision.verdict, verdict).astype(np.int8)
        weight = np.where(open_, decision.weight, weight).astype(np.float32)
    return GuardDecision(verdict=verdict, weight=weight)
