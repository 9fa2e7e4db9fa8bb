"""Seed placements: where a meme is seeded at the start of a run, one module per strategy.

The family follows the project's one pattern: each strategy is one module holding its
spec (a :class:`~topologies.placements.base.PlacementBase` with a ``strategy`` literal,
which chooses the seeded agents in ``select`` or names a ``target_bank``); this package
owns the union of specs (:data:`PlacementSpec`, which ``sim.memes.MemeSpec`` uses) and the
registry tuple (:data:`PLACEMENT_SPECS`). Adding a strategy = one module + one line in
:data:`PlacementSpec`.

:func:`placement_errors` is the one check of a placement against a layout: config
validation calls it with what the specs tell, the model with what it built.
"""

from __future__ import annotations

import typing
from collections.abc import Collection
from typing import Annotated, Any

import networkx as nx
import numpy as np
from pydantic import BeforeValidator, Field

from topologies.banks import BankKind
from topologies.graphs import TopologyError
from topologies.placements.agents import AgentsPlacement
from topologies.placements.bank import BankPlacement
from topologies.placements.base import CountedPlacement, PlacementBase, SeedingLayout
from topologies.placements.bridge import BridgePlacement
from topologies.placements.hub import HubPlacement
from topologies.placements.periphery import PeripheryPlacement
from topologies.placements.random import RandomPlacement

#: The strategy of a placement table that names none.
DEFAULT_STRATEGY = "random"


def _default_strategy(data: Any) -> Any:
    """A placement table without ``strategy`` is a ``random`` one (as before the family)."""
    if isinstance(data, dict) and "strategy" not in data:
        return {**data, "strategy": DEFAULT_STRATEGY}
    return data


#: The registry: the union of every placement spec, one line per strategy; a meme's
#: ``placement`` is any of them, selected by ``strategy`` (``random`` when unset).
PlacementSpec = Annotated[
    RandomPlacement
    | HubPlacement
    | PeripheryPlacement
    | BridgePlacement
    | AgentsPlacement
    | BankPlacement,
    Field(discriminator="strategy"),
    BeforeValidator(_default_strategy),
]

#: Every registered placement spec class, in registry order.
PLACEMENT_SPECS: tuple[type[PlacementBase], ...] = typing.get_args(
    typing.get_args(PlacementSpec)[0]
)


def placement_kinds() -> list[str]:
    """The registered placement strategies."""
    return [str(spec.model_fields["strategy"].default) for spec in PLACEMENT_SPECS]


def select_agents(
    graph: nx.Graph, strategy: str, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Choose ``count`` distinct agents with a registered counted strategy.

    Args:
        graph: Undirected graph on nodes ``0..n-1``.
        strategy: A strategy that chooses ``count`` agents (``random``, ``hub``,
            ``periphery``, ``bridge``, or any registered :class:`CountedPlacement`).
        count: Number of agents, ``1 <= count <= n``.
        rng: Source of randomness.

    Returns:
        Sorted int32 array of ``count`` distinct agent ids.

    Raises:
        TopologyError: ``count`` is out of range or ``strategy`` is unknown.
    """
    counted = {
        str(spec.model_fields["strategy"].default): spec
        for spec in PLACEMENT_SPECS
        if issubclass(spec, CountedPlacement)
    }
    if strategy not in counted:
        raise TopologyError(
            f"placement.strategy = {strategy!r}: must be one of "
            f"{', '.join(repr(s) for s in counted)}"
        )
    # Unvalidated on purpose: ``select`` itself checks the count against the graph.
    return counted[strategy].model_construct(strategy=strategy, count=count).select(graph, rng)


def placement_errors(
    placement: PlacementBase,
    n_agents: int | None,
    kinds: Collection[BankKind],
    n_communities: int | None = None,
    *,
    graph_file: bool = False,
) -> list[str]:
    """Why a placement cannot be carried out in a layout, one message per problem.

    Each message starts with the placement's key (``"count = 61: ..."``), for the caller
    to put the meme's key in front. The strategy checks its own fields
    (:meth:`~topologies.placements.base.PlacementBase.target_errors`); a placement into
    agents' banks also needs a layer for its ``into``.

    Args:
        placement: The placement.
        n_agents: The number of agents (None: not known before the graph file is read;
            only the signs of agent ids are checked).
        kinds: The kinds of the layout's layers.
        n_communities: The number of communities, when known.
        graph_file: The number of agents is the nodes of a graph file (said so).
    """
    errors = placement.target_errors(SeedingLayout(n_agents, kinds, n_communities, graph_file))
    if placement.target_bank is not None:
        return errors
    if placement.into == "shared" and not any(kind.shared and kind.agents_write for kind in kinds):
        has = (
            "no shared bank agents may write (no agent writes the lessons bank)"
            if any(kind.shared for kind in kinds)
            else "only private banks"
        )
        errors.append(
            f"into = 'shared': the layout has {has}; add a shared layer or use "
            "into = 'private' or 'all'"
        )
    if placement.into == "private" and BankKind.PRIVATE not in kinds:
        errors.append(
            "into = 'private': the layout has no private layer; add [banks.private] or use "
            "into = 'shared' or 'all'"
        )
    return errors


__all__ = [
    "PLACEMENT_SPECS",
    "AgentsPlacement",
    "BankPlacement",
    "BridgePlacement",
    "CountedPlacement",
    "HubPlacement",
    "PeripheryPlacement",
    "PlacementBase",
    "PlacementSpec",
    "RandomPlacement",
    "SeedingLayout",
    "placement_errors",
    "placement_kinds",
    "select_agents",
]
