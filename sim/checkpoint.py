"""Checkpoints: the full state of a model between steps, in safe formats only.

A checkpoint is a directory ``step-NNNNNN`` (the number of completed steps) holding
``arrays.npz`` (numpy columns, loaded with ``allow_pickle=False``), ``state.json``
(generator states, texts, counters) and Parquet files for the rows recorded so far. No
file is ever unpickled. A checkpoint is written into a temporary directory and renamed
into place, so a process killed at any moment leaves either the previous checkpoint or
the new one, never a partial one.

Restoring requires a model built from the same config; the checkpoint replaces its
state, and stepping on gives exactly the tables an uninterrupted run gives.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from sim.model import MemeticModel

FORMAT = "memespread-checkpoint/1"
_PREFIX = "step-"
#: Suffix of the row files, unlike any run table (``runs/**/steps.parquet`` globs skip them).
_ROWS = ".rows.parquet"


def _frame(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


def save_checkpoint(model: MemeticModel, root: str | os.PathLike[str]) -> Path:
    """Write the model's state as ``root/step-NNNNNN`` and drop older checkpoints.

    Returns:
        The checkpoint directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{model.steps:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        arrays = {f"store.{k}": v for k, v in model.store.state_arrays().items()}
        arrays.update({f"tracker.{k}": v for k, v in model.tracker.state_arrays().items()})
        np.savez(tmp / "arrays.npz", **arrays)
        frames = {
            "events": _frame(model.tracker._events),
            "edges": _frame(model.tracker._edges),
            "steps": _frame(model._step_rows),
            "generations": _frame(model._generations),
        }
        for name, frame in frames.items():
            if frame is not None:
                frame.write_parquet(tmp / f"{name}{_ROWS}")
        random_state = model.random.getstate()
        state: dict[str, Any] = {
            "format": FORMAT,
            "steps": model.steps,
            "rng": model.rng.bit_generator.state,
            "random": [random_state[0], list(random_state[1]), random_state[2]],
            "texts": model.store.texts.all(),
            "frames": sorted(n for n, f in frames.items() if f is not None),
        }
        (tmp / "state.json").write_text(json.dumps(state, default=int))
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(root):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(_PREFIX) and (p / "state.json").is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(model: MemeticModel, checkpoint: str | os.PathLike[str]) -> None:
    """Replace the state of a freshly built model (same config) with a checkpoint.

    Raises:
        ValueError: The checkpoint is not in a known format or does not fit the model.
    """
    checkpoint = Path(checkpoint)
    state = json.loads((checkpoint / "state.json").read_text())
    if state.get("format") != FORMAT:
        raise ValueError(f"{checkpoint}: unknown checkpoint format {state.get('format')!r}")
    if model.steps != 0 or len(model.store):
        raise ValueError("load_checkpoint needs a freshly built model")
    with np.load(checkpoint / "arrays.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    tracker = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("tracker.")}
    if tracker["seeded"].shape != model.tracker.seeded.shape:
        raise ValueError(
            f"{checkpoint}: checkpoint has {tracker['seeded'].shape} (agents, memes), the "
            f"model {model.tracker.seeded.shape}: it was made from another config"
        )
    store = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("store.")}
    model.store.load_state_arrays(store, state["texts"])
    for name, value in tracker.items():
        getattr(model.tracker, name)[...] = value
    frames = {name: pl.read_parquet(checkpoint / f"{name}{_ROWS}") for name in state["frames"]}
    model.tracker._events = [frames["events"]] if "events" in frames else []
    model.tracker._edges = [frames["edges"]] if "edges" in frames else []
    model._step_rows = [frames["steps"]] if "steps" in frames else []
    model._generations = [frames["generations"]] if "generations" in frames else []
    model.rng.bit_generator.state = state["rng"]
    version, internal, gauss = state["random"]
    model.random.setstate((version, tuple(internal), gauss))
    model.steps = int(state["steps"])
