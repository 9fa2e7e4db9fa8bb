"""Personas: who each LLM agent is (name, role, a short description).

Agent ``a`` gets persona ``personas[a % len(personas)]`` (``"by_id"``), or, with
``"shuffled"`` assignment, ``personas[order[a % len(personas)]]`` for a permutation
``order`` of the persona positions drawn once per run (:func:`shuffled_order`), so that
agents at fixed seed placements do not have the same personas in every seed. The default
set ships with the package (``agents/data/personas.json``); a user file in the same format
replaces it: a JSON list of objects with the keys ``name``, ``role`` and ``description``.

The ``personas`` table (:data:`PERSONAS_SCHEMA`, :func:`personas_frame`) records the
assignment a run used: one row per agent generation, from the step its agent speaks as
the persona (0 for the original agents, the replacement step for a new one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

DEFAULT_PERSONAS_RESOURCE = "personas.json"

#: How agents get personas: by agent id, or through a per-run permutation.
PersonaAssignment = Literal["by_id", "shuffled"]

#: Columns of the ``personas`` table: from ``step`` on, agent ``agent_id`` of generation
#: ``agent_generation`` speaks as persona ``persona`` (its 0-based position in the
#: personas list) named ``persona_name``, a ``persona_role``.
PERSONAS_SCHEMA = {
    "step": pl.Int32,
    "agent_id": pl.Int32,
    "agent_generation": pl.Int32,
    "persona": pl.Int32,
    "persona_name": pl.String,
    "persona_role": pl.String,
}


class Persona(BaseModel):
    """One agent persona.

    Attributes:
        name: A first name, e.g. ``"Ada"``.
        role: The agent's job, e.g. ``"data scientist"``.
        description: One short sentence about the agent's character.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=80)
    role: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=400)


_PERSONA_LIST = TypeAdapter(list[Persona])


def read_data_file(path: Path | None, resource: str, what: str) -> tuple[object, str]:
    """Return the parsed JSON of a user file (or of the packaged default) and its source.

    Raises:
        ValueError: The file is missing, unreadable, not UTF-8 or not valid JSON (the
            message names ``what``).
    """
    if path is None:
        text = (resources.files("agents") / "data" / resource).read_text(encoding="utf-8")
        source = f"agents/data/{resource}"
    else:
        if not path.is_file():
            raise ValueError(f"{what} = {str(path)!r}: file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{what} = {str(path)!r}: not valid UTF-8 (byte {err.start}); not a JSON file"
            ) from None
        except OSError as err:
            raise ValueError(f"{what} = {str(path)!r}: cannot read: {err.strerror}") from None
        source = str(path)
    try:
        return json.loads(text), source
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} = {source!r}: not valid JSON: {err}") from None


def load_personas(path: str | Path | None = None) -> tuple[Persona, ...]:
    """Load personas from a JSON file, or the packaged default set when ``path`` is None.

    Args:
        path: A JSON file holding a non-empty list of ``{"name", "role", "description"}``
            objects.

    Returns:
        The personas, in file order.

    Raises:
        ValueError: The file is missing, is not JSON, is not a non-empty list of persona
            objects, or a persona has a missing, empty or unknown key (the message names
            the file and the offending entry).
    """
    data, source = read_data_file(
        None if path is None else Path(path), DEFAULT_PERSONAS_RESOURCE, "personas_file"
    )
    if not isinstance(data, list) or not data:
        raise ValueError(
            f"personas_file = {source!r}: must hold a non-empty JSON list of objects with keys "
            "'name', 'role', 'description'"
        )
    try:
        return tuple(_PERSONA_LIST.validate_python(data))
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(
            f"personas_file = {source!r}: entry {loc}: {first['msg']} "
            "(each persona needs non-empty 'name', 'role', 'description' and nothing else)"
        ) from None


def persona_of(
    personas: Sequence[Persona],
    agent: int,
    lineage: int = 0,
    order: Sequence[int] | None = None,
) -> Persona:
    """The persona of agent ``agent``: ``personas[order[(agent + lineage) % len(personas)]]``.

    ``lineage`` is the agent generation on the node (0 for the original agent, +1 per
    replacement, see :mod:`sim.turnover`): each new agent takes the next persona in
    ``order``. With more agents than personas, the order repeats.

    Args:
        personas: The persona list (file order).
        agent: The agent id (>= 0).
        lineage: The agent's generation on its node (>= 0).
        order: A permutation of the positions ``0 .. len(personas) - 1`` (see
            :func:`shuffled_order`); None: the identity (``"by_id"`` assignment).
    """
    return personas[persona_position(len(personas), agent, lineage, order)]


def persona_position(
    n_personas: int, agent: int, lineage: int = 0, order: Sequence[int] | None = None
) -> int:
    """The position in the persona list of agent ``agent``'s persona (see :func:`persona_of`).

    Args:
        n_personas: The number of personas (>= 1).
        agent: The agent id (>= 0).
        lineage: The agent's generation on its node (>= 0).
        order: A permutation of the positions; None: the identity.
    """
    if agent < 0:
        raise ValueError(f"agent = {agent}: must be >= 0")
    slot = (agent + lineage) % n_personas
    return slot if order is None else int(order[slot])


def shuffled_order(n_personas: int, rng: np.random.Generator) -> tuple[int, ...]:
    """A uniformly random permutation of the persona positions ``0 .. n_personas - 1``.

    It is drawn from ``rng.spawn(1)[0]``, a child generator of ``rng`` (its seed sequence's
    next child), not from ``rng`` itself: the draw leaves ``rng``'s state where it was, so
    the run's other draws (graph, placements, request seeds, option orders) are the same
    as with ``"by_id"`` assignment, and the permutation is a function of the seed alone
    (for the model's generator seeded with ``seed`` and nothing spawned before, it is
    ``np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))).permutation(n)``).

    Args:
        n_personas: The number of personas (>= 1).
        rng: The model's generator (one created from a seed sequence, as
            ``np.random.default_rng`` does).
    """
    if n_personas < 1:
        raise ValueError(f"n_personas = {n_personas}: must be >= 1")
    child = rng.spawn(1)[0]
    return tuple(int(i) for i in child.permutation(n_personas))


def check_order(order: Sequence[int], n_personas: int) -> tuple[int, ...]:
    """``order`` as a tuple, checked to be a permutation of ``0 .. n_personas - 1``.

    Raises:
        ValueError: It is not (e.g. a saved order from a run with another personas file).
    """
    checked = tuple(int(i) for i in order)
    if sorted(checked) != list(range(n_personas)):
        raise ValueError(
            f"persona order {list(checked)} is not a permutation of the {n_personas} "
            "personas' positions (was the personas file changed?)"
        )
    return checked


def personas_frame(
    personas: Sequence[Persona],
    order: Sequence[int] | None,
    step: int,
    agents: np.ndarray,
    generations: np.ndarray,
) -> pl.DataFrame:
    """Rows of the ``personas`` table for ``agents`` from ``step`` on.

    From ``step`` on, ``agents[i]`` of generation ``generations[i]`` speaks as its persona
    (:func:`persona_of`).

    Args:
        personas: The persona list (file order).
        order: The assignment's permutation of the positions; None: the identity.
        step: The first step the agents speak as these personas.
        agents: Agent ids.
        generations: Each agent's generation on its node (aligned with ``agents``).
    """
    positions = [
        persona_position(len(personas), int(a), int(g), order)
        for a, g in zip(agents.tolist(), generations.tolist(), strict=True)
    ]
    return pl.DataFrame(
        {
            "step": np.full(len(positions), step, dtype=np.int32),
            # Copies: polars may share a numpy array's memory, and the caller's
            # generations (the tracker's lineage) change at the next replacement.
            "agent_id": np.array(agents, dtype=np.int32),
            "agent_generation": np.array(generations, dtype=np.int32),
            "persona": np.asarray(positions, dtype=np.int32),
            "persona_name": [personas[p].name for p in positions],
            "persona_role": [personas[p].role for p in positions],
        },
        schema=PERSONAS_SCHEMA,
    )


def personas_after_restore(restored: pl.DataFrame | None, current: pl.DataFrame) -> pl.DataFrame:
    """The ``personas`` table of a model restored from a checkpoint, true from then on.

    ``restored`` is the table the checkpoint saved (None: a checkpoint without one);
    ``current`` is every agent's persona under the restored model's policy, with ``step``
    the next step to run. Where an agent's current persona (or generation) is not its
    last restored row's, e.g. in a fork that changes ``personas_file`` or
    ``persona_assignment``, the agent gets a row from that step on (replacing a restored
    row of that same step, which never took effect); elsewhere the restored table
    stands unchanged (in its order), so a resume continues the table an uninterrupted run
    writes.

    Args:
        restored: The saved table, or None.
        current: :func:`personas_frame` of every agent at the next step to run.

    Returns:
        The rows: ``restored`` itself where no agent changed, else ordered by step then
        agent.
    """
    if restored is None:
        return current
    key = [c for c in PERSONAS_SCHEMA if c != "step"]
    latest = restored.unique(subset="agent_id", keep="last", maintain_order=True)
    changed = current.join(latest.select(key), on=key, how="anti", maintain_order="left")
    if changed.height == 0:
        # A resume (or a fork that assigns the same personas): the saved table as it is,
        # in its own order. Re-sorting it by agent would reorder a fork's rows of its fork
        # step (the changed agents', then that step's replacements') on every resume.
        return restored
    step = int(current["step"][0])
    kept = restored.filter(
        ~(pl.col("agent_id").is_in(changed["agent_id"].to_list()) & (pl.col("step") >= step))
    )
    return pl.concat([kept, changed]).sort("step", "agent_id", maintain_order=True)
