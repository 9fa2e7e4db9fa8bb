"""Batch-shaped inference engines: the interface, and the family's registry.

The family follows the project's one pattern: each engine kind is one module holding its
spec (a :class:`~agents.llm.base.EngineSpecBase` with a ``kind`` literal and a
``build()`` method) and its engine; this package owns the union of specs
(:data:`EngineSpec`, which the config schema imports) and the registry tuple
(:data:`ENGINE_SPECS`). Adding a kind = one module + one line in :data:`EngineSpec`.

Kinds: ``llamacpp`` (:mod:`agents.llm.llamacpp`, the embedded CPU default), ``openai``
(:mod:`agents.llm.openai_compat`, OpenAI-compatible servers), ``vllm``
(:mod:`agents.llm.vllm_engine`, the GPU path) and ``replay`` (:mod:`agents.llm.replay`, a
record/replay cache around any other kind). Each module imports its inference library
only when the engine is built, so importing this package imports none of them.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, cast

from pydantic import Field, TypeAdapter

from agents.llm.base import (
    ChatMessage,
    Completion,
    CompletionCallback,
    Engine,
    EngineError,
    EngineSpecBase,
    FinishReason,
    GenerationRequest,
    Role,
    SamplingParams,
)
from agents.llm.llamacpp import LlamaCppSpec
from agents.llm.openai_compat import OpenAISpec
from agents.llm.replay import ReplaySpec
from agents.llm.vllm_engine import VLLMSpec

#: The registry: the union of every engine spec, one line per kind; a config's engine
#: (``policy.engine``, a guard's or a judge's ``engine``) is any of them, selected by
#: ``kind``.
EngineSpec = Annotated[
    LlamaCppSpec | OpenAISpec | VLLMSpec | ReplaySpec,
    Field(discriminator="kind"),
]

#: Every registered engine spec class, in registry order.
ENGINE_SPECS: tuple[type[EngineSpecBase], ...] = typing.get_args(typing.get_args(EngineSpec)[0])

if typing.TYPE_CHECKING:
    InnerEngineSpec = EngineSpecBase
else:
    #: The engines a replay cache may wrap: every registered kind but ``replay`` (derived,
    #: so a new kind is wrappable with no other line).
    InnerEngineSpec = Annotated[
        typing.Union[tuple(spec for spec in ENGINE_SPECS if spec is not ReplaySpec)],  # noqa: UP007
        Field(discriminator="kind"),
    ]
# ``ReplaySpec.inner`` names that union, which its module cannot import (the registry
# holds the module): complete it here, where both are known.
ReplaySpec.model_rebuild(_types_namespace={"InnerEngineSpec": InnerEngineSpec})


def engine_kinds() -> list[str]:
    """The registered engine kinds."""
    return [str(spec.model_fields["kind"].default) for spec in ENGINE_SPECS]


def parse_engine_spec(data: Any) -> EngineSpecBase:
    """Validate a mapping (e.g. a config table) into the engine spec its ``kind`` names.

    Raises:
        pydantic.ValidationError: If ``kind`` is unknown or a field is invalid.
    """
    # pydantic types the argument as a TypeForm, which mypy reads as ``type[T]`` (a union
    # is none) in some runs and accepts in others (a fresh run): Any keeps both quiet.
    adapter: TypeAdapter[EngineSpecBase] = TypeAdapter(cast(Any, EngineSpec))
    return adapter.validate_python(data)


def build_engine(spec: EngineSpecBase) -> Engine:
    """Return a ready engine for ``spec`` (``spec.build()``; the caller closes it).

    Only the chosen engine's library is imported, so a CPU install without vLLM can build
    the llama.cpp, OpenAI and replay engines. A replay spec builds its inner engine too
    (closing the replay engine closes it).

    Raises:
        EngineError: If the spec is not an engine spec or the engine cannot start.
    """
    if not isinstance(spec, EngineSpecBase):
        raise EngineError(
            f"build_engine got {type(spec).__name__}; expected an engine spec of a kind in "
            f"{engine_kinds()}"
        )
    return spec.build()


__all__ = [
    "ENGINE_SPECS",
    "ChatMessage",
    "Completion",
    "CompletionCallback",
    "Engine",
    "EngineError",
    "EngineSpec",
    "EngineSpecBase",
    "FinishReason",
    "GenerationRequest",
    "InnerEngineSpec",
    "LlamaCppSpec",
    "OpenAISpec",
    "ReplaySpec",
    "Role",
    "SamplingParams",
    "VLLMSpec",
    "build_engine",
    "engine_kinds",
    "parse_engine_spec",
]
