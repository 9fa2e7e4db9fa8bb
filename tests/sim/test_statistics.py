"""Statistical validity of the contagion policy against SI/SIS/SIR theory, NDlib and a
reference independent cascade.

Tolerances are stated per test; replicate seeds average out sampling noise.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.memes import AgentsPlacement, MemeSpec, RandomPlacement
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.retrieval import RetrievalSpec
from topologies.banks import BankLayoutSpec, GlobalBank, NeighbourhoodBanks

MEME = MemeSpec(
    id="m",
    statement="spread me",
    canary="CANARY-42",
    placement=AgentsPlacement(agents=[0]),
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


# ---------------------------------------------------------------- recovery: SIS and SIR
#
# Mixing as on a complete graph: one global bank that every agent reads (k = n + 1) and
# writes. Every holder of the meme has exactly one carrying entry in it (its copy, or its
# seed entry; recovery retracts it), so a susceptible agent at step t sees I_t entries,
# where I_t = holders at the start of the step, and adopts with 1 - (1 - beta)^I_t; every
# holder recovers with probability gamma. The discrete-time mean-field map is
#     i' = (1 - gamma) i + (1 - i) (1 - (1 - beta)^(n i)).


def _recovery_model(n: int, beta: float, gamma: float, recovery: str, seeds: int, seed: int):
    meme = MEME.model_copy(update={"placement": RandomPlacement(count=seeds)})
    return MemeticModel(
        graph=nx.complete_graph(n),
        banks=BankLayoutSpec(private=None, global_=GlobalBank(capacity=n + 10)),
        memes=[meme],
        policy=ContagionPolicy(ContagionSpec(beta=beta, gamma=gamma, recovery=recovery)),
        memory=MemorySpec(retrieval=RetrievalSpec(k=n + 1)),
        seed=seed,
    )


def _sis_endemic_level(n: int, beta: float, gamma: float) -> float:
    """The nonzero fixed point of the mean-field map: gamma i = (1 - i)(1 - (1-beta)^(n i))."""
    low, high = 1e-6, 1.0
    for _ in range(100):
        mid = (low + high) / 2
        excess = (1 - mid) * (1 - (1 - beta) ** (n * mid)) - gamma * mid
        low, high = (mid, high) if excess > 0 else (low, mid)
    return (low + high) / 2


def test_sis_reaches_the_mean_field_endemic_level():
    n, beta, gamma, steps, burn_in = 200, 0.005, 0.3, 110, 30
    level = _sis_endemic_level(n, beta, gamma)
    assert level == pytest.approx(0.6015, abs=0.001)  # (the naive 1 - gamma/(n beta) is 0.7)
    means = []
    for seed in range(4):
        model = _recovery_model(n, beta, gamma, "sis", seeds=20, seed=seed)
        prevalence = []
        for _ in range(steps):
            model.step()
            prevalence.append(model.tracker.adopter[:, 0].mean())
        means.append(np.mean(prevalence[burn_in:]))
        steps_table = model.tables()["steps"]
        # Holders turn over: recoveries and re-adoptions both happen, every recovery
        # retracts the one entry of the recovered agent.
        assert steps_table["lost_adopters"].sum() == steps_table["entries_retracted"].sum() > 0
        assert model.tracker.recovered[:, 0].sum() > n / 2
    # Tolerance: the time-averaged prevalence (steps 30..109, 4 replicates) is within 0.015
    # of the mean-field level. Measured: replicate means 0.596..0.600 (spread 0.002); the
    # finite-size (quasi-stationary) bias is O(1/n), about -0.005 here.
    assert np.mean(means) == pytest.approx(level, abs=0.015), means
    assert np.std(means) < 0.01


def _sir_final_size(r0: float, initial: float) -> float:
    """The root z in (0, 1] of 1 - z = (1 - initial) exp(-r0 z)."""
    z = 1.0
    for _ in range(500):
        z = 1 - (1 - initial) * np.exp(-r0 * z)
    return float(z)


def test_sir_final_size_matches_the_final_size_relation():
    # Each holder stays infectious a geometric number D >= 1 of steps (mean 1 / gamma) and
    # a susceptible escapes it with probability (1 - beta)^D, so a susceptible escapes all
    # n z holders ever with exp(-r0 z), r0 = n (-ln(1 - beta)) / gamma: the final-size
    # relation 1 - z = (1 - z0) exp(-r0 z), z0 = seeded fraction.
    n, gamma, r0, seeds, reps = 600, 0.5, 2.0, 20, 16
    beta = 1 - np.exp(-r0 * gamma / n)
    theory = _sir_final_size(r0, seeds / n)
    assert theory == pytest.approx(0.8079, abs=0.001)
    finals = []
    for seed in range(reps):
        model = _recovery_model(n, beta, gamma, "sir", seeds=seeds, seed=seed)
        model.step()  # seeds are injected at step 0
        while model.tracker.adopter[:, 0].any():
            model.step()
        ever = model.tracker.adopter[:, 0] | model.tracker.recovered[:, 0]
        finals.append(ever.mean())
        # SIR: nobody adopts twice.
        adoptions = model.tables()["agents"].filter(
            (pl.col("state") == "adopter") & pl.col("value")
        )
        assert adoptions["agent_id"].n_unique() == adoptions.height
    # Tolerance: the mean final size of 16 runs is within 0.025 of the relation: one run's
    # final size has a standard deviation of about 0.035 at n = 600 (standard error of
    # the mean 0.009), and the finite-size bias is about -0.005 (measured: -0.010 at
    # n = 300, -0.002 at n = 1000).
    assert np.mean(finals) == pytest.approx(theory, abs=0.025), finals
    assert min(finals) > 0.6  # no minor outbreaks with 20 seeds at r0 = 2


# ---------------------------------------------------------------- one-shot independent cascade


def _reference_cascade(graph: nx.Graph, seeds: list[int], p: float, rng) -> int:
    """Independent cascade, straightforwardly: each newly active node tries each inactive
    neighbour once, with probability p; returns the number of active nodes at the end."""
    active = set(seeds)
    frontier = sorted(seeds)
    while frontier:
        fresh = []
        for u in frontier:
            for v in sorted(graph[u]):
                if v not in active and rng.random() < p:
                    active.add(v)
                    fresh.append(v)
        frontier = fresh
    return len(active)


def _cascade_size(graph: nx.Graph, p: float, rule: str, seed: int, steps: int = 14) -> int:
    model = MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(private=None, neighbourhood=NeighbourhoodBanks(capacity=8)),
        memes=[MEME],
        policy=ContagionPolicy(ContagionSpec(beta=p, rule=rule)),
        memory=MemorySpec(retrieval=RetrievalSpec(k=64)),
        seed=seed,
    )
    for _ in range(steps):
        model.step()
    return int(model.tracker.adopter[:, 0].sum())


def test_one_shot_cascade_matches_a_reference_independent_cascade():
    graph = nx.karate_club_graph()  # 34 nodes, node 0 a hub; MEME seeds node 0
    graph = nx.Graph(graph.edges())
    p, reps = 0.15, 300
    rng = np.random.default_rng(77)
    reference = np.array([_reference_cascade(graph, [0], p, rng) for _ in range(3000)])
    ours = np.array([_cascade_size(graph, p, "one_shot_cascade", s) for s in range(reps)])
    # Tolerance: the means differ by less than 3 standard errors of their difference.
    se = np.sqrt(ours.var() / len(ours) + reference.var() / len(reference))
    assert abs(ours.mean() - reference.mean()) < 3 * se, (ours.mean(), reference.mean(), se)
    # The distributions agree too: share of cascades reaching a third of the graph.
    big_ours, big_ref = (ours >= 12).mean(), (reference >= 12).mean()
    se_big = np.sqrt(big_ref * (1 - big_ref) * (1 / len(ours) + 1 / len(reference)))
    assert abs(big_ours - big_ref) < 3 * se_big + 1e-9
    # The test can tell the rules apart: repeated exposure (SI-like) spreads much further.
    repeated = np.array([_cascade_size(graph, p, "repeated_exposure", s) for s in range(40)])
    assert repeated.mean() - reference.mean() > 10 * se
