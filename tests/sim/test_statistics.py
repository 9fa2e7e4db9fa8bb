"""Statistical validity of the contagion policy against SI theory and NDlib.

Tolerances are stated per test; replicate seeds average out sampling noise.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.memes import MemeSpec, PlacementSpec
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.retrieval import RetrievalSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks

MEME = MemeSpec(
    id="m",
    statement="spread me",
    canary="CANARY-42",
    placement=PlacementSpec(strategy="agents", agents=[0]),
)


def _prevalence(graph: nx.Graph, beta: float, steps: int, seed: int) -> np.ndarray:
    """Fraction of adopters after each step; one carrying entry per adopter is in every
    neighbour's context (k and capacity large enough), which is network SI."""
    n = graph.number_of_nodes()
    model = MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=4)),
        memes=[MEME],
        policy=ContagionPolicy(ContagionSpec(beta=beta)),
        memory=MemorySpec(retrieval=RetrievalSpec(k=n + 1)),
        seed=seed,
    )
    out = []
    for _ in range(steps):
        model.step()
        out.append(model.tracker.adopter[:, 0].sum() / n)
    return np.array(out)


def _si_recurrence(n: int, beta: float, steps: int, i0: int) -> np.ndarray:
    """Deterministic discrete-time SI on a complete graph: i' = i + (1 - i)(1 - (1-beta)^(n i))."""
    i = i0 / n
    out = []
    for _ in range(steps):
        i = i + (1 - i) * (1 - (1 - beta) ** (n * i))
        out.append(i)
    return np.array(out)


def _reed_frost_mean(n: int, beta: float, steps: int, reps: int) -> np.ndarray:
    """Mean prevalence of the stochastic chain-binomial SI (Reed-Frost) on a complete graph:
    S' ~ Binomial(S, (1 - beta)^I), the exact law of SI with per-contact probability beta."""
    rng = np.random.default_rng(2024)
    infected = np.ones(reps)
    out = []
    for _ in range(steps):
        susceptible = n - infected
        infected = infected + rng.binomial(susceptible.astype(int), 1 - (1 - beta) ** infected)
        out.append(infected.mean() / n)
    return np.array(out)


def _aligned(curve: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The curve as a function of time relative to its own 50 % crossing."""
    t = np.arange(1, len(curve) + 1, dtype=float)
    return np.interp(grid + np.interp(0.5, curve, t), t, curve)


def test_complete_graph_follows_si_logistic_curve():
    n, beta, steps, reps = 200, 0.004, 22, 40
    graph = nx.complete_graph(n)
    runs = [_prevalence(graph, beta, steps, seed) for seed in range(reps)]
    mean = np.mean(runs, axis=0)
    # 1. The mean curve equals the exact stochastic SI law (Reed-Frost, 20,000 draws):
    #    tolerance 0.08 absolute prevalence at every step (about 2.5 standard errors of a
    #    40-replicate mean at mid-epidemic, where the spread between runs is largest).
    exact = _reed_frost_mean(n, beta, steps, 20_000)
    assert np.max(np.abs(mean - exact)) < 0.08, (mean.round(3), exact.round(3))
    # 2. Each run has the SI logistic shape: aligned at its own 50 % crossing, the mean run
    #    follows the deterministic SI recurrence (aligned the same way) within 0.05 on the
    #    window of -4..+4 steps around the midpoint.
    theory = _si_recurrence(n, beta, 60, i0=1)
    grid = np.linspace(-4, 4, 17)
    aligned = np.mean([_aligned(r, grid) for r in runs], axis=0)
    assert np.max(np.abs(aligned - _aligned(theory, grid))) < 0.05

    # 3. The fitted logistic growth rate (slope of logit(i) for 0.1 < i < 0.9) of the mean
    #    aligned run is within 15 % of the recurrence's.
    def rate(curve):
        ok = (curve > 0.1) & (curve < 0.9)
        return np.polyfit(grid[ok], np.log(curve[ok] / (1 - curve[ok])), 1)[0]

    assert rate(aligned) == pytest.approx(rate(_aligned(theory, grid)), rel=0.15)
    assert mean[-1] > 0.95


def _ndlib_prevalence(graph: nx.Graph, beta: float, steps: int, seed: int) -> np.ndarray:
    import ndlib.models.epidemics as ep
    import ndlib.models.ModelConfig as mc  # noqa: N813

    model = ep.SIModel(graph, seed=seed)
    config = mc.Configuration()
    config.add_model_parameter("beta", beta)
    config.add_model_initial_configuration("Infected", [0])
    model.set_initial_status(config)
    model.iteration()  # iteration 0 returns the initial status
    out = []
    for _ in range(steps):
        it = model.iteration()
        out.append(it["node_count"][1] / graph.number_of_nodes())
    return np.array(out)


def test_erdos_renyi_matches_ndlib_si():
    pytest.importorskip("ndlib")
    graph = nx.erdos_renyi_graph(300, 0.03, seed=11)
    graph = graph.subgraph(max(nx.connected_components(graph), key=len)).copy()
    graph = nx.convert_node_labels_to_integers(graph, ordering="sorted")
    assert 0 in graph
    beta, steps, reps = 0.02, 40, 20
    ours = np.mean([_prevalence(graph, beta, steps, s) for s in range(reps)], axis=0)
    theirs = np.mean([_ndlib_prevalence(graph, beta, steps, s) for s in range(reps)], axis=0)
    # NDlib's SI infects with probability beta * (infected neighbours) per step, ours with
    # 1 - (1 - beta)^(infected neighbours): equal to first order in beta. Tolerance: the
    # mean curves of 20 replicates differ by less than 0.1 prevalence at every step, and
    # their times to 50 % by less than 3 steps.
    assert np.max(np.abs(ours - theirs)) < 0.1, (ours.round(2), theirs.round(2))
    t = np.arange(1, steps + 1)
    assert abs(np.interp(0.5, ours, t) - np.interp(0.5, theirs, t)) < 3
