"""The ``embedding`` detector: cosine similarity with the statement's embedding.

The packaged static model survives paraphrase but is blind to stance.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.detectors.base import DetectorBase, DetectorSetup, DetectorView, Embedder

#: The packaged embedding models by name: (importable module, pip package).
EMBEDDING_MODELS = {"static": ("static_model", "tokenlearn-static-model==0.1.1")}


class EmbeddingDetectorSpec(BaseModel):
    """A text carries the meme iff its embedding is close enough to the statement's.

    Cosine similarity to the statement at least ``threshold``. The embedder is ``model``:
    ``"static"`` is the packaged 64-dimensional static model of the
    ``tokenlearn-static-model`` wheel (installed with memespread's ``llm`` extra; no
    torch, nothing downloaded). On real paraphrases of a goal it scores about 0.8, on
    unrelated lab notes below 0.45, and a *negation* of the goal still scores about
    0.65: embeddings do not read stance (use a ``judge`` detector for that). An embedder
    passed to the model in Python replaces the packaged one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["embedding"] = "embedding"
    threshold: float = Field(0.7, gt=-1, le=1)
    """Least cosine similarity to the statement of a carrying text."""
    model: Literal["static"] = "static"
    """The embedder: ``"static"``, the packaged static model."""

    def build(self, setup: DetectorSetup) -> EmbeddingDetector:
        """The detector, with the run's embedder or else the packaged model.

        Raises:
            ValueError: The packaged model is not installed.
        """
        embedder = setup.embedder
        if embedder is None:
            try:
                embedder = packaged_embedder(self.model)
            except ValueError as err:
                raise ValueError(f"meme {setup.meme_id!r}: detector 'embedding': {err}") from None
        return EmbeddingDetector(embedder, setup.statement, self.threshold)


def embedding_model_error(model: str) -> str | None:
    """Why the packaged embedding model ``model`` cannot be used here, or None."""
    if model not in EMBEDDING_MODELS:
        return f"unknown embedding model {model!r}; known: {sorted(EMBEDDING_MODELS)}"
    module, package = EMBEDDING_MODELS[model]
    if importlib.util.find_spec(module) is None:
        return (
            f"embedding model {model!r} is not installed: pip install '{package}' (it comes "
            "with memespread's llm extra: pip install -e '.[llm]')"
        )
    return None


class StaticEmbedder:
    """The packaged static embedding model (``tokenlearn-static-model``).

    64 dimensions, int8 weights inside the wheel; no torch, nothing downloaded.

    Raises:
        ValueError: The package is not installed (the message says what to install).
    """

    def __init__(self) -> None:
        problem = embedding_model_error("static")
        if problem:
            raise ValueError(problem)
        from static_model import get_embeddings

        self._embed = get_embeddings

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One 64-dimensional row per text."""
        if len(texts) == 0:
            return np.zeros((0, 64))
        return np.asarray(self._embed(list(texts)), dtype=np.float64)


def packaged_embedder(model: str = "static") -> Embedder:
    """The packaged embedder named ``model`` (see :data:`EMBEDDING_MODELS`)."""
    problem = embedding_model_error(model)
    if problem:
        raise ValueError(problem)
    return StaticEmbedder()


class EmbeddingDetector(DetectorBase):
    """Cosine similarity to the meme statement's embedding at least ``threshold``."""

    kind = "embedding"
    records = True

    def __init__(self, embedder: Embedder, statement: str, threshold: float) -> None:
        self.embedder = embedder
        self.threshold = threshold
        ref = np.asarray(embedder.embed([statement]), dtype=np.float64)[0]
        self._ref = ref / (np.linalg.norm(ref) or 1.0)

    def similarity(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each text to the statement."""
        if len(texts) == 0:
            return np.zeros(0)
        emb = np.asarray(self.embedder.embed(list(texts)), dtype=np.float64)
        norms = np.linalg.norm(emb, axis=1)
        norms[norms == 0] = 1.0
        return (emb @ self._ref) / norms

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text is similar enough to the statement."""
        return self.similarity(texts) >= self.threshold

    def views(self, texts: Sequence[str], carries: np.ndarray) -> list[DetectorView]:
        """Its answer with each text's similarity as the score."""
        return [DetectorView(self.kind, carries, self.similarity(texts))]
