"""Forgetting: Ebbinghaus-style exponential decay of retention, as in MemoryBank.

An entry's retention after ``t`` steps without recall is ``R = exp(-t / S)``, where the
memory strength ``S`` starts at ``initial_strength`` and grows by ``recall_boost`` each
time the entry is retrieved (recall also resets ``t``). An entry whose retention falls
below ``threshold`` is forgotten (it stays in the store, no longer alive).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.memory import MemoryStore


class ForgettingSpec(BaseModel):
    """How memories fade.

    Attributes:
        kind: "none" keeps entries until capacity evicts them; "decay" forgets entries whose
            retention falls below ``threshold``.
        initial_strength: Strength S of a new entry, in steps.
        recall_boost: Added to S each time the entry is retrieved.
        threshold: Retention below which an entry is forgotten, in (0, 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["none", "decay"] = "none"
    initial_strength: float = Field(5.0, gt=0)
    recall_boost: float = Field(1.0, ge=0)
    threshold: float = Field(0.05, gt=0, lt=1)


def retention(age: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Ebbinghaus retention ``exp(-age / strength)`` for arrays of ages and strengths."""
    return np.exp(-np.asarray(age, dtype=np.float64) / np.asarray(strength, dtype=np.float64))


def forget(store: MemoryStore, step: int, spec: ForgettingSpec) -> np.ndarray:
    """Forget the alive entries whose retention at ``step`` is below the threshold.

    Returns:
        The ids of the entries forgotten at this step.
    """
    if spec.kind == "none":
        return np.zeros(0, dtype=np.int64)
    alive = store.alive_ids()
    age = step - store.last_access[alive]
    faded = alive[retention(age, store.strength[alive]) < spec.threshold]
    store.remove(faded, step)
    return faded
