"""Benchmark: the contagion policy (with memory banks and provenance) vs NDlib's SI model.

Both run on the same Barabasi-Albert graph, side by side in one process, and the ratio
of seconds per step is printed (ours / NDlib; goal <= 1.0, stretch <= 0.1). A second
part runs the contagion policy at 1,000,000 agents in a subprocess and prints seconds
per step and peak memory.

    .venv/bin/python bench/contagion_vs_ndlib.py [--agents 100000] [--steps 10] [--million]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import networkx as nx
import numpy as np

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.memes import MemeSpec, PlacementSpec
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.retrieval import RetrievalSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks
from topologies.graphs import BarabasiAlbert, build_graph

BETA = 0.05
SEEDS = 10


def _meme() -> MemeSpec:
    return MemeSpec(
        id="m",
        statement="spread this goal",
        canary="CANARY-BENCH",
        placement=PlacementSpec(strategy="random", count=SEEDS),
    )


def build_model(graph: nx.Graph) -> MemeticModel:
    return MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[_meme()],
        policy=ContagionPolicy(ContagionSpec(beta=BETA)),
        memory=MemorySpec(retrieval=RetrievalSpec(k=8)),
        seed=1,
    )


def time_ours(graph: nx.Graph, steps: int) -> tuple[list[float], float]:
    model = build_model(graph)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.step()
        times.append(time.perf_counter() - t0)
    return times, float(model.tracker.adopter[:, 0].mean())


def time_ndlib(graph: nx.Graph, steps: int) -> tuple[list[float], float]:
    import ndlib.models.epidemics as ep
    import ndlib.models.ModelConfig as mc  # noqa: N813

    model = ep.SIModel(graph, seed=1)
    config = mc.Configuration()
    config.add_model_parameter("beta", BETA)
    rng = np.random.default_rng(1)
    config.add_model_initial_configuration(
        "Infected", rng.choice(graph.number_of_nodes(), SEEDS, replace=False).tolist()
    )
    model.set_initial_status(config)
    model.iteration()
    times = []
    last = None
    for _ in range(steps):
        t0 = time.perf_counter()
        last = model.iteration()
        times.append(time.perf_counter() - t0)
    assert last is not None
    return times, last["node_count"][1] / graph.number_of_nodes()


def million(steps: int) -> dict[str, float]:
    """Seconds per step and peak RSS of the contagion policy at 1,000,000 agents."""
    t0 = time.perf_counter()
    graph = build_graph(BarabasiAlbert(n=1_000_000, m=3), np.random.default_rng(0))
    t_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = build_model(graph)
    t_model = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.step()
        times.append(time.perf_counter() - t0)
    return {
        "graph_build_s": t_graph,
        "model_build_s": t_model,
        "s_per_step": float(np.mean(times)),
        "max_step_s": float(np.max(times)),
        "adopters": float(model.tracker.adopter[:, 0].mean()),
        "entries": len(model.store),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--million", action="store_true", help="also run 1,000,000 agents")
    parser.add_argument("--million-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.million_only:
        print(json.dumps(million(args.steps)))
        return
    graph = build_graph(BarabasiAlbert(n=args.agents, m=args.m), np.random.default_rng(0))
    print(f"Barabasi-Albert n={args.agents} m={args.m}: {graph.number_of_edges()} edges")
    ours, ours_prev = time_ours(graph, args.steps)
    theirs, theirs_prev = time_ndlib(graph, args.steps)
    o, t = float(np.mean(ours)), float(np.mean(theirs))
    print(
        f"memespread contagion (private+neighbourhood banks): {o:.4f} s/step "
        f"(prevalence after {args.steps} steps {ours_prev:.3f})"
    )
    print(
        f"NDlib SI:                                           {t:.4f} s/iteration "
        f"(prevalence {theirs_prev:.3f})"
    )
    print(f"ratio memespread / NDlib = {o / t:.3f}  (goal <= 1.0, stretch <= 0.1)")
    if args.million:
        out = subprocess.run(
            [sys.executable, __file__, "--million-only", "--steps", str(args.steps)],
            check=True,
            capture_output=True,
            text=True,
        )
        stats = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            "1,000,000 agents: {s_per_step:.3f} s/step (max {max_step_s:.3f}), "
            "graph build {graph_build_s:.1f} s, model build {model_build_s:.1f} s, "
            "peak RSS {peak_rss_gib:.2f} GiB, {entries} entries, prevalence {adopters:.3f}".format(
                **stats
            )
        )


if __name__ == "__main__":
    main()
