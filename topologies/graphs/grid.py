"""Two-dimensional square lattice, optionally a torus."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
from pydantic import model_validator

from topologies.graphs.base import GraphSpecBase


class Grid2D(GraphSpecBase):
    """``rows`` x ``cols`` square lattice (4-neighbourhood), optionally a torus.

    Node ``r*cols + c`` is the cell in row ``r``, column ``c``. With ``periodic`` the
    rows and columns wrap around (a dimension of length <= 2 gains no extra edges, since
    the graph is simple).
    """

    kind: Literal["grid"] = "grid"
    rows: int
    """Rows of the lattice, >= 1."""
    cols: int
    """Columns of the lattice, >= 1."""
    periodic: bool = False
    """Wrap rows and columns around (a torus)."""

    @model_validator(mode="after")
    def _validate(self) -> Grid2D:
        if self.rows < 1:
            self._fail("rows", self.rows, "must be an integer >= 1")
        if self.cols < 1:
            self._fail("cols", self.cols, "must be an integer >= 1")
        return self

    @property
    def n_agents(self) -> int:
        """The number of agents: ``rows * cols``."""
        return self.rows * self.cols

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The grid graph (see the class docstring)."""
        return nx.grid_2d_graph(self.rows, self.cols, periodic=self.periodic)
