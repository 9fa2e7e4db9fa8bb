"""The run configuration: one TOML file describes one run, validated strictly.

Every section is a strict pydantic model (unknown keys are errors). Validation happens
before anything heavy (graphs, models) is built; :func:`load_config` reports every error
at once, each with its key path, the bad value and what is allowed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.contagion import ContagionSpec
from sim.guards import PatternGuardSpec
from sim.memes import MemeSpec
from sim.memory_spec import MemorySpec
from topologies.banks import BankLayoutSpec
from topologies.graphs import GraphSpec

PolicySpec = Annotated[ContagionSpec, Field(discriminator="kind")]
GuardSpec = Annotated[PatternGuardSpec, Field(discriminator="kind")]


class RunConfig(BaseModel):
    """A complete run.

    Attributes:
        name: Name of the run (its directory under ``output_dir``).
        seed: Seed of every random draw of the run.
        steps: Number of steps to run.
        output_dir: Directory that receives the run directory.
        graph: The network of agents.
        banks: The memory bank layout.
        memory: Retrieval and forgetting.
        policy: What agents do: the classical contagion policy or LLM agents.
        memes: The memes to seed and track (at least one).
        probe_every: Ask the adoption probe every this many steps (LLM policies).
        guards: Defenses that review every proposed write, in order.
        checkpoint_every: Save a resumable checkpoint every this many steps (0: never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("run", pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = Field(0, ge=0)
    steps: int = Field(20, ge=1)
    output_dir: str = "runs"
    graph: GraphSpec
    banks: BankLayoutSpec = BankLayoutSpec()
    memory: MemorySpec = MemorySpec()
    policy: PolicySpec = ContagionSpec()
    memes: list[MemeSpec] = Field(min_length=1)
    probe_every: int | None = Field(None, ge=1)
    guards: list[GuardSpec] = []
    checkpoint_every: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _unique_memes(self) -> RunConfig:
        ids = [m.id for m in self.memes]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"memes: duplicate id(s) {dupes}; every meme id must be unique")
        return self


class ConfigError(ValueError):
    """An invalid configuration; ``errors`` lists every problem found, one line each."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"invalid config {source} ({len(errors)} error(s)):\n{lines}")


def _format_error(error: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
    value = error.get("input")
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key (check the spelling; see the config reference)"
    if error["type"] in {"literal_error", "enum"}:
        expected = error.get("ctx", {}).get("expected", "")
        return f"{path} = {value!r}: must be one of {expected}"
    if error["type"] == "union_tag_invalid":
        ctx = error.get("ctx", {})
        key = f"{path}.{ctx.get('discriminator', 'kind')}"
        return f"{key} = {ctx.get('tag')!r}: must be one of {ctx.get('expected_tags')}"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    shown = repr(value) if not isinstance(value, dict) else "{...}"
    return f"{path} = {shown}: {message}"


def validate_config(data: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a config mapping; raises :class:`ConfigError` listing every error."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, [_format_error(e) for e in err.errors()]) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a TOML config.

    Args:
        path: The TOML file.
        overrides: ``key.path=value`` strings; values are parsed as TOML values (so
            ``steps=5``, ``graph.kind="ring"`` and ``memes.0.inject_step=2`` work), falling
            back to plain strings.

    Raises:
        ConfigError: The file is missing, is not valid TOML, or fails validation.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), [f"file not found: {path}"])
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), [f"not valid TOML: {err}"]) from None
    for override in overrides or []:
        apply_override(data, override)
    return validate_config(data, str(path))


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``key.path=value`` in a nested config mapping, in place.

    Integer path parts index lists (``memes.0.id``); missing tables are created.

    Raises:
        ConfigError: The override is not of the form ``key.path=value`` or its path
            crosses a value that is not a table or list.
    """
    if "=" not in override:
        raise ConfigError("--set", [f"{override!r}: expected key.path=value"])
    key, _, raw = override.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError("--set", [f"{override!r}: empty key path"])
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    "--set", [f"{key}: index {part!r} out of range (list of {len(node)})"]
                )
            if last:
                node[int(part)] = _parse_value(raw.strip())
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = _parse_value(raw.strip())
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError("--set", [f"{key}: {'.'.join(parts[:i])} is not a table or list"])
