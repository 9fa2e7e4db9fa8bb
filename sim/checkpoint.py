"""Checkpoints: the full state of a model between steps, in safe formats only.

A checkpoint is what :meth:`MemeticModel.get_state <sim.model.MemeticModel.get_state>`
returns (a :class:`sim.state.State`), written to a directory ``step-NNNNNN`` (the number
of completed steps): its arrays in ``arrays.npz`` (loaded with ``allow_pickle=False``),
its JSON values in ``state.json`` (with the checkpoint's own fields) and each frame as a
Parquet file. No file is ever unpickled, and this module reads no field of the model
itself: each part saves and restores its own state. A checkpoint is written
into a temporary directory and renamed into place, so a process killed at any moment
leaves either the previous checkpoint or the new one, never a partial one.

Each checkpoint is sealed: ``state.json`` carries a SHA-256 ``digest`` over every other
file and its own content, and may carry a ``binding`` (what the caller binds it to, e.g.
the hash of the run's config). :func:`read_checkpoint_state` refuses a checkpoint whose
digest, step count (also in its directory name) or format does not match, so a
hand-edited or truncated checkpoint is never resumed.

Restoring requires a model built from the same config; the checkpoint replaces its
state, and stepping on gives exactly the tables an uninterrupted run gives.

Formats: :data:`FORMAT` is written; :data:`READABLE` are read. ``memespread-checkpoint/4``
added the ``extra.personas`` frame of LLM runs (the ``personas`` table). A
``memespread-checkpoint/3`` checkpoint, written before it, is still restored (a run
killed before an upgrade resumes after it): the model rebuilds the personas rows of its
steps from its own persona assignment
(:meth:`MemeticModel.rebuild_personas <sim.model.MemeticModel.rebuild_personas>`), which
is the writing run's since the model is built from the same config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from sim.output import make_temp_dir
from sim.state import State

if TYPE_CHECKING:
    from sim.model import MemeticModel

#: The format written.
FORMAT = "memespread-checkpoint/4"
#: The format before the ``personas`` frame (LLM checkpoints lack it; still read).
FORMAT_3 = "memespread-checkpoint/3"
#: The formats read, newest first.
READABLE = (FORMAT, FORMAT_3)
_PREFIX = "step-"
#: Suffix of the row files, unlike any run table (``runs/**/steps.parquet`` globs skip them).
_ROWS = ".rows.parquet"


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, edited, of another format or of another run."""


def _content_digest(folder: Path, state: Mapping[str, Any]) -> str:
    """SHA-256 over every file of a checkpoint but ``state.json``, then the state itself."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "state.json":
            continue
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    body = {k: v for k, v in state.items() if k != "digest"}
    digest.update(json.dumps(body, sort_keys=True, default=int).encode())
    return digest.hexdigest()


def save_checkpoint(
    model: MemeticModel,
    root: str | os.PathLike[str],
    binding: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model's state as ``root/step-NNNNNN`` and drop older checkpoints.

    Args:
        model: The model.
        root: The checkpoint directory of the run.
        binding: JSON values the checkpoint is bound to (e.g. the config's hash); stored
            and sealed with the rest, returned by :func:`read_checkpoint_state`.

    Returns:
        The checkpoint directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{model.steps:06d}"
    tmp = make_temp_dir(root, ".tmp-")  # mode from the umask, not mkdtemp's 0700
    try:
        model_state = model.get_state()
        arrays: dict[str, Any] = model_state.arrays
        np.savez(tmp / "arrays.npz", **arrays)
        for name, frame in model_state.frames.items():
            frame.write_parquet(tmp / f"{name}{_ROWS}")
        state: dict[str, Any] = {
            "format": FORMAT,
            "steps": model.steps,
            "values": model_state.values,
            "frames": sorted(model_state.frames),
            "binding": dict(binding or {}),
        }
        state["digest"] = _content_digest(tmp, state)
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


def checkpoint_step(checkpoint: str | os.PathLike[str]) -> int:
    """The step count in a checkpoint's directory name (``step-000020`` is 20).

    Raises:
        CheckpointError: The name is not ``step-N``.
    """
    name = Path(checkpoint).name
    number = name.removeprefix(_PREFIX)
    if not name.startswith(_PREFIX) or not number.isdigit():
        raise CheckpointError(f"{checkpoint}: not a checkpoint directory (step-N)")
    return int(number)


def read_checkpoint_state(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``state.json`` of a checkpoint (its ``format`` is one of :data:`READABLE`).

    Raises:
        CheckpointError: It is unreadable or not JSON, of a format not read, its digest does
            not match its files (edited or truncated), or its step count differs from its
            directory name. The message is one line.
    """
    checkpoint = Path(checkpoint)
    try:
        state = json.loads((checkpoint / "state.json").read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(
            f"{checkpoint}: unreadable checkpoint ({type(err).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in READABLE:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{checkpoint}: checkpoint format {found!r} is not one of {list(READABLE)} "
            "(written by another version, or corrupt)"
        )
    try:
        digest = _content_digest(checkpoint, state)
    except (OSError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{checkpoint}: unreadable checkpoint ({type(err).__name__})"
        ) from None
    if state.get("digest") != digest:
        raise CheckpointError(
            f"{checkpoint}: the checkpoint's content does not match its digest (it was edited "
            "or is truncated)"
        )
    if state.get("steps") != checkpoint_step(checkpoint):
        raise CheckpointError(
            f"{checkpoint}: its state says {state.get('steps')!r} steps, its name "
            f"{checkpoint_step(checkpoint)}; it was edited"
        )
    return state


def load_checkpoint(model: MemeticModel, checkpoint: str | os.PathLike[str]) -> None:
    """Replace the state of a freshly built model (same config) with a checkpoint.

    A ``memespread-checkpoint/3`` checkpoint's missing ``personas`` rows are rebuilt by
    the model (see the module docstring), and the ``sim.checkpoint`` logger says so.

    Raises:
        CheckpointError: The checkpoint fails :func:`read_checkpoint_state`.
        ValueError: It does not fit the model.
    """
    checkpoint = Path(checkpoint)
    state = read_checkpoint_state(checkpoint)
    if model.steps != 0 or len(model.store):
        raise ValueError("load_checkpoint needs a freshly built model")
    with np.load(checkpoint / "arrays.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    frames = {name: pl.read_parquet(checkpoint / f"{name}{_ROWS}") for name in state["frames"]}
    try:
        model.set_state(State(arrays=arrays, frames=frames, values=state["values"]))
    except ValueError as err:
        raise ValueError(f"{checkpoint}: {err}") from None
    old = state["format"] == FORMAT_3 and "extra.personas" not in frames
    if old and model.rebuild_personas():
        logging.getLogger(__name__).info(
            "%s: a %s checkpoint (before the personas table): the personas rows of "
            "its %d steps were rebuilt from the config's persona assignment",
            checkpoint,
            FORMAT_3,
            state["steps"],
        )
