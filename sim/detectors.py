"""Meme detectors: does a text carry a meme?

Detectors run over batches of distinct texts; the memory store caches the result per
text, so a text copied into many banks is classified once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from sim.memes import (
    MAX_MEMES,
    CanaryDetectorSpec,
    EmbeddingDetectorSpec,
    LexicalDetectorSpec,
    MemeSpec,
)

_WORD = re.compile(r"[a-z0-9]+")


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


class CanaryDetector:
    """Exact, case-sensitive substring match of a canary token."""

    def __init__(self, canary: str) -> None:
        self.canary = canary

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text contains the canary."""
        return np.fromiter((self.canary in t for t in texts), dtype=np.bool_, count=len(texts))


def _words(text: str) -> str:
    """Lowercase words of a text joined by single spaces, padded for phrase matching."""
    return " " + " ".join(_WORD.findall(text.lower())) + " "


class LexicalDetector:
    """At least ``min_matches`` of the signature terms occur as whole words or phrases."""

    def __init__(self, terms: Sequence[str], min_matches: int | None = None) -> None:
        self.terms = [_words(t) for t in terms]
        self.min_matches = len(self.terms) if min_matches is None else min_matches

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text contains enough signature terms."""
        out = np.zeros(len(texts), dtype=np.bool_)
        for i, text in enumerate(texts):
            normal = _words(text)
            out[i] = sum(term in normal for term in self.terms) >= self.min_matches
        return out


class EmbeddingDetector:
    """Cosine similarity to the meme statement's embedding at least ``threshold``."""

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


def build_detector(meme: MemeSpec, embedder: Embedder | None = None) -> Detector:
    """The detector of a meme, from its spec.

    Raises:
        ValueError: An embedding detector without an embedder.
    """
    spec = meme.effective_detector
    if isinstance(spec, CanaryDetectorSpec):
        assert meme.canary is not None  # checked by MemeSpec
        return CanaryDetector(meme.canary)
    if isinstance(spec, LexicalDetectorSpec):
        return LexicalDetector(spec.terms, spec.min_matches)
    if isinstance(spec, EmbeddingDetectorSpec):
        if embedder is None:
            raise ValueError(
                f"meme {meme.id!r}: detector 'embedding' needs an embedder "
                "(pass embedder= to the model); allowed detectors without one: canary, lexical"
            )
        return EmbeddingDetector(embedder, meme.statement, spec.threshold)
    raise TypeError(f"unknown detector spec {spec!r}")


class MemeBook:
    """The memes of a run, in order (meme index = bit in the entries' meme mask)."""

    def __init__(self, memes: Sequence[MemeSpec], embedder: Embedder | None = None) -> None:
        ids = [m.id for m in memes]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"memes: duplicate id(s) {dupes}; every meme id must be unique")
        if len(memes) > MAX_MEMES:
            raise ValueError(f"memes: {len(memes)} given; at most {MAX_MEMES} per run")
        self.memes = tuple(memes)
        self.ids = ids
        self.detectors = [build_detector(m, embedder) for m in memes]

    def __len__(self) -> int:
        return len(self.memes)

    def index(self, meme_id: str) -> int:
        """Index of a meme by id."""
        try:
            return self.ids.index(meme_id)
        except ValueError:
            raise KeyError(f"unknown meme id {meme_id!r}; known: {self.ids}") from None

    def detect(self, texts: Sequence[str]) -> np.ndarray:
        """Meme bit mask (int64) of each text."""
        masks = np.zeros(len(texts), dtype=np.int64)
        for bit, detector in enumerate(self.detectors):
            masks |= detector.carries(texts).astype(np.int64) << bit
        return masks
