"""Policies, what agents do in a step: the family's registry.

Each kind is one module holding its spec (a ``kind`` literal and a ``build(engine)``
method) and its policy; this module owns the registry, the union the config schema
imports.

Kinds: ``contagion`` (:mod:`agents.contagion`, the classical rules, no LLM) and ``llm``
(:mod:`agents.llm_policy`). Adding a kind = one module + one line in :data:`PolicySpec`.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from agents.contagion import ContagionSpec
from agents.llm_policy import LLMPolicySpec

if TYPE_CHECKING:
    from agents.llm.base import Engine
    from sim.policy import Policy

#: The registry: the union of every policy spec, one line per kind; the config schema's
#: ``policy`` is any of them, selected by ``kind``.
PolicySpec = Annotated[
    ContagionSpec | LLMPolicySpec,
    Field(discriminator="kind"),
]

#: Every registered policy spec class, in registry order.
POLICY_SPECS: tuple[type[Any], ...] = typing.get_args(typing.get_args(PolicySpec)[0])


def policy_kinds() -> list[str]:
    """The registered policy kinds."""
    return [spec.model_fields["kind"].default for spec in POLICY_SPECS]


def build_policy(spec: Any, engine: Engine | None = None) -> Policy:
    """The policy a spec describes, through the registry.

    Args:
        spec: A registered policy spec.
        engine: A ready engine for policies that use one (the caller keeps ownership).

    Raises:
        TypeError: A spec of an unregistered kind.
    """
    if not isinstance(spec, POLICY_SPECS):
        raise TypeError(f"unsupported policy spec {type(spec).__name__}; kinds: {policy_kinds()}")
    return spec.build(engine)
