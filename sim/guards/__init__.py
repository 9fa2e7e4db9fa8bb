"""Guards: defenses the model consults at read time, before commit and after it.

The family follows the project's one pattern: each kind is one module holding its spec
(a pydantic model with a ``kind`` literal and a ``build`` method) and its implementation;
this package owns the registry (:data:`GUARD_SPECS`) and the union of specs
(:data:`GuardSpec`) that the config schema imports. Adding a kind = one module + one
line in the :data:`GuardSpec` union.

Kinds: ``pattern`` (regular expression over write texts), ``rate_limit`` (writes per
author per window), ``provenance_trust`` (trust from the author chain), ``quarantine``
(detection with delay, rollback of descendants), ``vaccine`` (immune agents, counter-memes),
``review`` (an LLM reviewer of writes) and ``consensus`` (K independent LLM judgments per
note together with its related memories, A-MemGuard-style, with a lessons bank).
What a guard may do in each phase: :mod:`sim.guards.base`.
"""

from __future__ import annotations

import typing
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field

from sim.guards.base import (
    VERDICT_COLUMNS,
    GuardBase,
    GuardDecision,
    GuardSetup,
    RollbackRequest,
    RunEngine,
    Verdict,
    Writes,
    combine,
)
from sim.guards.consensus import ConsensusGuard, ConsensusGuardSpec, lessons_bank_problem
from sim.guards.pattern import PatternGuard, PatternGuardSpec, compile_pattern
from sim.guards.provenance_trust import ProvenanceTrustGuard, ProvenanceTrustGuardSpec
from sim.guards.quarantine import QuarantineGuard, QuarantineGuardSpec
from sim.guards.rate_limit import RateLimitGuard, RateLimitGuardSpec
from sim.guards.review import ReviewGuard, ReviewGuardSpec
from sim.guards.rollback import check_entry_ids, descendants
from sim.guards.vaccine import VaccineGuard, VaccineGuardSpec

#: The registry: the union of every guard spec, one line per kind; the config schema's
#: guard entry is any of them, selected by ``kind``.
GuardSpec = Annotated[
    PatternGuardSpec
    | RateLimitGuardSpec
    | ProvenanceTrustGuardSpec
    | QuarantineGuardSpec
    | VaccineGuardSpec
    | ReviewGuardSpec
    | ConsensusGuardSpec,
    Field(discriminator="kind"),
]

#: Every registered guard spec class, in registry order.
GUARD_SPECS: tuple[type[BaseModel], ...] = typing.get_args(typing.get_args(GuardSpec)[0])

#: The protocol every guard implements (all phases optional, see :class:`GuardBase`).
Guard = GuardBase


def guard_kinds() -> list[str]:
    """The registered guard kinds."""
    return [str(spec.model_fields["kind"].default) for spec in GUARD_SPECS]


def build_guards(specs: Sequence[Any], run_engine: RunEngine = None) -> list[GuardBase]:
    """Build every guard of a config, in order, through the registry.

    Names default to the kind, numbered from the second guard of a kind on
    (``pattern``, ``pattern_2``); names must be unique.

    Args:
        specs: Guard specs (any registered kind).
        run_engine: Returns the run's own engine (for guards that use the run's LLM).

    Raises:
        ValueError: A spec of an unregistered kind (the message lists the kinds), a
            duplicate name, or a guard that cannot be built (e.g. its engine).
    """
    guards: list[GuardBase] = []
    seen: Counter[str] = Counter()
    for i, given in enumerate(specs):
        if not isinstance(given, GUARD_SPECS):
            kind = getattr(given, "kind", type(given).__name__)
            raise ValueError(
                f"guards.{i}.kind = {kind!r}: not a guard kind; must be one of {guard_kinds()}"
            )
        spec: Any = given
        guard = spec.build(run_engine)
        if spec.name is None:
            seen[spec.kind] += 1
            if seen[spec.kind] > 1:
                guard.name = f"{spec.kind}_{seen[spec.kind]}"
        guards.append(guard)
    names = [g.name for g in guards]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"guards: duplicate name(s) {dupes}; give each guard a unique name")
    return guards


__all__ = [
    "GUARD_SPECS",
    "VERDICT_COLUMNS",
    "ConsensusGuard",
    "ConsensusGuardSpec",
    "Guard",
    "GuardBase",
    "GuardDecision",
    "GuardSetup",
    "GuardSpec",
    "PatternGuard",
    "PatternGuardSpec",
    "ProvenanceTrustGuard",
    "ProvenanceTrustGuardSpec",
    "QuarantineGuard",
    "QuarantineGuardSpec",
    "RateLimitGuard",
    "RateLimitGuardSpec",
    "ReviewGuard",
    "ReviewGuardSpec",
    "RollbackRequest",
    "VaccineGuard",
    "VaccineGuardSpec",
    "Verdict",
    "Writes",
    "build_guards",
    "check_entry_ids",
    "combine",
    "compile_pattern",
    "descendants",
    "guard_kinds",
    "lessons_bank_problem",
]
