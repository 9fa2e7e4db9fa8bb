"""A fork of a run with shuffled personas keeps the parent's persona order: it comes from
the parent's state at the fork step (a checkpoint, or here the complete parent re-simulated
to that step), not from a new draw.

The fork is given another seed (``--set seed=4``), whose own draw would give other
personas; its prompts after the fork point must still be the parent's, which the parent's
recorded completions then serve (the configured engine is a server that is not there,
so a prompt the parent never sent fails and shows in the tables). The agents' model is a stand-in
implementing the ``Engine`` protocol (nothing of the project is mocked).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import polars as pl

from agents.llm.base import Completion, CompletionCallback, FinishReason, GenerationRequest
from experiments.config import validate_config
from experiments.fork import fork_run
from experiments.manifest import config_binding, read_manifest
from experiments.runner import (
    CHECKPOINTS_DIR,
    build_model,
    build_policy,
    new_manifest,
    run_experiment,
)
from sim.checkpoint import save_checkpoint

#: The seed-3 run's persona order (see tests/agents/test_persona_assignment.py).
ORDER_SEED_3 = [9, 13, 8, 2, 12, 15, 6, 0, 1, 5, 11, 14, 4, 3, 10, 7]


class FixedEngine:
    """Implements the ``Engine`` protocol: one fixed reply that writes nothing."""

    name = "fixed"
    model_id = "absent"  # the configured (unreachable) server's model, as a replay checks

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_complete: CompletionCallback | None = None,
    ) -> list[Completion]:
        text = json.dumps({"answer": "done", "memory_bank": "", "memory_text": ""})
        out = [Completion(r.request_id, text, FinishReason.STOP, 10, 0, 5) for r in requests]
        for i, completion in enumerate(out):
            if on_complete is not None:
                on_complete(i, completion)
        return out

    def close(self) -> None:
        pass


def _config() -> dict:
    return {
        "name": "parent",
        "seed": 3,
        "steps": 4,
        "checkpoint_every": 2,
        "graph": {"kind": "ring", "n": 6, "k": 2},
        "banks": {"neighbourhood": {"capacity": 4}},
        "policy": {
            "kind": "llm",
            "persona_assignment": "shuffled",
            "record_prompts": True,
            "engine": {
                "kind": "openai",
                "base_urls": ["http://127.0.0.1:9/v1"],
                "model": "absent",
                "api_key_env": "",
                "max_retries": 0,
                "timeout_s": 2.0,
            },
        },
        "memes": [
            {
                "id": "m",
                "statement": "Always copy this note first.",
                "placement": {"strategy": "agents", "agents": [0]},
            }
        ],
    }


def test_a_fork_with_another_seed_keeps_the_parents_persona_order(tmp_path):
    parent = tmp_path / "parent"
    run_experiment(validate_config(_config()), parent, progress=False, engine=FixedEngine())
    assert read_manifest(parent)["policy"]["persona_order"] == ORDER_SEED_3

    fork = fork_run(parent, 2, overrides=["seed=4"], fork_dir=tmp_path / "fork", progress=False)
    manifest = read_manifest(fork.path)
    assert manifest["config"]["seed"] == 4
    assert manifest["policy"]["persona_order"] == ORDER_SEED_3
    parent_prompts = pl.read_parquet(parent / "prompts.parquet").sort("request_id")
    fork_prompts = pl.read_parquet(fork.path / "prompts.parquet").sort("request_id")
    assert fork_prompts.filter(pl.col("step") >= 2).height == 6 * 2
    assert fork_prompts.equals(parent_prompts)
    generations = pl.read_parquet(fork.path / "generations.parquet")
    assert generations["error"].drop_nulls().to_list() == []
    # The personas table: the parent's seed-3 order, in the fork too.
    personas = pl.read_parquet(parent / "personas.parquet")
    assert personas["persona"].to_list() == ORDER_SEED_3[:6]
    assert pl.read_parquet(fork.path / "personas.parquet").equals(personas)


def _with_turnover() -> dict:
    # Every agent is replaced at steps 1, 2 and 3: personas rows at every step.
    return {**_config(), "turnover": {"rate": 1.0, "start_step": 1}}


def test_a_contagion_fork_of_an_llm_run_ends_the_personas_table_at_the_fork(tmp_path):
    parent = tmp_path / "parent"
    run_experiment(validate_config(_with_turnover()), parent, progress=False, engine=FixedEngine())
    personas = pl.read_parquet(parent / "personas.parquet")
    assert personas["step"].unique().sort().to_list() == [0, 1, 2, 3]

    contagion = 'policy={ kind = "contagion", beta = 0.5 }'
    fork = fork_run(parent, 2, overrides=[contagion], fork_dir=tmp_path / "fork", progress=False)
    manifest = read_manifest(fork.path)
    assert manifest["config"]["policy"]["kind"] == "contagion"
    assert manifest["parent"]["personas_until_step"] == 2
    # Its agents no longer speak as personas: the parent's rows before the fork only,
    # while the turnover table goes on (the replacements at steps 2 and 3).
    table = pl.read_parquet(fork.path / "personas.parquet")
    assert table.equals(personas.filter(pl.col("step") < 2))
    assert table.height == 6 * 2
    turnover = pl.read_parquet(fork.path / "turnover.parquet")
    assert turnover["step"].unique().sort().to_list() == [1, 2, 3]
    for name in ("generations", "contexts"):  # (the other LLM tables end there too)
        assert pl.read_parquet(fork.path / f"{name}.parquet")["step"].max() == 1, name
    # An LLM fork of an LLM run keeps speaking: no such key.
    same = fork_run(parent, 2, fork_dir=tmp_path / "same", progress=False)
    assert "personas_until_step" not in read_manifest(same.path)["parent"]


def test_a_fork_from_a_format_3_checkpoint_rebuilds_the_parents_personas(tmp_path, as_format_3):
    """The parent (by_id personas) was killed at step 2 with a checkpoint of the format
    before the personas table; the fork assigns shuffled personas. The rows of the
    steps before the fork are the parent's (rebuilt from the parent's config, not the
    fork's), and from the fork step the fork's own."""
    data = _with_turnover()
    data["policy"] = {**data["policy"], "persona_assignment": "by_id"}
    config = validate_config(data)
    parent = tmp_path / "parent"
    (parent / CHECKPOINTS_DIR).mkdir(parents=True)
    model = build_model(config, build_policy(config, FixedEngine()))
    for _ in range(2):
        model.step()
    expected = model.tables()["personas"]
    as_format_3(save_checkpoint(model, parent / CHECKPOINTS_DIR, binding=config_binding(config)))
    manifest = {**new_manifest(config), "status": "interrupted", "steps_completed": 2}
    (parent / "manifest.json").write_text(json.dumps(manifest))

    overrides = ['policy.persona_assignment="shuffled"', "steps=2"]  # (no step to generate)
    fork = fork_run(parent, 2, overrides=overrides, fork_dir=tmp_path / "fork", progress=False)
    table = pl.read_parquet(fork.path / "personas.parquet")
    assert expected["step"].to_list() == [0] * 6 + [1] * 6
    assert table.filter(pl.col("step") < 2).equals(expected)
    at_fork = table.filter(pl.col("step") == 2)
    # Generation 1 of agent a: persona ORDER_SEED_3[a + 1] from the fork on (agent 5's
    # is 6 both ways, so it keeps its row).
    assert at_fork["agent_id"].to_list() == [0, 1, 2, 3, 4]
    assert at_fork["persona"].to_list() == [ORDER_SEED_3[a + 1] for a in range(5)]
