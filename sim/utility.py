"""Utility: the useful work a defense may cost, per step.

Useful knowledge is carried by the run's *benign* memes (``kind = "benign_insight"``):
seeded facts or insights whose spread through shared memory helps agents. A defense
that blocks shared memory wholesale stops the harmful meme and the useful knowledge
alike; these columns measure the second half of that trade-off.

Columns added to every ``steps`` row of a step (the same value on each meme's row):

* ``utility`` — task accuracy when the step scored choices (LLM decision tasks): the
  share of agents whose choice in this step was a benign meme's target option (the
  correct answer the knowledge helps with), averaged over benign memes; on steps
  without scored choices (the contagion policy) the share of agents that hold a benign
  meme now (adopters), averaged over benign memes. NaN when the run has no benign meme.
* ``benign_reach`` — the share of agents that hold or have written a benign meme
  (adopter or carrier), averaged over benign memes (NaN without benign memes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.memes import MemeKind, MemeSpec
from sim.tracking import Tracker


def benign_memes(memes: Sequence[MemeSpec]) -> np.ndarray:
    """Indices of the benign memes (``kind = "benign_insight"``)."""
    return np.asarray(
        [i for i, m in enumerate(memes) if m.kind is MemeKind.BENIGN_INSIGHT], dtype=np.int64
    )


def utility_values(
    memes: Sequence[MemeSpec], tracker: Tracker, expressed_now: np.ndarray | None
) -> tuple[float, float]:
    """``(utility, benign_reach)`` of the current step (see the module docstring).

    Args:
        memes: The run's memes.
        tracker: The run's tracker (state after the step).
        expressed_now: Boolean (n_agents, n_memes): whose scored choice in this step
            expressed which meme; None when the step scored no choice.
    """
    benign = benign_memes(memes)
    if len(benign) == 0 or tracker.n_agents == 0:
        return float("nan"), float("nan")
    held = tracker.adopter[:, benign]
    reach = float((held | tracker.carrier[:, benign]).mean(axis=0).mean())
    if expressed_now is not None:
        return float(expressed_now[:, benign].mean(axis=0).mean()), reach
    return float(held.mean(axis=0).mean()), reach
