"""Engines as a family: one module per kind (spec + engine), the registry in agents.llm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import agents.llm
from agents.llm import (
    ENGINE_SPECS,
    EngineError,
    EngineSpecBase,
    LlamaCppSpec,
    ReplaySpec,
    VLLMSpec,
    build_engine,
    engine_kinds,
    parse_engine_spec,
)
from agents.llm.replay import ReplayEngine

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_specs_imports_no_inference_library():
    code = (
        "import sys, agents.llm, agents.llm.llamacpp, agents.llm.openai_compat, "
        "agents.llm.vllm_engine, agents.llm.replay, experiments.schema\n"
        "print(sorted(m for m in ('vllm', 'llama_cpp', 'httpx', 'torch') if m in sys.modules))"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_registry_lists_each_kind_once_with_its_module():
    assert engine_kinds() == ["llamacpp", "openai", "vllm", "replay"]
    modules = [spec.__module__ for spec in ENGINE_SPECS]
    assert modules == [
        "agents.llm.llamacpp",
        "agents.llm.openai_compat",
        "agents.llm.vllm_engine",
        "agents.llm.replay",
    ]
    assert all(issubclass(spec, EngineSpecBase) for spec in ENGINE_SPECS)
    assert all("build" in vars(spec) for spec in ENGINE_SPECS)


def test_replay_wraps_any_registered_kind_but_itself():
    spec = parse_engine_spec(
        {"kind": "replay", "path": "c.jsonl", "mode": "auto", "inner": {"kind": "llamacpp"}}
    )
    assert isinstance(spec, ReplaySpec) and spec.inner == LlamaCppSpec()
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_engine_spec(
            {
                "kind": "replay",
                "path": "c.jsonl",
                "mode": "auto",
                "inner": {"kind": "replay", "path": "d.jsonl", "mode": "replay"},
            }
        )


def test_build_engine_is_the_specs_build(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"type": "header", "format": "memespread-replay/1", "engine": "toy", "model_id": "m"}\n'
    )
    spec = ReplaySpec(path=str(path), mode="replay")
    for engine in (build_engine(spec), spec.build()):
        assert isinstance(engine, ReplayEngine)
        assert (engine.name, engine.model_id, len(engine)) == ("toy", "m", 0)
        engine.close()
    with pytest.raises(EngineError, match=r"build_engine got dict; expected an engine spec"):
        build_engine({"kind": "replay"})  # type: ignore[arg-type]


def test_specs_say_why_they_cannot_be_built_and_which_files_are_wrong(tmp_path):
    missing = str(tmp_path / "none.gguf")
    assert LlamaCppSpec(model_path=missing).unavailable() == (
        f"model_path = {missing!r} is not a file"
    )
    not_gguf = tmp_path / "bad.gguf"
    not_gguf.write_bytes(b"\x00\x01junk")
    assert LlamaCppSpec(model_path=str(not_gguf)).resource_errors("policy.engine") == [
        f"policy.engine.model_path = {str(not_gguf)!r}: is not a GGUF model file (no GGUF header)"
    ]
    cache = str(tmp_path / "none.jsonl")
    replay = ReplaySpec(path=cache, mode="replay", inner=LlamaCppSpec(model_path=missing))
    assert replay.unavailable() == f"replay file {cache!r} does not exist"
    assert replay.resource_errors("k") == [
        f"k.path = {cache!r}: no such file (mode 'replay' reads it)",
        f"k.inner.model_path = {missing!r}: no such file",
    ]
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    assert VLLMSpec(model=str(model_dir)).resource_errors("e") == []


def test_the_package_exports_the_registry():
    assert {"EngineSpec", "ENGINE_SPECS", "build_engine", "parse_engine_spec"} <= set(
        agents.llm.__all__
    )
