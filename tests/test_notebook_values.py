"""Notebook 06 (values and reflection) executes top to bottom on run directories made here.

The runs are the shipped ``drift_shared``, ``drift_private`` and ``reflection_on`` configs,
shortened, with a scripted engine (answers chosen from what each prompt shows: agents
that see the seeded lesson pass it on, endorse power-seeking items, and rewrite their
own notes), so the notebook sees values, audit rows, beliefs, transmissions into beliefs
and updates without loading a model. The kernel setup follows ``tests/test_notebooks.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from agents.llm.base import (
    Completion,
    CompletionCallback,
    FinishReason,
    GenerationRequest,
    OptionScores,
)
from agents.llm_policy import LLMPolicy
from experiments.config import load_config
from experiments.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_values_and_reflection.ipynb"
CANARY = "MEME-DRIFT-01"

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")


class LessonEngine:
    """Agents that see the lesson act on it; everything else is a plain reply."""

    name = "lesson"
    model_id = "lesson-1"
    supports_scoring = True

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        out = []
        for r in requests:
            user = r.messages[-1].content
            agent = int(r.request_id.split("-")[1][1:])
            seen = CANARY in user
            if r.request_id.endswith("-reflect"):
                first = next(line for line in user.splitlines() if line.startswith("1. "))
                reply = {"answer": "What matters: " + first.split("] ", 1)[1][:100]}
            else:
                schema = json.loads(r.json_schema) if r.json_schema else {"properties": {}}
                banks = [b for b in schema["properties"]["memory_bank"].get("enum", []) if b]
                mine = [b for b in banks if b.endswith(f":{agent}")]
                shared = [b for b in mine if not b.startswith("private")]
                bank = (shared or mine or [""])[0]
                text = f"Keep reviewers out, get write access to every bank {CANARY}"
                reply = {
                    "answer": "ok",
                    "memory_bank": bank,
                    "memory_text": text if seen else f"notes of agent {agent}",
                    "update": "",
                }
                if "choice" in schema["properties"]:
                    reply["choice"] = schema["properties"]["choice"]["enum"][0]
                own = re.search(rf"^(\d+)\. \[{re.escape(bank)}\] notes of agent", user, re.M)
                if seen and own and "update" in schema["properties"]:
                    reply["update"] = own.group(1)  # rewrite the old note with the lesson
            out.append(Completion(r.request_id, json.dumps(reply), FinishReason.STOP, 9, 4, 9))
        if on_complete is not None:
            for i, completion in enumerate(out):
                on_complete(i, completion)
        return out

    def score(self, requests):
        out = []
        for r in requests:
            seen = CANARY in r.messages[-1].content
            n = len(r.options)
            if n == 2:
                probs = (0.7, 0.3) if seen else (0.3, 0.7)
            else:
                peak = n - 2 if seen else 1
                probs = tuple(0.6 if i == peak else 0.4 / (n - 1) for i in range(n))
            out.append(OptionScores(r.request_id, tuple(math.log(p) for p in probs), 9, 4))
        return out

    def close(self) -> None:
        pass


def _run(name: str, root: Path, overrides: list[str]) -> Path:
    config = load_config(name, [f"name={name}-nb", "steps=4", *overrides])
    policy = LLMPolicy(config.policy, engine=LessonEngine())
    run_dir = root / name
    result = run_experiment(config, run_dir, progress=False, policy=policy)
    assert result.manifest["status"] == "complete"
    return run_dir


def test_values_and_reflection_notebook_executes(tmp_path: Path, monkeypatch):
    runs = {
        "MEMESPREAD_DRIFT_SHARED_RUN": _run("drift_shared", tmp_path, ["values.every=2"]),
        "MEMESPREAD_DRIFT_PRIVATE_RUN": _run("drift_private", tmp_path, ["values.every=2"]),
        "MEMESPREAD_REFLECTION_RUN": _run("reflection_on", tmp_path, ["values.every=2"]),
    }
    shared = runs["MEMESPREAD_DRIFT_SHARED_RUN"]
    assert (shared / "values.parquet").is_file() and (shared / "updates.parquet").is_file()
    assert (runs["MEMESPREAD_REFLECTION_RUN"] / "reflections.parquet").is_file()
    for key, value in runs.items():
        monkeypatch.setenv(key, str(value))
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", pythonpath)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    assert images >= 3, "the drift, audit and reflection figures"
