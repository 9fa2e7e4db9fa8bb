"""A graph read from a file (an edge list or GraphML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np

from topologies.graphs.base import GraphSpecBase, TopologyError


class GraphFile(GraphSpecBase):
    """Graph read from a file.

    ``edgelist``: one edge per line as two whitespace-separated node labels (further
    columns are ignored); blank lines and text after ``#`` are skipped. ``graphml``: any
    GraphML file networkx reads. Directed or multi-graphs become simple undirected
    graphs; self loops are dropped. Nodes are relabelled ``0..n-1`` in sorted label
    order (numeric order when every label is an integer) and keep their original label
    in the ``"label"`` node attribute.
    """

    kind: Literal["file"] = "file"
    path: Path
    """The graph file; a relative path in a config file is relative to that file's folder."""
    format: Literal["edgelist", "graphml"] = "edgelist"
    """The file format (see above)."""

    def generate(self, rng: np.random.Generator) -> nx.Graph:
        """The graph in the file, relabelled (no randomness is drawn)."""
        return _read_graph_file(self)


def _labels_as_ints(labels: list[str]) -> list[int] | None:
    """Return the labels as ints if every one is an integer literal, else None."""
    try:
        return [int(label) for label in labels]
    except ValueError:
        return None


def _read_graph_file(spec: GraphFile) -> nx.Graph:
    """Read a file graph and relabel it with its sorted labels (kept as ``"label"``)."""
    path = spec.path
    if not path.is_file():
        raise TopologyError(f"file.path = {str(path)!r}: no such file; must be an existing file")
    raw = _read_edgelist(path) if spec.format == "edgelist" else _read_graphml(path)
    if raw.number_of_nodes() == 0:
        raise TopologyError(
            f"file.path = {str(path)!r}: the {spec.format} file holds no nodes; "
            "must describe a graph with at least one node"
        )
    labels = [str(node) for node in raw]
    as_ints = _labels_as_ints(labels)
    originals: list[Any] = as_ints if as_ints is not None else labels
    key_of = dict(zip(raw, originals, strict=True))
    order = sorted(raw, key=key_of.__getitem__)
    mapping = {old: new for new, old in enumerate(order)}
    graph = nx.Graph()
    for old in order:
        graph.add_node(mapping[old], **raw.nodes[old])
        graph.nodes[mapping[old]]["label"] = key_of[old]
    graph.add_edges_from((mapping[u], mapping[v], data) for u, v, data in raw.edges(data=True))
    return graph


def _read_edgelist(path: Path) -> nx.Graph:
    """Parse a whitespace-separated edge list; raise on a line with fewer than two labels."""
    graph = nx.Graph()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise TopologyError(
                    f"file.path = {str(path)!r}: line {number} ({line.strip()!r}) is not an "
                    "edge; each line must hold two node labels 'u v'"
                )
            graph.add_edge(tokens[0], tokens[1])
    return graph


def _read_graphml(path: Path) -> nx.Graph:
    """Read a GraphML file as an undirected simple graph."""
    try:
        raw = nx.read_graphml(path)
    except (ET.ParseError, nx.NetworkXError, KeyError, ValueError) as error:
        raise TopologyError(
            f"file.path = {str(path)!r}: not a readable GraphML file ({error}); "
            "must be valid GraphML"
        ) from error
    return nx.Graph(raw)
