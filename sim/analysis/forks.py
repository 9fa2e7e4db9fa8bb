"""Parent and fork side by side: how an intervention changed the spread.

A fork (``memespread fork RUN_DIR --at STEP ...``) records its parent run and step in its
manifest (``parent.run_dir``, ``parent.step``); both runs share steps ``0 .. STEP - 1``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from sim.analysis.aggregate import run_curve
from sim.analysis.loading import Run, load_run


def fork_parent(fork: Run) -> Run:
    """The parent run of a fork (from ``manifest.parent.run_dir``).

    Raises:
        ValueError: The run is not a fork.
        FileNotFoundError: The parent's directory is gone.
    """
    parent = fork.manifest.get("parent")
    if not isinstance(parent, dict) or "run_dir" not in parent:
        raise ValueError(f"run {fork.name} ({fork.path}) is not a fork: its manifest has no parent")
    return load_run(Path(parent["run_dir"]))


def fork_comparison(fork: Run, parent: Run | None = None, state: str = "adopter") -> pl.DataFrame:
    """Per meme and step, the share of agents in ``state`` in the parent and in the fork.

    Args:
        fork: The fork.
        parent: Its parent (default: read from the fork's manifest).
        state: The state compared (exposed, carrier, expressed, adopter, infected).

    Returns:
        Columns ``meme_id, step, parent, fork, difference`` (fork minus parent) and
        ``forked`` (the step is at or after the fork step), sorted.
    """
    parent = parent or fork_parent(fork)
    at = int(fork.manifest["parent"]["step"])
    a = run_curve(parent, state).rename({"prevalence": "parent"})
    b = run_curve(fork, state).rename({"prevalence": "fork"})
    return (
        a.join(b, on=["meme_id", "step"], how="full", coalesce=True)
        .with_columns(
            (pl.col("fork") - pl.col("parent")).alias("difference"),
            (pl.col("step") >= at).alias("forked"),
        )
        .sort("meme_id", "step")
    )
