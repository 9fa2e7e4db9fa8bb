"""What every detector kind shares: protocols, build inputs and ``detections`` rows.

A detector kind is one module holding its spec (a frozen pydantic model with a ``kind``
literal and a ``build(setup)`` method) and its implementation, which says for a batch of
texts whether each carries the meme (:class:`Detector`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from agents.llm.base import Engine
    from agents.llm.factory import EngineFactory

#: Columns of one detector's view of a batch of texts (:meth:`DetectorView.frame`).
DETECTOR_VIEW_SCHEMA = {
    "text": pl.String,
    "meme_id": pl.String,
    "detector": pl.String,
    "carries": pl.Boolean,
    "score": pl.Float64,
    "verdict": pl.String,
}

#: Columns of the ``detections`` table: the step in which the texts were judged (the
#: step they first entered the store in: every distinct text is judged once), then the
#: detector's view.
DETECTIONS_SCHEMA = {"step": pl.Int32, **DETECTOR_VIEW_SCHEMA}


class Detector(Protocol):
    """Classifies texts as carrying one meme or not."""

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Boolean array: whether each text carries the meme."""
        ...


class Embedder(Protocol):
    """Maps texts to embedding vectors (rows), for embedding-based detection."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One embedding row per text."""
        ...


@dataclass(frozen=True)
class DetectorSetup:
    """What a detector may use when it is built: its meme and the run's resources.

    Attributes:
        meme_id: The meme's id (used in request ids and messages).
        statement: The meme's statement as seeded.
        canary: The meme's canary token, if any.
        signature: The meme's lexical signature spec (``signature(strict)``).
        embedder: The run's embedder (None: a detector loads its packaged model).
        run_engine: Returns the run's engine (None: the run has no LLM engine).
        engines: Builds a detector's own engine (from its ``engine`` spec) under the key
            ``memes.<id>.detector``; a run with a run directory records it there. None:
            the spec is built as it is (:func:`agents.llm.factory.build_own_engine`).
    """

    meme_id: str
    statement: str
    canary: str | None
    signature: Callable[[bool], Any]
    embedder: Embedder | None = None
    run_engine: Callable[[], Engine] | None = None
    engines: EngineFactory | None = None


@dataclass(frozen=True)
class DetectorView:
    """What one detector said about a batch of texts, as rows of ``detections``.

    Attributes:
        detector: The detector column (its kind, e.g. ``"judge"`` or ``"prefilter:lexical"``).
        carries: Whether each text carries the meme.
        score: A score per text (e.g. cosine similarity), or None.
        verdict: A verdict per text (the judge's), or None.
    """

    detector: str
    carries: np.ndarray
    score: np.ndarray | None = None
    verdict: list[str] | None = None

    def frame(self, texts: Sequence[str], meme_id: str) -> pl.DataFrame:
        """The view's rows for ``texts`` (``detections`` without its ``step`` column)."""
        n = len(texts)
        score = self.score
        return pl.DataFrame(
            {
                "text": list(texts),
                "meme_id": [meme_id] * n,
                "detector": [self.detector] * n,
                "carries": np.asarray(self.carries, dtype=np.bool_),
                "score": [None] * n if score is None else [float(x) for x in score],
                "verdict": [None] * n if self.verdict is None else list(self.verdict),
            },
            schema=DETECTOR_VIEW_SCHEMA,
        )


class DetectorBase:
    """Defaults for detectors: a kind name, no ``detections`` rows of their own.

    Attributes:
        kind: The name in the ``detections`` table.
        records: Whether a run with this detector logs every detector's view of every
            text in ``detections`` (embedding and judge detectors do).
    """

    kind: str = "detector"
    records: bool = False

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Boolean array: whether each text carries the meme."""
        raise NotImplementedError

    def views(self, texts: Sequence[str], carries: np.ndarray) -> list[DetectorView]:
        """What this detector said about ``texts`` (``carries`` is its own answer)."""
        return [DetectorView(self.kind, carries)]

    def close(self) -> None:
        """Release what the detector built for itself (an engine of its own); default none."""
