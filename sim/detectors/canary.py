"""The ``canary`` detector: a text carries the meme iff it holds the meme's canary token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from sim.detectors.base import DetectorBase, DetectorSetup


class CanaryDetectorSpec(BaseModel):
    """A text carries the meme iff it contains the meme's canary token (exact, case-sensitive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["canary"] = "canary"

    def build(self, setup: DetectorSetup) -> CanaryDetector:
        """The detector of ``setup``'s meme (which has a canary: checked by MemeSpec)."""
        if setup.canary is None:
            raise ValueError(f"meme {setup.meme_id!r}: detector 'canary' needs meme.canary")
        return CanaryDetector(setup.canary)


class CanaryDetector(DetectorBase):
    """Exact, case-sensitive substring match of a canary token."""

    kind = "canary"

    def __init__(self, canary: str) -> None:
        self.canary = canary

    def carries(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text contains the canary."""
        return np.fromiter((self.canary in t for t in texts), dtype=np.bool_, count=len(texts))
