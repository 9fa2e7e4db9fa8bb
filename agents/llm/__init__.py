"""Batch-shaped inference engines: the interface, the specs and the factory.

Engine implementations live in their own modules (``llamacpp``, ``openai_compat``,
``vllm_engine``, ``replay``) and import their libraries lazily; importing this package
imports none of them.
"""

from agents.llm.base import (
    ChatMessage,
    Completion,
    CompletionCallback,
    Engine,
    EngineError,
    EngineSpec,
    FinishReason,
    GenerationRequest,
    LlamaCppSpec,
    OpenAISpec,
    ReplaySpec,
    Role,
    SamplingParams,
    VLLMSpec,
)
from agents.llm.factory import build_engine, parse_engine_spec

__all__ = [
    "ChatMessage",
    "Completion",
    "CompletionCallback",
    "Engine",
    "EngineError",
    "EngineSpec",
    "FinishReason",
    "GenerationRequest",
    "LlamaCppSpec",
    "OpenAISpec",
    "ReplaySpec",
    "Role",
    "SamplingParams",
    "VLLMSpec",
    "build_engine",
    "parse_engine_spec",
]
