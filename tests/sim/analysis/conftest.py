"""Fixtures of the analysis tests: real contagion runs and a sweep, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_tables import contagion_config

from experiments.runner import run_experiment
from sim.analysis.loading import Run, load_run


@pytest.fixture(scope="session")
def contagion_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run_dir = tmp_path_factory.mktemp("analysis") / "contagion"
    run_experiment(contagion_config(), run_dir, progress=False)
    return load_run(run_dir)


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 topologies x 3 seeds contagion sweep built with experiments.sweep."""
    from experiments.sweep import expand_sweep, run_sweep

    base = contagion_config().model_dump(mode="json", by_alias=True)
    base.pop("name")
    document = {
        **base,
        "steps": 15,
        "sweep": {
            "name": "topologies",
            "seeds": [0, 1, 2],
            "grid": {
                "graph": {
                    "name": "topology",
                    "labels": ["ring", "ws"],
                    "values": [
                        {"kind": "ring", "n": 120, "k": 4},
                        {"kind": "watts_strogatz", "n": 120, "k": 4, "p": 0.2},
                    ],
                },
                "policy.beta": [0.1, 0.3],
            },
        },
    }
    out = tmp_path_factory.mktemp("sweeps") / "topologies"
    result = run_sweep(expand_sweep(document), out, progress=False)
    assert not result.failed, result.failed
    return out
