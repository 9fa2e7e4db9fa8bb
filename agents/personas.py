"""Personas: who each LLM agent is (name, role, a short description).

Agent ``a`` gets persona ``personas[a % len(personas)]``. The default set ships with the
package (``agents/data/personas.json``); a user file in the same format replaces it: a
JSON list of objects with the keys ``name``, ``role`` and ``description``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

DEFAULT_PERSONAS_RESOURCE = "personas.json"


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


def persona_of(personas: Sequence[Persona], agent: int, lineage: int = 0) -> Persona:
    """The persona of agent ``agent``: ``personas[(agent + lineage) % len(personas)]``.

    ``lineage`` is the agent generation on the node (0 for the original agent, +1 per
    replacement, see :mod:`sim.turnover`): each new agent takes the next persona.
    """
    if agent < 0:
        raise ValueError(f"agent = {agent}: must be >= 0")
    return personas[(agent + lineage) % len(personas)]
