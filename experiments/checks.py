"""Cross-field checks of a run config, done on the specs alone (nothing is built).

The schema checks each key on its own; these checks relate keys to each other:

Errors (the run could not start, or would fail mid-way):

* ``memes.I.placement.agents`` — agent ids must be below the number of agents when the
  graph spec fixes it (every kind but ``file``);
* ``memes.I.placement.count`` — at most the number of agents;
* ``memes.I.placement.bank`` — the name must be able to exist in the bank layout:
  ``global`` needs the global layer, ``private:A`` / ``neighbourhood:A`` the layer and
  ``0 <= A < n``, ``community:C`` the community layer (and ``C <`` the number of blocks
  for planted communities of an SBM), ``edge:U-V`` the edge layer and ``0 <= U < V < n``;
* ``memes.I.placement.into`` — ``shared`` needs a shared layer, ``private`` the private one;
* ``memes.I.detector`` — ``embedding`` detectors need an embedder, which runs built from
  a config do not have;
* ``banks.community.method = "planted"`` — needs block labels: an ``sbm`` (or a ``file``)
  graph.

Warnings (the run works but probably not as meant):

* ``probe_every`` with the contagion policy — the rule decides adoption, probes change
  nothing;
* an LLM policy without ``probe_every`` — adoption is never probed, so adopters stay the
  seeded agents;
* ``memes.I.inject_step >= steps`` — the meme is never seeded.
"""

from __future__ import annotations

import re

from experiments.config import RunConfig
from sim.memes import EmbeddingDetectorSpec
from topologies.graphs import GraphFile, Grid2D, StochasticBlockModel

_AGENT_BANK = re.compile(r"^(private|neighbourhood):(-?\d+)$")
_COMMUNITY_BANK = re.compile(r"^community:(-?\d+)$")
_EDGE_BANK = re.compile(r"^edge:(-?\d+)-(-?\d+)$")
_BANK_FORMS = "global, private:A, neighbourhood:A, community:C, edge:U-V"


def graph_size(config: RunConfig) -> int | None:
    """The number of agents the graph spec fixes, or None (a graph read from a file)."""
    graph = config.graph
    if isinstance(graph, GraphFile):
        return None
    if isinstance(graph, StochasticBlockModel):
        return sum(graph.sizes)
    if isinstance(graph, Grid2D):
        return graph.rows * graph.cols
    return int(graph.n)


def _layers(config: RunConfig) -> dict[str, bool]:
    banks = config.banks
    return {
        "private": banks.private is not None,
        "neighbourhood": banks.neighbourhood is not None,
        "community": banks.community is not None,
        "edge": banks.edge is not None,
        "global": banks.global_ is not None,
    }


def _bank_error(name: str, config: RunConfig, n: int | None) -> str | None:
    """Why bank ``name`` cannot exist in the config's layout, or None."""
    layers = _layers(config)
    present = [k for k, v in layers.items() if v]
    if name == "global":
        if not layers["global"]:
            return f"the layout has no global layer (layers: {present}); add [banks.global]"
        return None
    match = _AGENT_BANK.match(name)
    if match:
        layer, agent = match.group(1), int(match.group(2))
        if not layers[layer]:
            return f"the layout has no {layer} layer (layers: {present})"
        if agent < 0 or (n is not None and agent >= n):
            return f"agent {agent} does not exist; agents are 0..{'n-1' if n is None else n - 1}"
        return None
    match = _COMMUNITY_BANK.match(name)
    if match:
        index = int(match.group(1))
        if not layers["community"]:
            return f"the layout has no community layer (layers: {present})"
        community = config.banks.community
        graph = config.graph
        planted = community is not None and community.method == "planted"
        if index < 0 or (
            planted and isinstance(graph, StochasticBlockModel) and index >= len(graph.sizes)
        ):
            return "community index out of range (planted communities are the SBM blocks)"
        return None
    match = _EDGE_BANK.match(name)
    if match:
        u, v = int(match.group(1)), int(match.group(2))
        if not layers["edge"]:
            return f"the layout has no edge layer (layers: {present})"
        if not 0 <= u < v or (n is not None and v >= n):
            return "edge banks are named edge:U-V with 0 <= U < V < n"
        return None
    return f"not a bank name; bank names look like {_BANK_FORMS}"


def cross_field_errors(config: RunConfig) -> list[str]:
    """Every cross-field error of a schema-valid config (see the module docstring)."""
    errors: list[str] = []
    n = graph_size(config)
    layers = _layers(config)
    shared = [k for k, v in layers.items() if v and k != "private"]
    for i, meme in enumerate(config.memes):
        key = f"memes.{i}"
        placement = meme.placement
        if placement.strategy == "agents" and n is not None:
            bad = sorted(a for a in placement.agents or [] if not 0 <= a < n)
            if bad:
                errors.append(
                    f"{key}.placement.agents = {bad}: agent ids must be in 0..{n - 1} "
                    f"(the graph has {n} agents)"
                )
        elif placement.strategy == "agents":
            bad = sorted(a for a in placement.agents or [] if a < 0)
            if bad:
                errors.append(f"{key}.placement.agents = {bad}: agent ids must be >= 0")
        counted = placement.strategy in {"random", "hub", "periphery", "bridge"}
        if counted and n is not None and placement.count > n:
            errors.append(
                f"{key}.placement.count = {placement.count}: must be at most the number "
                f"of agents ({n})"
            )
        if placement.strategy == "bank":
            problem = _bank_error(placement.bank or "", config, n)
            if problem:
                errors.append(f"{key}.placement.bank = {placement.bank!r}: {problem}")
        else:
            if placement.into == "shared" and not shared:
                errors.append(
                    f"{key}.placement.into = 'shared': the layout has only private banks; "
                    "add a shared layer or use into = 'private' or 'all'"
                )
            if placement.into == "private" and not layers["private"]:
                errors.append(
                    f"{key}.placement.into = 'private': the layout has no private layer; "
                    "add [banks.private] or use into = 'shared' or 'all'"
                )
        if isinstance(meme.detector, EmbeddingDetectorSpec):
            errors.append(
                f"{key}.detector.kind = 'embedding': runs built from a config have no "
                "embedder; use 'canary' or 'lexical' (or build the model in Python with "
                "embedder=)"
            )
    community = config.banks.community
    planted = community is not None and community.method == "planted"
    if planted and not isinstance(config.graph, StochasticBlockModel | GraphFile):
        errors.append(
            f"banks.community.method = 'planted': needs block labels, which only graph "
            f"kind 'sbm' (or a 'file' with a 'block' attribute) has; graph.kind is "
            f"{config.graph.kind!r}; use 'louvain' or 'greedy_modularity'"
        )
    return errors


def config_warnings(config: RunConfig) -> list[str]:
    """Likely mistakes that do not stop a run (see the module docstring)."""
    warnings: list[str] = []
    if config.policy.kind == "contagion" and config.probe_every is not None:
        warnings.append(
            f"probe_every = {config.probe_every}: the contagion policy decides adoption by "
            "its rule; probes change nothing (remove probe_every or use an LLM policy)"
        )
    if config.policy.kind != "contagion" and config.probe_every is None:
        warnings.append(
            "probe_every is not set: LLM agents are never probed, so adopters stay the "
            "seeded agents (set probe_every = 1 to probe every step)"
        )
    for i, meme in enumerate(config.memes):
        if meme.inject_step >= config.steps:
            warnings.append(
                f"memes.{i}.inject_step = {meme.inject_step}: the run has only "
                f"{config.steps} steps (0..{config.steps - 1}), so meme {meme.id!r} is "
                "never seeded"
            )
    return warnings
