"""Memory settings of a run: retrieval and forgetting (capacities live with the banks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from sim.forgetting import ForgettingSpec
from sim.retrieval import RetrievalSpec


class MemorySpec(BaseModel):
    """How agents retrieve and forget memories.

    Attributes:
        retrieval: Top-k retrieval scoring.
        forgetting: Ebbinghaus-style decay (off by default; capacity always holds).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    retrieval: RetrievalSpec = RetrievalSpec()
    forgetting: ForgettingSpec = ForgettingSpec()
