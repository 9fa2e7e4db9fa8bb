"""Stochastic block model with planted blocks."""

from __future__ import annotations

import itertools
from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase, draw_seed


class StochasticBlockModel(GraphSpecBase):
    """Stochastic block model with planted blocks of the given ``sizes``.

    Edge probabilities are given either as ``p_in`` (within a block) and ``p_out``
    (between blocks), or as an explicit symmetric ``p`` matrix with one row and column
    per block; exactly one of the two forms. Nodes ``0..sizes[0]-1`` form block 0, the
    next ``sizes[1]`` block 1, and so on; each node carries its block in the ``"block"``
    attribute.
    """

    kind: Literal["sbm"] = "sbm"
    sizes: list[int]
    """Agents per block (non-empty, each >= 1); the graph has ``sum(sizes)`` agents."""
    p_in: float | None = None
    """Edge probability within a block, in [0, 1]; given together with ``p_out``."""
    p_out: float | None = None
    """Edge probability between blocks, in [0, 1]; given together with ``p_in``."""
    p: list[list[float]] | None = None
    """Or: the symmetric matrix of edge probabilities, ``len(sizes)`` x ``len(sizes)``,
    entries in [0, 1] (not with ``p_in``/``p_out``)."""

    @model_validator(mode="after")
    def _validate(self) -> StochasticBlockModel:
        if not self.sizes or any(s < 1 for s in self.sizes):
            self._fail("sizes", self.sizes, "must be a non-empty list of integers >= 1")
        scalar_form = self.p_in is not None or self.p_out is not None
        if self.p is not None and scalar_form:
            self._fail("p", self.p, "give either p or (p_in, p_out), not both")
        if self.p is None:
            if self.p_in is None or self.p_out is None:
                self._fail(
                    "p_in/p_out",
                    (self.p_in, self.p_out),
                    "both p_in and p_out are required unless a p matrix is given",
                )
            self._check_probability("p_in", self.p_in)
            self._check_probability("p_out", self.p_out)
            return self
        blocks = len(self.sizes)
        if len(self.p) != blocks or any(len(row) != blocks for row in self.p):
            self._fail(
                "p",
                self.p,
                f"must be a {blocks}x{blocks} matrix (one row and column per block)",
            )
        for i, j in itertools.product(range(blocks), repeat=2):
            self._check_probability(f"p[{i}][{j}]", self.p[i][j])
            if abs(self.p[i][j] - self.p[j][i]) > 1e-12:
                self._fail(
                    f"p[{i}][{j}]",
                    self.p[i][j],
                    f"the matrix must be symmetric, but p[{j}][{i}] = {self.p[j][i]!r}",
                )
        return self

    def matrix(self) -> list[list[float]]:
        """Return the block probability matrix, expanding ``p_in``/``p_out`` if needed."""
        if self.p is not None:
            return [list(row) for row in self.p]
        blocks = len(self.sizes)
        inside, outside = float(self.p_in or 0.0), float(self.p_out or 0.0)  # both set: validated
        return [[inside if i == j else outside for j in range(blocks)] for i in range(blocks)]

    @property
    def n_agents(self) -> int:
        """The number of agents: the sum of the block sizes."""
        return sum(self.sizes)

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The sbm graph (see the class docstring)."""
        graph = nx.stochastic_block_model(
            self.sizes, self.matrix(), seed=draw_seed(rng), sparse=True
        )
        graph.graph.pop("partition", None)
        for _, data in graph.nodes(data=True):
            data["block"] = int(data["block"])
        return graph
