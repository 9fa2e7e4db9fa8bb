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
from agents.llm_policy import LLMPolicySpec
from sim.guards import PatternGuardSpec
from sim.memes import MemeSpec
from sim.memory_spec import MemorySpec
from topologies.banks import BankLayoutSpec
from topologies.graphs import GraphSpec

PolicySpec = Annotated[ContagionSpec | LLMPolicySpec, Field(discriminator="kind")]
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
        checkpoint_every: Save a resumable checkpoint every this many steps (0: never;
            None: 1 for LLM policies, whose steps are expensive, and 10 for the
            contagion policy). See :attr:`resolved_checkpoint_every`.
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
    checkpoint_every: int | None = Field(None, ge=0)

    @property
    def resolved_checkpoint_every(self) -> int:
        """``checkpoint_every``, or its policy-dependent default when unset."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        return 10 if self.policy.kind == "contagion" else 1

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


def _display_path(loc: tuple[Any, ...], data: Any) -> list[str]:
    """The key path of an error location, without pydantic's union-tag parts.

    Pydantic puts the tag of a discriminated union into the location
    (``policy.contagion.beta``); walking the data shows which parts are real keys.
    """
    parts: list[str] = []
    node = data
    for part in loc:
        text = str(part)
        if text.startswith("function-"):
            continue
        if isinstance(node, dict):
            if text in node:
                node = node[text]
            elif node.get("kind") == text:
                continue  # the union tag, not a key
            else:
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        parts.append(text)
    return parts


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "{...}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_error(error: dict[str, Any], data: Any = None) -> str:
    """One line naming the key path, the bad value and what is allowed."""
    parts = _display_path(tuple(error["loc"]), data)
    path = ".".join(parts)
    value = error.get("input")
    message = error["msg"]
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "extra_forbidden":
        return (
            f"{path} = {_shown(value)}: unknown key (check the spelling; see "
            "docs/config-reference.md)"
        )
    if kind in {"literal_error", "enum"}:
        return f"{path} = {_shown(value)}: must be one of {ctx.get('expected', '')}"
    if kind == "union_tag_invalid":
        key = f"{path}.{str(ctx.get('discriminator', 'kind')).strip(chr(39))}"
        return f"{key} = {ctx.get('tag')!r}: must be one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        key = f"{path}.{str(ctx.get('discriminator', 'kind')).strip(chr(39))}"
        return f"{key}: required key is missing (it selects the variant)"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "value_error":
        text = message.removeprefix("Value error, ")
        # Spec validators name their own field ("watts_strogatz.k = 3: ..."): put the
        # config key path in front of it instead of the spec's local name.
        head, dot, rest = text.partition(".")
        tag = str(error["loc"][-1]) if error["loc"] else ""
        if path and dot and " " not in head and head in {tag, parts[-1] if parts else ""}:
            return f"{path}.{rest}"
        return f"{path}: {text}" if path else text
    return f"{path} = {_shown(value)}: {message[:1].lower()}{message[1:]}"


def validate_config(data: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a config mapping, then run the cross-field checks.

    Nothing heavy is built: the checks use the specs only (see :mod:`experiments.checks`).

    Raises:
        ConfigError: Listing every schema error, or else every cross-field error.
    """
    if isinstance(data, dict) and "sweep" in data:
        raise ConfigError(
            source,
            ["sweep: this is a sweep config; run it with `memespread sweep` (or run_sweep)"],
        )
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, [_format_error(e, data) for e in err.errors()]) from None
    from experiments.checks import cross_field_errors

    errors = cross_field_errors(config)
    if errors:
        raise ConfigError(source, errors)
    return config


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a mapping.

    Raises:
        ConfigError: The file is missing or is not valid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), [f"file not found: {path}"])
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), [f"not valid TOML: {err}"]) from None


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> None:
    """Apply every ``key.path=value`` override in order, in place.

    Raises:
        ConfigError: Listing every malformed override at once.
    """
    errors: list[str] = []
    for override in overrides or []:
        try:
            apply_override(data, override)
        except ConfigError as err:
            errors.extend(err.errors)
    if errors:
        raise ConfigError("--set", errors)


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
    data = read_toml(path)
    apply_overrides(data, overrides)
    return validate_config(data, str(path))


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_key(key: str) -> list[str]:
    """The parts of a dotted key path; a part in double quotes may contain dots.

    ``sweep.grid."policy.beta"`` is ``["sweep", "grid", "policy.beta"]``.

    Raises:
        ConfigError: An empty part or an unclosed quote.
    """
    parts: list[str] = []
    rest = key.strip()
    while True:
        if rest.startswith('"'):
            end = rest.find('"', 1)
            if end < 0:
                raise ConfigError("--set", [f"{key!r}: unclosed quote in the key path"])
            part, rest = rest[1:end], rest[end + 1 :].strip()
            if rest and not rest.startswith("."):
                raise ConfigError("--set", [f"{key!r}: expected '.' after a quoted key part"])
        else:
            part, dot, tail = rest.partition(".")
            part = part.strip()
            rest = dot + tail
        if not part:
            raise ConfigError(
                "--set", [f"{key!r}: empty key part; expected e.g. graph.n or memes.0.id"]
            )
        parts.append(part)
        if not rest:
            return parts
        rest = rest[1:].strip()
        if not rest:
            raise ConfigError(
                "--set", [f"{key!r}: empty key part; expected e.g. graph.n or memes.0.id"]
            )


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the value at a dotted key path in a nested config mapping, in place.

    Integer parts index lists (``memes.0.id``); the index one past the end appends (a
    new table when the path goes on, so ``memes.1.id=...`` adds a meme). Missing tables
    are created. A part in double quotes may contain dots (see :func:`split_key`).

    Raises:
        ConfigError: An empty key part, a list index out of range, or a path that crosses
            a value that is neither a table nor a list.
    """
    parts = split_key(key)
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) > len(node):
                raise ConfigError(
                    "--set",
                    [
                        f"{where}: list index {part!r} is not allowed; the list has "
                        f"{len(node)} item(s): use 0..{len(node)} ({len(node)} appends)"
                    ],
                )
            index = int(part)
            if index == len(node):
                node.append(value if last else {})
            elif last:
                node[index] = value
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            parent = ".".join(parts[:i])
            raise ConfigError(
                "--set",
                [f"{key}: {parent} = {_shown(node)} is not a table or list, so it has no {part!r}"],
            )


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``key.path=value`` override to a nested config mapping, in place.

    The value is parsed as a TOML value (``5``, ``0.1``, ``true``, ``"ring"``,
    ``[0, 1]``, ``{ kind = "ring", n = 20, k = 4 }``); text that is not a TOML value is
    taken as a plain string (so ``graph.kind=ring`` works). See :func:`set_path` for paths.

    Raises:
        ConfigError: The override is not of the form ``key.path=value`` or its path is
            invalid.
    """
    key, eq, raw = override.partition("=")
    if not eq or not key.strip():
        raise ConfigError(
            "--set", [f"{override!r}: expected KEY.PATH=VALUE, e.g. steps=5 or graph.n=200"]
        )
    set_path(data, key, _parse_value(raw.strip()))
