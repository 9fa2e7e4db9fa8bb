"""The ``lexical`` detector: a text carries the meme iff it holds enough signature terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.detectors.base import DetectorBase, DetectorSetup
from sim.texts import words


class LexicalDetectorSpec(BaseModel):
    """A text carries the meme iff it contains at least ``min_matches`` of ``terms``.

    Matching is on lowercase words; a multi-word term matches as a phrase.
    ``min_matches = None`` means all terms.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["lexical"] = "lexical"
    terms: list[str] = Field(min_length=1)
    """Words or phrases to look for (at least one)."""
    min_matches: int | None = Field(None, ge=1)
    """Least number of the terms a text must contain to carry the meme, 1 to ``len(terms)``;
    unset: all of them."""

    @model_validator(mode="after")
    def _check_min_matches(self) -> LexicalDetectorSpec:
        if self.min_matches is not None and self.min_matches > len(self.terms):
            raise ValueError(
                f"detector.min_matches = {self.min_matches}: must be between 1 and the number "
                f"of terms ({len(self.terms)})"
            )
        return self

    def build(self, setup: DetectorSetup) -> LexicalDetector:
        """The detector (it needs nothing of the meme but these terms)."""
        return LexicalDetector(self.terms, self.min_matches)


def _words(text: str) -> str:
    """Lowercase words of a text joined by single spaces, padded for phrase matching."""
    return " " + " ".join(words(text)) + " "


class LexicalDetector(DetectorBase):
    """At least ``min_matches`` of the signature terms occur as whole words or phrases."""

    kind = "lexical"

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
