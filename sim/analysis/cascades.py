"""Cascades: the transmission trees of a meme, their depth, breadth and structural virality.

The tree nodes are those of :func:`sim.analysis.infections.infection_times`: each agent
that acquired the meme, linked to the source of its infection edge; seeds, spontaneous
carriers and the environment (node ``-1``, for memes seeded into a bank) are roots. Each
root and its descendants form one cascade (OASIS and Goel et al. measure cascades the
same way).

Per cascade:

* ``size`` = number of nodes (the root included; the environment counts as a node, as
  the broadcaster of Goel et al. does); ``agents`` = nodes that are agents;
* ``depth`` = the largest distance from the root (0 for a lone root);
* ``max_breadth`` = the largest number of nodes at one distance from the root;
* ``structural_virality`` = the mean distance over all unordered pairs of nodes
  (Goel, Anderson, Hofman, Watts 2016), ``W / (n (n - 1) / 2)`` with the Wiener index
  ``W = sum over edges of s (n - s)``, ``s`` the size of the subtree below the edge; null
  for a lone root. A chain of n nodes gives (n + 1) / 3, a star of n nodes 2 (n - 1) / n.

Per meme (:func:`cascade_summary`): ``depth`` = the largest generation (hop), ``max_breadth``
= the largest number of agents with the same generation (seeds are generation 0),
``structural_virality`` = that of the largest cascade (Goel's value exactly when there is
one seed), and ``mean_structural_virality`` = the mean over cascades of at least 2 nodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import polars as pl

from sim.analysis.infections import ENVIRONMENT, infection_times


def tree_metrics(parent: dict[int, int | None]) -> dict[str, float | int | None]:
    """Size, depth, max breadth and structural virality of one rooted tree.

    Args:
        parent: Each node's parent (None for the root); exactly one root.

    Returns:
        ``{"size", "depth", "max_breadth", "structural_virality"}``.

    Raises:
        ValueError: Not exactly one root, or a parent that is not a node.
    """
    roots = [n for n, p in parent.items() if p is None]
    if len(roots) != 1:
        raise ValueError(f"parent: a tree needs exactly one root, found {len(roots)}")
    children: dict[int, list[int]] = defaultdict(list)
    for node, p in parent.items():
        if p is not None:
            if p not in parent:
                raise ValueError(f"parent: node {node} has parent {p}, which is not a node")
            children[p].append(node)
    order, depth = [roots[0]], {roots[0]: 0}
    for node in order:  # breadth-first; ``order`` grows while iterating
        for child in children[node]:
            depth[child] = depth[node] + 1
            order.append(child)
    if len(order) != len(parent):
        raise ValueError("parent: the links contain a cycle or a node unreachable from the root")
    n = len(order)
    subtree = dict.fromkeys(order, 1)
    wiener = 0
    for node in reversed(order[1:]):  # every node but the root has a parent
        s = subtree[node]
        wiener += s * (n - s)
        if (up := parent[node]) is not None:
            subtree[up] += s
    levels: dict[int, int] = defaultdict(int)
    for d in depth.values():
        levels[d] += 1
    return {
        "size": n,
        "depth": max(depth.values()),
        "max_breadth": max(levels.values()),
        "structural_virality": wiener / (n * (n - 1) / 2) if n > 1 else None,
    }


def structural_virality(edges: Iterable[tuple[int, int]]) -> float | None:
    """Mean pairwise distance of the tree given as ``(parent, child)`` edges (None: < 2 nodes)."""
    parent: dict[int, int | None] = {}
    for p, c in edges:
        parent.setdefault(p, None)
        parent[c] = p
    if not parent:
        return None
    return tree_metrics(parent)["structural_virality"]


def cascades(
    transmissions: pl.DataFrame, agents: pl.DataFrame, memories: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per cascade (root) and meme, with the metrics of the module docstring.

    Returns:
        Columns ``meme_id, root, root_origin, size, agents, depth, max_breadth,
        structural_virality``, sorted by meme and decreasing size.
    """
    nodes = infection_times(transmissions, agents, memories)
    rows = []
    for (meme_id,), frame in nodes.group_by("meme_id", maintain_order=True):
        parent: dict[int, int | None] = {}
        origin: dict[int, str] = {}
        for agent, source, how in frame.select("agent_id", "source_agent", "origin").iter_rows():
            parent[agent] = source
            origin[agent] = how
        # A source that is not a node (should not happen) becomes a root of its own.
        for p in list(parent.values()):
            if p is not None and p not in parent:
                parent[p] = None
                origin[p] = "unknown"
        root_of: dict[int, int] = {}
        for node in parent:
            path = []
            current = node
            while current not in root_of and (up := parent[current]) is not None:
                path.append(current)
                current = up
                if len(path) > len(parent):
                    raise ValueError(f"meme {meme_id!r}: the infection edges contain a cycle")
            root = root_of.get(current, current)
            root_of[current] = root
            for visited in path:
                root_of[visited] = root
        members: dict[int, dict[int, int | None]] = defaultdict(dict)
        for node, root in root_of.items():
            members[root][node] = parent[node]
        for root, tree in members.items():
            metrics = tree_metrics(tree)
            rows.append(
                {
                    "meme_id": meme_id,
                    "root": root,
                    "root_origin": origin[root],
                    "agents": sum(1 for node in tree if node != ENVIRONMENT),
                    **metrics,
                }
            )
    schema = {
        "meme_id": pl.String,
        "root": pl.Int64,
        "root_origin": pl.String,
        "agents": pl.Int64,
        "size": pl.Int64,
        "depth": pl.Int64,
        "max_breadth": pl.Int64,
        "structural_virality": pl.Float64,
    }
    frame = pl.DataFrame(rows, schema=schema)
    return frame.select(
        "meme_id",
        "root",
        "root_origin",
        "size",
        "agents",
        "depth",
        "max_breadth",
        "structural_virality",
    ).sort(["meme_id", "size", "root"], descending=[False, True, False])


def cascade_summary(
    transmissions: pl.DataFrame, agents: pl.DataFrame, memories: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per meme: cascade count, infected agents, depth, max breadth, structural virality.

    Returns:
        Columns ``meme_id, n_cascades, n_infected, depth, max_breadth,
        structural_virality, mean_structural_virality`` (see the module docstring).
    """
    nodes = infection_times(transmissions, agents, memories).filter(
        pl.col("agent_id") != ENVIRONMENT
    )
    per = cascades(transmissions, agents, memories)
    by_gen = (
        nodes.group_by("meme_id", "generation")
        .agg(pl.len().alias("breadth"))
        .group_by("meme_id")
        .agg(
            pl.col("generation").max().cast(pl.Int64).alias("depth"),
            pl.col("breadth").max().cast(pl.Int64).alias("max_breadth"),
        )
    )
    largest = per.sort(["size", "root"], descending=[True, False]).group_by("meme_id").first()
    trees = per.group_by("meme_id").agg(
        pl.len().cast(pl.Int64).alias("n_cascades"),
        pl.col("agents").sum().cast(pl.Int64).alias("n_infected"),
        pl.col("structural_virality").drop_nulls().mean().alias("mean_structural_virality"),
    )
    return (
        trees.join(by_gen, on="meme_id", how="left", maintain_order="left")
        .join(
            largest.select("meme_id", "structural_virality"),
            on="meme_id",
            how="left",
            maintain_order="left",
        )
        .select(
            "meme_id",
            "n_cascades",
            "n_infected",
            "depth",
            "max_breadth",
            "structural_virality",
            "mean_structural_virality",
        )
        .sort("meme_id")
    )


def tree_edges(
    transmissions: pl.DataFrame,
    agents: pl.DataFrame,
    meme_id: str,
    memories: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The tree of one meme as rows ``agent_id, source_agent, generation, step, origin``."""
    return infection_times(transmissions, agents, memories).filter(pl.col("meme_id") == meme_id)
