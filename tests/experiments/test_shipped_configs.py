"""Every shipped config validates (LLM ones without loading a model) and runs for one step."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.catalog import list_configs
from experiments.config import load_config
from experiments.resume import resume_run
from experiments.runner import run_experiment
from experiments.sweep import run_sweep
from experiments.validation import validate

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {c.name: c for c in list_configs()}

# Extra overrides that shrink a sweep for a one-step smoke run.
SHRINK = {
    "large_contagion_sweep": [
        'sweep.grid."policy.beta"=[0.05]',
        "sweep.grid.graph.values.0.n=300",
        "sweep.grid.graph.values.1.n=300",
        "sweep.grid.graph.values.2.n=300",
        "sweep.grid.graph.values.2.p=0.02",
    ],
}


def _policy_kind(name: str) -> str:
    return validate(name).configs[0].policy.kind


def test_the_suite_is_shipped():
    assert {
        "demo",
        "topology_sweep",
        "race",
        "global_vs_neighbourhood",
        "large_contagion_sweep",
    } <= set(SHIPPED)
    assert SHIPPED["topology_sweep"].kind == "sweep" and SHIPPED["race"].kind == "run"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_config_validates(name):
    validated = validate(name)
    assert validated.configs
    assert validated.kind == SHIPPED[name].kind
    assert SHIPPED[name].doc, f"{name}: no first-line comment"
    # `memespread list` shows the first comment line only: it must be a whole sentence.
    assert SHIPPED[name].doc.endswith((".", "?", ")")), SHIPPED[name].doc


def test_readme_describes_every_shipped_config():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Shipped configs", 1)[1].split("\n\n", 2)[1]
    assert sorted(n for n in SHIPPED if f"`{n}`" not in table) == []


def test_the_demo_run_time_is_stated_alike_in_list_and_readme():
    """`memespread list` (the config's first comment) and the README give one figure."""
    doc = SHIPPED["demo"].doc
    stated = re.findall(r"(\S+ minutes? on 2 cores)", doc)
    assert stated == ["1-2 minutes on 2 cores"]
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("`make demo` writes", 1)[1].split("\n\n", 1)[0]
    assert "takes 1-2 minutes on 2 cores" in " ".join(quick_start.split())
    # No other figure for the demo's run anywhere in the README.
    assert re.findall(r"demo`?'s run (?:went|takes)[^.]*", readme) == []


def test_validation_imports_no_inference_library():
    """Validating every shipped config (LLM ones too) in a fresh process loads no model."""
    code = (
        "import sys\n"
        "from experiments import list_configs, validate\n"
        "for config in list_configs():\n"
        "    validate(config.name)\n"
        "heavy = {'llama_cpp', 'vllm', 'torch', 'transformers', 'httpx', 'matplotlib'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_topology_sweep_switches_to_llm_with_set():
    """The documented --set switch to LLM agents validates without loading a model."""
    validated = validate(
        "topology_sweep",
        ['policy={ kind = "llm" }', "probe_every=1", "steps=10", "sweep.replicates=1"],
    )
    assert len(validated.configs) == 5
    assert {c.policy.kind for c in validated.configs} == {"llm"}
    assert validated.warnings == ()


@pytest.mark.parametrize(
    "name",
    sorted(n for n, c in SHIPPED.items() if c.kind == "run" and _policy_kind(n) == "contagion"),
)
def test_contagion_run_config_runs_one_step(name, tmp_path):
    config = validate(name, ["steps=1"]).configs[0]
    result = run_experiment(config, tmp_path / name, progress=False)
    assert result.manifest["status"] == "complete"
    assert result.steps["step"].unique().to_list() == [0]
    assert result.steps.height == len(config.memes)


@pytest.mark.parametrize("name", sorted(n for n, c in SHIPPED.items() if c.kind == "sweep"))
def test_sweep_config_runs_one_step(name, tmp_path):
    validated = validate(name, ["steps=1", "sweep.replicates=1", *SHRINK.get(name, [])])
    sweep = validated.sweep
    assert {c.policy.kind for c in validated.configs} == {"contagion"}
    result = run_sweep(sweep, tmp_path / name, progress=False)
    assert result.failed == {}
    assert result.index.height == len(sweep.runs) >= 2
    assert set(result.index["status"]) == {"complete"}
    assert result.scan().collect()["step"].unique().to_list() == [0]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama_cpp")
@pytest.mark.parametrize(
    "name",
    sorted(n for n, c in SHIPPED.items() if c.kind == "run" and _policy_kind(n) != "contagion"),
)
def test_llm_run_config_runs_one_step_and_replays_on_resume(name, tmp_path, drop_wall_clock):
    # A small one-step run: 6 agents, or just enough for the config's seeded agents.
    seeded = [a for m in load_config(name).memes for a in getattr(m.placement, "agents", [])]
    n_small = max([6, *(a + 1 for a in seeded)])
    config = validate(name, ["steps=1", f"graph.n={n_small}"]).configs[0]
    result = run_experiment(config, tmp_path / name, progress=False)
    assert result.manifest["status"] == "complete"
    assert result.manifest["policy"]["engine"] == "llamacpp"
    n = result.manifest["n_agents"]
    assert int(result.steps["requests"][0]) >= n
    cache = (tmp_path / name / "completions.jsonl").read_text()
    assert len(cache.splitlines()) >= 1 + n  # header + one record per request

    # A run killed before its first checkpoint, with its completions cache: resuming
    # replays every completion from the cache and reproduces the tables exactly.
    again = tmp_path / "again"
    again.mkdir()
    (again / "completions.jsonl").write_text(cache)
    manifest = dict(result.manifest, status="running", steps_completed=0)
    (again / "manifest.json").write_text(json.dumps(manifest))
    resumed = resume_run(again, progress=False)
    assert (again / "completions.jsonl").read_text() == cache  # nothing new generated
    a, b = drop_wall_clock(result.tables), drop_wall_clock(resumed.tables)
    assert a.keys() == b.keys() and "generations" in a
    for table in a:
        assert a[table].equals(b[table]), table
