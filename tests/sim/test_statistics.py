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
    id="m", statement="spread me", canary="CANARY-42", placement=PlacementSpec(strategy="agents", agents=[0])
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
    """Discrete-time mean-field SI on a complete graph: i' = i + (1 - i)(1 - (1-beta)^(n i))."""
    i = i0 / n
    out = []
    for _ in range(steps):
        i = i + (1 - i) * (1 - (1 - beta) ** (n * i))
        out.append(i)
    return np.array(out)


def test_complete_graph_follows_si_logistic_curve():
    n, beta, steps, reps = 200, 0.004, 20, 24
    graph = nx.complete_graph(n)
    mean = np.mean([_prevalence(graph, beta, steps, seed) for seed in range(reps)], axis=0)
    theory = _si_recurrence(n, beta, steps, i0=1)
    # Tolerance: 0.08 absolute prevalence at every step for the mean of 24 replicates.
    assert np.max(np.abs(mean - theory)) < 0.08, (mean.round(3), theory.round(3))
    # And the logistic shape: slow start, saturation.
    assert mean[2] < 0.05
    assert mean[-1] > 0.95
    # The continuous SI logistic i(t) = i0 e^{rt} / (1 - i0 + i0 e^{rt}) with r = n*beta
    # fits the mean curve's midpoint within 1.5 steps.
    r, i0 = n * beta, 1 / n
    t = np.arange(1, steps + 1)
    logistic = i0 * np.exp(r * t) / (1 - i0 + i0 * np.exp(r * t))
    t_half_model = np.interp(0.5, mean, t)
    t_half_theory = np.interp(0.5, logistic, t)
    assert abs(t_half_model - t_half_theory) < 1.5


def _ndlib_prevalence(graph: nx.Graph, beta: float, steps: int, seed: int) -> np.ndarray:
    import ndlib.models.ModelConfig as mc
    import ndlib.models.epidemics as ep

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
