"""Build an engine from its spec; each engine module (and its library) is imported lazily."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from agents.llm.base import (
    Engine,
    EngineError,
    EngineSpec,
    LlamaCppSpec,
    OpenAISpec,
    ReplaySpec,
    VLLMSpec,
)


def parse_engine_spec(data: Any) -> EngineSpec:
    """Validate a mapping (e.g. a config table) into the engine spec its ``kind`` names.

    Raises:
        pydantic.ValidationError: If ``kind`` is unknown or a field is invalid.
    """
    return TypeAdapter(EngineSpec).validate_python(data)


def build_engine(spec: EngineSpec) -> Engine:
    """Return a ready engine for ``spec``.

    Only the chosen engine's module is imported, so a CPU install without vLLM can build
    the llama.cpp, OpenAI and replay engines. A replay spec builds its inner engine too
    (closing the replay engine closes it).

    Raises:
        EngineError: If the spec is not an engine spec or the engine cannot start.
    """
    if isinstance(spec, LlamaCppSpec):
        from agents.llm.llamacpp import LlamaCppEngine

        return LlamaCppEngine(spec)
    if isinstance(spec, OpenAISpec):
        from agents.llm.openai_compat import OpenAIEngine

        return OpenAIEngine(spec)
    if isinstance(spec, VLLMSpec):
        from agents.llm.vllm_engine import VLLMEngine

        return VLLMEngine(spec)
    if isinstance(spec, ReplaySpec):
        from agents.llm.replay import ReplayEngine

        inner = build_engine(spec.inner) if spec.inner is not None else None
        return ReplayEngine(inner, spec.path, spec.mode)
    raise EngineError(
        f"build_engine got {type(spec).__name__}; expected one of LlamaCppSpec, OpenAISpec, "
        "VLLMSpec, ReplaySpec"
    )
