"""Benchmark: a contagion step on ordinary memory pages against NumPy's huge-page default.

``MemeticModel.step`` turns NumPy's transparent-huge-page advice off for the step
(:mod:`sim.pages`). This measures what that buys: two models of the benchmark's
contagion configuration (``bench/contagion_vs_ndlib.py``, private + neighbourhood banks,
k = 8) on the same Barabasi-Albert graph step in turn in the main thread, one as a run
steps it (ordinary pages) and one with the advice on, as NumPy's default has it: for its
steps the benchmark replaces the name ``ordinary_pages`` in :mod:`sim.model` by a block
that does nothing, and puts it back after. (Not in a second thread: a thread gets its
own malloc arena, which changes how memory is recycled, and so the figure.) The two
alternate which goes first. Printed per size: CPU seconds per step (user and system time
of the process, by ``getrusage``) of each, and the ratio ordinary / huge.

    .venv/bin/python bench/huge_pages.py [--agents 100000 1000000] [--steps 40]

(run as a script: it imports the contagion benchmark from its own directory)
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
from collections.abc import Callable

import numpy as np
from contagion_vs_ndlib import build_model, load_kernels, machine

import sim.model
from sim.pages import _advice_setter, ordinary_pages
from topologies.graphs import BarabasiAlbert, build_graph


def _cpu(call: Callable[[], None]) -> tuple[float, float]:
    """User and system CPU seconds of the process while ``call`` runs."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    call()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def _with_advice(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` run with NumPy's huge-page advice on (the step's switch made a no-op)."""

    def run() -> None:
        sim.model.ordinary_pages = contextlib.nullcontext  # type: ignore[assignment]
        try:
            step()
        finally:
            sim.model.ordinary_pages = ordinary_pages

    return run


def compare(agents: int, steps: int) -> dict[str, float]:
    """CPU seconds per step, user and system, on ordinary pages and with huge-page advice."""
    graph = build_graph(BarabasiAlbert(n=agents, m=3), np.random.default_rng(0))
    steppers = {"ordinary": build_model(graph).step, "huge": _with_advice(build_model(graph).step)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steppers}
    for step in range(steps):
        names = list(steppers) if step % 2 == 0 else list(reversed(steppers))
        for name in names:
            times[name].append(_cpu(steppers[name]))
    out = {}
    for name, spent in times.items():
        out[f"{name}_user"] = float(np.mean([u for u, _ in spent]))
        out[f"{name}_system"] = float(np.mean([s for _, s in spent]))
    total = {name: out[f"{name}_user"] + out[f"{name}_system"] for name in steppers}
    out["ratio"] = total["ordinary"] / total["huge"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    setter = _advice_setter()
    if setter is None:
        sys.exit("this NumPy has no huge-page switch: nothing to compare")
    setter(True)  # NumPy's default on Linux
    print(f"machine: {machine()}")
    print(f"loading the compiled retrieval kernels (not timed): {load_kernels():.2f} s")
    for agents in args.agents:
        r = compare(agents, args.steps)
        print(
            f"{agents} agents, CPU s per step over {args.steps} steps (user + system): "
            f"ordinary pages {r['ordinary_user']:.4f} + {r['ordinary_system']:.4f}, "
            f"huge-page advice {r['huge_user']:.4f} + {r['huge_system']:.4f}; "
            f"ratio ordinary / huge {r['ratio']:.2f}"
        )
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
