"""The adjacency of a built graph as sorted CSR arrays, for the vectorised simulator."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np

from topologies.graphs.base import TopologyError


def adjacency_csr(graph: nx.Graph) -> tuple[np.ndarray, np.ndarray]:
    """Return the graph's adjacency as CSR arrays.

    Args:
        graph: Undirected graph whose nodes are the integers ``0..n-1`` (as built by
            :func:`build_graph`). Self loops are ignored.

    Returns:
        ``(indptr, indices)``: ``indptr`` is int64 of length ``n+1`` and ``indices``
        int32; the neighbours of node ``i`` are ``indices[indptr[i]:indptr[i+1]]``,
        sorted ascending.

    Raises:
        TopologyError: The nodes are not exactly ``0..n-1``.
    """
    n = graph.number_of_nodes()
    try:
        nodes = np.fromiter((u for u, _ in graph.adjacency()), dtype=np.int64, count=n)
        canonical = np.array_equal(np.sort(nodes), np.arange(n, dtype=np.int64))
    except (TypeError, ValueError, OverflowError):
        canonical = False
    if not canonical:
        raise TopologyError(
            f"graph nodes = {list(graph)[:5]!r}...: must be the integers 0..n-1 (n = {n}); "
            "build the graph with build_graph"
        )
    degree = np.fromiter((len(nbrs) for _, nbrs in graph.adjacency()), dtype=np.int64, count=n)
    dst = np.fromiter(
        itertools.chain.from_iterable(nbrs for _, nbrs in graph.adjacency()),
        dtype=np.int64,
        count=int(degree.sum()),
    )
    src = np.repeat(nodes, degree)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = src * n + dst
    key.sort(kind="stable")  # grouped by src already: timsort is near-linear here
    indices = (key % n).astype(np.int32) if n else np.zeros(0, dtype=np.int32)
    counts = np.bincount(src, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, indices
