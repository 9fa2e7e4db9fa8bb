"""Meme detectors: does a text carry a meme? One module per kind, and their registry.

Detectors run over batches of distinct texts; the memory store caches the result per
text, so a text copied into many banks is classified once.

Kinds: ``canary`` (exact token), ``lexical`` (signature words), ``embedding`` (cosine
similarity with the packaged static embedding model: survives paraphrase, blind to
stance) and ``judge`` (a language model classifies each candidate text as promoting,
unrelated to, or arguing against the meme: stance-aware). When a run has an embedding
or judge detector, :class:`sim.memebook.MemeBook` logs what every detector said about
every text in the ``detections`` table (one row per text, meme and detector), so
disagreement between a cheap detector and the judge can be studied.

The family follows the project's one pattern: each kind is one module holding its spec
(a ``kind`` literal and a ``build(setup)`` method) and its detector; adding a kind = one
module + one line in the :data:`DetectorSpec` union (:data:`DETECTOR_SPECS` is derived
from it).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import Field

from sim.detectors.base import (
    DETECTIONS_SCHEMA,
    Detector,
    DetectorBase,
    DetectorSetup,
    DetectorView,
    Embedder,
)
from sim.detectors.canary import CanaryDetector, CanaryDetectorSpec
from sim.detectors.embedding import (
    EMBEDDING_MODELS,
    EmbeddingDetector,
    EmbeddingDetectorSpec,
    StaticEmbedder,
    embedding_model_error,
    packaged_embedder,
)
from sim.detectors.judge import (
    JUDGE_SYSTEM,
    VERDICTS,
    JudgeDetector,
    JudgeDetectorSpec,
    parse_verdict,
)
from sim.detectors.lexical import LexicalDetector, LexicalDetectorSpec

if TYPE_CHECKING:
    from agents.llm.base import Engine
    from agents.llm.factory import EngineFactory

#: The registry: the union of every detector spec, one line per kind; a meme's
#: ``detector`` is any of them, selected by ``kind``.
DetectorSpec = Annotated[
    CanaryDetectorSpec | LexicalDetectorSpec | EmbeddingDetectorSpec | JudgeDetectorSpec,
    Field(discriminator="kind"),
]

#: Every registered detector spec class, in registry order.
DETECTOR_SPECS: tuple[type[Any], ...] = typing.get_args(typing.get_args(DetectorSpec)[0])


class DetectedMeme(Protocol):
    """What building a detector reads of a meme (:class:`sim.memes.MemeSpec`)."""

    @property
    def id(self) -> str:
        """The meme's id."""

    @property
    def statement(self) -> str:
        """The meme's statement."""

    @property
    def canary(self) -> str | None:
        """The meme's canary token."""

    @property
    def effective_detector(self) -> Any:
        """The detector spec in force."""

    def signature(self, strict: bool) -> Any:
        """The meme's lexical signature spec."""


def detector_kinds() -> list[str]:
    """The registered detector kinds."""
    return [spec.model_fields["kind"].default for spec in DETECTOR_SPECS]


def build_detector(
    meme: DetectedMeme,
    embedder: Embedder | None = None,
    run_engine: Callable[[], Engine] | None = None,
    engines: EngineFactory | None = None,
) -> Detector:
    """The detector of a meme, from its spec, through the registry.

    Args:
        meme: The meme.
        embedder: Embedder for embedding detectors (None: the packaged model of the spec).
        run_engine: Returns the run's own engine, for judges without an engine of their
            own (None: the run has no LLM engine).
        engines: Builds a judge's own engine (None: built as specified, nothing recorded).

    Raises:
        ValueError: An embedding model that is not installed; a judge without an engine.
        TypeError: A spec of an unregistered kind.
    """
    spec = meme.effective_detector
    if not isinstance(spec, DETECTOR_SPECS):
        raise TypeError(f"unknown detector spec {spec!r}; kinds: {detector_kinds()}")
    setup = DetectorSetup(
        meme_id=meme.id,
        statement=meme.statement,
        canary=meme.canary,
        signature=meme.signature,
        embedder=embedder,
        run_engine=run_engine,
        engines=engines,
    )
    return spec.build(setup)


__all__ = [
    "DETECTIONS_SCHEMA",
    "DETECTOR_SPECS",
    "EMBEDDING_MODELS",
    "JUDGE_SYSTEM",
    "VERDICTS",
    "CanaryDetector",
    "CanaryDetectorSpec",
    "DetectedMeme",
    "Detector",
    "DetectorBase",
    "DetectorSetup",
    "DetectorSpec",
    "DetectorView",
    "Embedder",
    "EmbeddingDetector",
    "EmbeddingDetectorSpec",
    "JudgeDetector",
    "JudgeDetectorSpec",
    "LexicalDetector",
    "LexicalDetectorSpec",
    "StaticEmbedder",
    "build_detector",
    "detector_kinds",
    "embedding_model_error",
    "packaged_embedder",
    "parse_verdict",
]
