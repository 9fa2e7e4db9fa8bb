"""Benchmark: the contagion policy (with memory banks and provenance) vs NDlib's SI model.

Everything runs on the same Barabasi-Albert graph, side by side in one process, with
the steps of the three models interleaved (ours, ours with relevance, NDlib, ours, ...)
so that a busy machine slows them alike. Each step is timed by the wall clock and by the
process's CPU time; ratios use CPU time, which other processes on a shared machine
disturb far less (they still compete for caches and memory bandwidth). Printed ratios:

* memespread / NDlib seconds per step at 100,000 agents (goal <= 1.0, stretch <= 0.1);
* relevance on / off: the same contagion run with lexical relevance scoring (every agent
  has a task text) against the run without it (goal <= 2.0);
* 1,000,000 agents in a subprocess, so that its peak memory is its own (CPU seconds per
  step, peak RSS; goals <= 1 s and <= 2.5 GiB);
* the growth of CPU seconds per step from 10^5 to 10^6 agents (goal: about linear, i.e.
  about 10), measured side by side in one more subprocess: a 10^5-agent and a
  10^6-agent model built there step in turn (10^5, 10^6, 10^5, ...), so that a change in
  the machine's load between two separate runs cannot make up the ratio.

``--no-million`` skips the last two. Each process first loads retrieval's compiled
kernels (a one-off cost per process, printed, and left out of the per-step figures).

The last lines repeat the four figures of the goals (issue 14, item 6) side by side.

    .venv/bin/python bench/contagion_vs_ndlib.py [--agents 100000] [--steps 40] [--no-million]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import networkx as nx
import numpy as np

from agents.contagion import ContagionPolicy, ContagionSpec
from sim.memes import MemeSpec, RandomPlacement
from sim.memory_spec import MemorySpec
from sim.model import MemeticModel
from sim.retrieval import RetrievalSpec
from topologies.banks import BankLayoutSpec, NeighbourhoodBanks, PrivateBanks
from topologies.graphs import BarabasiAlbert, build_graph

BETA = 0.05
SEEDS = 10
TOPICS = ("spread this goal", "bake bread", "review code", "watch comets", "play chess")


def _meme() -> MemeSpec:
    return MemeSpec(
        id="m",
        statement="spread this goal",
        canary="CANARY-BENCH",
        placement=RandomPlacement(count=SEEDS),
    )


class TaskContagion(ContagionPolicy):
    """The contagion policy with a task text per agent, so retrieval scores relevance."""

    def __init__(self, spec: ContagionSpec, n_agents: int) -> None:
        super().__init__(spec)
        self._queries = [f"agent {i} plans to {TOPICS[i % len(TOPICS)]}" for i in range(n_agents)]

    def queries(self, step: int) -> Sequence[str] | None:
        """The same task text for each agent at every step."""
        return self._queries


def build_model(graph: nx.Graph, relevance: bool = False) -> MemeticModel:
    spec = ContagionSpec(beta=BETA)
    n = graph.number_of_nodes()
    return MemeticModel(
        graph=graph,
        banks=BankLayoutSpec(
            private=PrivateBanks(capacity=8), neighbourhood=NeighbourhoodBanks(capacity=8)
        ),
        memes=[_meme()],
        policy=TaskContagion(spec, n) if relevance else ContagionPolicy(spec),
        memory=MemorySpec(retrieval=RetrievalSpec(k=8, relevance_weight=1.0 if relevance else 0)),
        seed=1,
    )


class NDlibSI:
    """NDlib's SI model on the graph, seeded like ours (same count, its own draw)."""

    def __init__(self, graph: nx.Graph) -> None:
        import ndlib.models.epidemics as ep
        import ndlib.models.ModelConfig as mc  # noqa: N813

        self.n = graph.number_of_nodes()
        self.model = ep.SIModel(graph, seed=1)
        config = mc.Configuration()
        config.add_model_parameter("beta", BETA)
        rng = np.random.default_rng(1)
        config.add_model_initial_configuration(
            "Infected", rng.choice(self.n, SEEDS, replace=False).tolist()
        )
        self.model.set_initial_status(config)
        self.model.iteration()
        self.prevalence = 0.0

    def step(self) -> None:
        self.prevalence = self.model.iteration()["node_count"][1] / self.n


def _timed(step: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def side_by_side(graph: nx.Graph, steps: int) -> dict[str, float]:
    """Interleaved CPU (and wall) seconds per step of ours, ours with relevance, NDlib."""
    ours, ours_rel, ndlib = build_model(graph), build_model(graph, relevance=True), NDlibSI(graph)
    models = {"ours": ours.step, "relevance": ours_rel.step, "ndlib": ndlib.step}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for _ in range(steps):
        for name, step in models.items():
            times[name].append(_timed(step))
    out = {name: float(np.mean([cpu for _, cpu in t])) for name, t in times.items()}
    out.update({f"{name}_wall": float(np.mean([w for w, _ in t])) for name, t in times.items()})
    out["ours_prevalence"] = float(ours.tracker.adopter[:, 0].mean())
    out["relevance_prevalence"] = float(ours_rel.tracker.adopter[:, 0].mean())
    out["ndlib_prevalence"] = ndlib.prevalence
    return out


def million(steps: int, agents: int = 1_000_000) -> dict[str, float]:
    """Seconds per step and peak RSS of the contagion policy at ``agents`` agents."""
    t0 = time.perf_counter()
    graph = build_graph(BarabasiAlbert(n=agents, m=3), np.random.default_rng(0))
    t_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = build_model(graph)
    t_model = time.perf_counter() - t0
    built_rss = _peak_rss_gib()
    times = [_timed(model.step) for _ in range(steps)]
    cpu = [c for _, c in times]
    return {
        "graph_build_s": t_graph,
        "model_build_s": t_model,
        "built_rss_gib": built_rss,
        "s_per_step": float(np.mean(cpu)),
        "max_step_s": float(np.max(cpu)),
        "wall_s_per_step": float(np.mean([w for w, _ in times])),
        "adopters": float(model.tracker.adopter[:, 0].mean()),
        "entries": len(model.store),
        "peak_rss_gib": _peak_rss_gib(),
    }


def growth(steps: int, small: int, large: int = 1_000_000) -> dict[str, float]:
    """CPU seconds per step at ``small`` and ``large`` agents, the two models interleaved.

    Both run the benchmark's contagion configuration on their own Barabasi-Albert graph
    from step 0, one step each in turn, so the two figures share the machine's load.
    """
    models = [
        build_model(build_graph(BarabasiAlbert(n=n, m=3), np.random.default_rng(0)))
        for n in (small, large)
    ]
    cpu: list[list[float]] = [[], []]
    for _ in range(steps):
        for index, model in enumerate(models):
            cpu[index].append(_timed(model.step)[1])
    small_s, large_s = float(np.mean(cpu[0])), float(np.mean(cpu[1]))
    return {"small_s_per_step": small_s, "large_s_per_step": large_s, "ratio": large_s / small_s}


def load_kernels() -> float:
    """Step a 100-agent model with and without relevance; the CPU seconds that took.

    Retrieval's compiled kernels (:mod:`sim.topk`) load once per process, on first use
    (about 0.4 s from numba's cache; a few seconds when they are compiled the first
    time). A
    run pays that once, not per step, so it is paid here, before any step is timed, and
    reported on its own.
    """
    graph = build_graph(BarabasiAlbert(n=100, m=3), np.random.default_rng(0))
    cpu = time.process_time()
    for relevance in (False, True):
        model = build_model(graph, relevance=relevance)
        for _ in range(3):
            model.step()
    return time.process_time() - cpu


def _in_subprocess(*flags: str) -> dict[str, float]:
    """Run this script with ``flags`` in a fresh process; its last line of output, as JSON."""
    out = subprocess.run(
        [sys.executable, __file__, *flags], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine() -> str:
    """CPU model, core count and load: benchmark figures mean little without them."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line]
        model = names[0] if names else model
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores (nproc), load average {load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="side-by-side runs (median)")
    parser.add_argument(
        "--no-million", dest="million", action="store_false", help="skip 1,000,000 agents"
    )
    # --million: accepted for old command lines; 10^6 agents run by default now.
    parser.add_argument("--million", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(million=True)
    parser.add_argument("--million-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--growth-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    kernels = load_kernels()
    if args.million_only:
        print(json.dumps(million(args.steps)))
        return
    if args.growth_only:
        print(json.dumps(growth(args.steps, args.agents)))
        return
    print(f"machine: {machine()}")
    print(f"loading the compiled retrieval kernels (once per process, not timed): {kernels:.2f} s")
    graph = build_graph(BarabasiAlbert(n=args.agents, m=args.m), np.random.default_rng(0))
    print(f"Barabasi-Albert n={args.agents} m={args.m}: {graph.number_of_edges()} edges")
    runs = []
    for repeat in range(args.repeats):
        r = side_by_side(graph, args.steps)
        runs.append(r)
        print(
            f"[{repeat + 1}/{args.repeats}] CPU s/step over {args.steps} steps (wall): "
            f"memespread {r['ours']:.4f} ({r['ours_wall']:.4f}; prevalence "
            f"{r['ours_prevalence']:.3f}), with relevance {r['relevance']:.4f} "
            f"({r['relevance_wall']:.4f}; {r['relevance_prevalence']:.3f}), "
            f"NDlib SI {r['ndlib']:.4f} ({r['ndlib_wall']:.4f}; {r['ndlib_prevalence']:.3f})"
        )
    ours = statistics.median(r["ours"] for r in runs)
    ratio = statistics.median(r["ours"] / r["ndlib"] for r in runs)
    relevance = statistics.median(r["relevance"] / r["ours"] for r in runs)
    print(f"ratio memespread / NDlib (CPU) = {ratio:.3f}  (goal <= 1.0, stretch <= 0.1)")
    print(f"ratio relevance on / off (CPU) = {relevance:.2f}  (goal <= 2.0)")
    if args.million:
        stats = _in_subprocess("--million-only", "--steps", str(args.steps))
        print(
            "1,000,000 agents: {s_per_step:.3f} CPU s/step (max {max_step_s:.3f}, wall "
            "{wall_s_per_step:.3f}; goal <= 1 s), "
            "peak RSS {peak_rss_gib:.2f} GiB (goal <= 2.5; {built_rss_gib:.2f} after building), "
            "graph build {graph_build_s:.1f} s, model build {model_build_s:.1f} s, "
            "{entries} entries, prevalence {adopters:.3f}"
            "".format(**stats)
        )
        grown = _in_subprocess(
            "--growth-only", "--steps", str(args.steps), "--agents", str(args.agents)
        )
        scale = grown["ratio"]
        print(
            f"growth, {args.agents:.0e} and 10^6 agents stepping in turn in one process: "
            f"{grown['small_s_per_step']:.4f} and {grown['large_s_per_step']:.3f} CPU s/step, "
            f"ratio {scale:.1f} (linear = {1_000_000 / args.agents:.0f}; the separate runs "
            f"above give {stats['s_per_step'] / ours:.1f})"
        )
    print(f"machine after: {machine()}")
    print(f"goals (issue 14.6), CPU time, {args.agents} agents unless said:")
    print(f"  memespread / NDlib SI per step   {ratio:6.3f}   goal <= 0.1")
    print(f"  relevance on / off               {relevance:6.2f}   goal <= 2")
    if args.million:
        print(f"  10^6 agents: CPU s per step      {stats['s_per_step']:6.3f}   goal <= 1")
        print(f"  10^6 agents: peak RSS, GiB       {stats['peak_rss_gib']:6.2f}   goal <= 2.5")
        print(f"  growth 10^6 / 10^5 per step      {scale:6.1f}   goal about 10 (linear)")


if __name__ == "__main__":
    main()
