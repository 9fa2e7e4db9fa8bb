"""The run configuration: one TOML file describes one run, validated strictly.

Every section is a strict pydantic model (unknown keys are errors, with a "did you mean"
for near misses). Types are strict: ``steps = "3"``, ``steps = true`` or ``beta = false``
are errors; an integer is accepted where a float is expected. Every integer in a config
lies within ``-INT_LIMIT..INT_LIMIT`` (2**31 - 1) and every float is finite. Validation
happens before anything heavy (graphs, models) is built; :func:`load_config` reports every
error at once, each with its key path, the bad value and what is allowed.

Relative file paths in a config file (``graph.path``, ``values.battery_file``,
``policy.tasks_file``, ``policy.personas_file``, and the files of engines: a llama.cpp
``model_path``, a replay ``path``) are relative to that file's folder (they are made
absolute when the file is read); ``--set`` values are taken as given.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from experiments.annotations import is_model, union_members
from experiments.checks import cross_field_errors, resource_errors
from experiments.schema import RunConfig
from topologies.placements import DEFAULT_STRATEGY

#: Largest magnitude of an integer in a config (the int32 range that arrays use).
INT_LIMIT = 2**31 - 1

_M = typing.TypeVar("_M", bound=BaseModel)


class ConfigError(ValueError):
    """An invalid configuration; ``errors`` lists every problem found, one line each."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"invalid config {source} ({len(errors)} error(s)):\n{lines}")


def _display_path(
    loc: tuple[Any, ...], data: Any, root: type[BaseModel] | None = None
) -> list[str]:
    """The key path of an error location, without pydantic's union-tag parts.

    Pydantic puts the tag of a discriminated union into the location
    (``policy.contagion.beta``); walking the data shows which parts are real keys, and
    walking the schema from ``root`` (default :class:`RunConfig`) which part is the tag
    when a variant has a key named like its tag (``strategy = "bank"`` and ``bank``).
    """
    parts: list[str] = []
    node = data
    tp: Any = root if root is not None else RunConfig
    for part in loc:
        text = str(part)
        if text.startswith("function-"):
            continue
        if isinstance(node, dict) and _is_union_tag(tp, part) and part in _tags(node):
            tp = _step_type(tp, part)
            continue  # the union tag, even where the variant has a key of that name
        tp = _step_type(tp, part) if tp is not None else None
        if isinstance(node, dict):
            if text in node:
                node = node[text]
            elif text in _tags(node):
                continue  # the union tag, not a key
            else:
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        parts.append(text)
    return parts


def _tags(node: dict[str, Any]) -> set[Any]:
    """The union tags a table may carry: its ``kind``, or a placement's ``strategy``."""
    return {node.get("kind"), node.get("strategy", DEFAULT_STRATEGY)} - {None}


def _is_union_tag(tp: Any, part: Any) -> bool:
    """Whether ``part`` at type ``tp`` is a union tag.

    That is: ``tp`` is a choice of several tables and ``part`` is one's ``kind`` or
    ``strategy`` (pydantic's location always holds the tag there, before any key of the
    variant).
    """
    models = [m for m in union_members(tp) if is_model(m)] if tp is not None else []
    return len(models) > 1 and any(_tag_of(m) == part for m in models)


def _tag_of(model: Any) -> Any:
    """A variant's ``kind`` or ``strategy`` default (None for a table that is no variant)."""
    for tag in ("kind", "strategy"):
        field = model.model_fields.get(tag)
        if field is not None:
            return field.default
    return None


def _step_type(tp: Any, part: Any) -> Any:
    """The type found at key (or index, or union tag) ``part`` inside type ``tp``.

    In a choice of several tables ``part`` is first taken as a tag (pydantic's location
    names the variant before its keys), then as a key.
    """
    if _is_union_tag(tp, part):
        return next(m for m in union_members(tp) if is_model(m) and _tag_of(m) == part)
    for member in union_members(tp):
        if is_model(member):
            for name, info in member.model_fields.items():
                if part in (name, info.alias):
                    return info.annotation
            if _tag_of(member) == part:
                return member
        origin = typing.get_origin(member)
        if origin is list and isinstance(part, int):
            return typing.get_args(member)[0]
        if origin is dict:
            return typing.get_args(member)[1]
    return None


def _keys_at(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> list[str]:
    """The keys allowed next to the last part of an error location (for "did you mean")."""
    tp: Any = root if root is not None else RunConfig
    for part in loc[:-1]:
        tp = _step_type(tp, part)
        if tp is None:
            return []
    return sorted(
        {
            info.alias or name
            for member in union_members(tp)
            if is_model(member)
            for name, info in member.model_fields.items()
        }
    )


def schema_field(data: Any, key: str, root: type[BaseModel] | None = None) -> FieldInfo | None:
    """The schema field that key path ``key`` of the config document ``data`` names.

    Choices of several tables are resolved by the variant ``data`` selects there (its
    ``kind`` or ``strategy``), as validation resolves them. None when the path does not
    end at a field of a table (a list item, an unknown key, a variant ``data`` does not
    select).

    Args:
        data: A run config document (a nested mapping, as read from TOML).
        key: A dotted key path (see :func:`split_key`), e.g. ``policy.beta``.
        root: The schema (default :class:`RunConfig`).
    """
    tp: Any = root if root is not None else RunConfig
    node: Any = data
    field: FieldInfo | None = None
    for part in split_key(key):
        models = [m for m in union_members(tp) if is_model(m)]
        if len(models) > 1:
            tags = _tags(node) if isinstance(node, dict) else set()
            models = [m for m in models if _tag_of(m) in tags]
            if len(models) != 1:
                return None
        field = None
        if models:
            fields = models[0].model_fields
            field = next((f for n, f in fields.items() if part in (n, f.alias)), None)
            if field is None:
                return None
            tp = field.annotation
        else:
            tp = _step_type(tp, int(part) if part.isdigit() else part)
            if tp is None:
                return None
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    return field


def shown_value(value: Any) -> str:
    """How error lines show a value: ``{...}`` for a table, else its repr cut to 80 chars."""
    if isinstance(value, dict):
        return "{...}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _variant_at(loc: tuple[Any, ...], data: Any) -> str:
    """``kind 'file'`` when the table holding ``loc``'s last key is a variant of a choice.

    Pydantic puts the union tag just before the key (``graph.file.n``); "" when the table
    is not a variant (or the data cannot be walked).
    """
    node = data
    for part in loc[:-2]:
        if isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (isinstance(node, dict) and part in _tags(node)):
            return ""
    if len(loc) < 2 or not isinstance(node, dict):
        return ""
    for tag in ("kind", "strategy"):
        if tag in node and node[tag] == loc[-2]:
            return f"{tag} {loc[-2]!r}"
    if loc[-2] == DEFAULT_STRATEGY and "strategy" not in node:
        return f"strategy {DEFAULT_STRATEGY!r}"
    return ""


def _unknown_key(
    loc: tuple[Any, ...], path: str, value: Any, data: Any, root: type[BaseModel] | None
) -> str:
    """The line for an unknown key: a near miss ("did you mean"), else the keys allowed there.

    A key of another variant of a choice (``graph.m`` under ``kind = "ring"``) is not a
    misspelling, so the line names the variant and its keys rather than saying "check
    the spelling".
    """
    key = str(loc[-1]) if loc else ""
    allowed = _keys_at(loc, root)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    shown = f"{path} = {shown_value(value)}"
    if close:
        return f"{shown}: unknown key (did you mean {close[0]!r}? see docs/config-reference.md)"
    if not allowed:
        return f"{shown}: unknown key (check the spelling; see docs/config-reference.md)"
    variant = _variant_at(loc, data)
    where = f"unknown key for {variant}" if variant else "unknown key"
    return f"{shown}: {where} (allowed: {', '.join(allowed)}; see docs/config-reference.md)"


def _format_error(
    error: ErrorDetails, data: Any = None, root: type[BaseModel] | None = None
) -> str:
    """One line naming the key path, the bad value and what is allowed."""
    parts = _display_path(tuple(error["loc"]), data, root)
    path = ".".join(parts)
    value = error.get("input")
    message = error["msg"]
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "extra_forbidden":
        return _unknown_key(tuple(error["loc"]), path, value, data, root)
    if kind in {"literal_error", "enum"}:
        return f"{path} = {shown_value(value)}: must be one of {ctx.get('expected', '')}"
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
        if path and isinstance(value, str | int | float):
            return f"{path} = {shown_value(value)}: {text}"
        return f"{path}: {text}" if path else text
    return f"{path} = {shown_value(value)}: {message[:1].lower()}{message[1:]}"


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
    config = validate_strict(RunConfig, data, source)
    errors = cross_field_errors(config)
    if errors:
        raise ConfigError(source, errors)
    errors = resource_errors(config)
    if errors:
        raise ConfigError(source, errors)
    return config


def value_errors(data: Any, path: str = "") -> list[str]:
    """Values no config may hold, with their key paths.

    Integers beyond :data:`INT_LIMIT` in magnitude, floats that are not finite, TOML dates
    and times, and strings with NUL characters or lone surrogates (from undecodable
    command-line bytes).
    """
    where = path or "(top level)"
    if isinstance(data, dict):
        return [e for k, v in data.items() for e in value_errors(v, f"{path}.{k}" if path else k)]
    if isinstance(data, list):
        return [e for i, v in enumerate(data) for e in value_errors(v, f"{path}.{i}")]
    if isinstance(data, bool):
        return []
    if isinstance(data, int) and abs(data) > INT_LIMIT:
        return [f"{where} = {shown_value(data)}: integers must be within -{INT_LIMIT}..{INT_LIMIT}"]
    if isinstance(data, float) and not math.isfinite(data):
        return [f"{where} = {data!r}: must be a finite number"]
    if isinstance(data, datetime.date | datetime.time):
        return [f"{where} = {data}: a TOML date or time is not a config value"]
    if isinstance(data, str) and "\x00" in data:
        return [f"{where} = {shown_value(data)}: must not contain NUL characters"]
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return [f"{where} = {shown_value(data)}: not valid Unicode text (a lone surrogate)"]
    return []


def validate_strict(model: type[_M], data: Any, source: str) -> _M:
    """Validate ``data`` against ``model`` with strict types.

    Strict as in JSON: no string-to-number or bool-to-number coercion (an int is accepted
    for a float), strings are accepted for paths and enums. See :func:`value_errors`.

    Raises:
        ConfigError: Every value error, or else every schema error, one line each.
    """
    errors = value_errors(data)
    if errors:
        raise ConfigError(source, errors)
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as err:
        raise ConfigError(source, [_format_error(e, data, model) for e in err.errors()]) from None


#: Largest config file read (a config is a few kilobytes; this stops a mistaken path).
MAX_CONFIG_BYTES = 10 * 2**20


def read_toml(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """Read a TOML file into a mapping.

    Args:
        path: The file.
        key: The config key that named the file (e.g. ``sweep.base``), for messages.

    Raises:
        ConfigError: The file is missing, not a regular file, unreadable, larger than
            :data:`MAX_CONFIG_BYTES`, not UTF-8 or not valid TOML.
    """
    path = Path(path)
    where = f"{key} = {str(path)!r}: " if key else ""
    try:
        if path.is_file():
            problem = None
        elif path.exists():
            problem = "not a regular file"
        elif key is None and len(path.parts) == 1:
            # A bare name is looked up among the shipped configs too (load_config).
            problem = "no such file, nor a shipped config of that name (`memespread list`)"
        else:
            problem = "file not found"
    except (OSError, ValueError) as err:  # a name too long, a NUL character
        problem = getattr(err, "strerror", None) or "not a valid path"
    if problem is not None:
        raise ConfigError(str(path), [f"{where}{problem}: {path}"])
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(str(path), [f"{where}cannot read {path}: {err.strerror}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            str(path), [f"{where}larger than {MAX_CONFIG_BYTES} bytes; not a config file"]
        )
    try:
        # "utf-8-sig": a byte-order mark that some editors save first is not part of the text.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            str(path), [f"{where}not valid UTF-8 (byte {err.start}); not a TOML config file"]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        problem = f"{where}not valid TOML: {err}{_format_hint(path)}"
        raise ConfigError(str(path), [problem]) from None


def _format_hint(path: Path) -> str:
    """Why a ``.json``/``.yaml`` file does not parse: configs are TOML ("" for others)."""
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return ""
    hint = f"; configs are TOML files, not {path.suffix.lower().lstrip('.').upper()}"
    if path.name == "manifest.json":
        hint += " (a run's manifest.json is not a config: resume or fork its run directory)"
    return hint


#: File keys of an engine table: a llama.cpp GGUF (``model_path``), a replay file
#: (``path``). A vLLM ``model`` is left alone: it may be a hub name.
ENGINE_FILE_KEYS = ("model_path", "path")


def _engine_tables(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine tables of a config.

    The policy's, each guard's and each judge detector's, and the ``inner`` engine of any
    replay engine among them.
    """
    found: list[Any] = []
    policy = data.get("policy")
    if isinstance(policy, dict):
        found.append(policy.get("engine"))
    for guard in data.get("guards") or []:
        if isinstance(guard, dict):
            found.append(guard.get("engine"))
    for meme in data.get("memes") or []:
        detector = meme.get("detector") if isinstance(meme, dict) else None
        if isinstance(detector, dict):
            found.append(detector.get("engine"))
    tables: list[dict[str, Any]] = []
    while found:
        table = found.pop(0)
        if isinstance(table, dict):
            tables.append(table)
            found.append(table.get("inner"))
    return tables


def resolve_relative_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make relative file paths of a config absolute, in place.

    The paths: ``graph.path``, ``values.battery_file``, ``policy.tasks_file``,
    ``policy.personas_file`` and the :data:`ENGINE_FILE_KEYS` of every engine table
    (the policy's, the guards', the judge detectors' and replay engines' ``inner``).

    A config file's paths are relative to the file's folder, whatever the current
    directory; :func:`read_config` applies this to every file it reads.
    """
    graph = data.get("graph")
    if isinstance(graph, dict) and graph.get("kind") == "file":
        _make_absolute(graph, "path", base_dir)
    pairs = (("values", "battery_file"), ("policy", "tasks_file"), ("policy", "personas_file"))
    for table, key in pairs:
        section = data.get(table)
        if isinstance(section, dict):
            _make_absolute(section, key, base_dir)
    for engine in _engine_tables(data):
        for key in ENGINE_FILE_KEYS:
            _make_absolute(engine, key, base_dir)


def _make_absolute(table: dict[str, Any], key: str, base_dir: Path) -> None:
    """Make ``table[key]`` absolute against ``base_dir``, in place, if it is a relative path.

    Anything other than a non-empty string is left as it is (validation reports it).
    """
    value = table.get(key)
    if isinstance(value, str) and value and not os.path.isabs(value):
        table[key] = os.path.abspath(base_dir / value)


def read_config(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """:func:`read_toml` a config file, with its relative paths resolved against its folder."""
    data = read_toml(path, key)
    resolve_relative_paths(data, Path(path).parent)
    return data


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
    """Read, override and validate a TOML run config.

    Args:
        path: The TOML file, or the name of a shipped config (``"contagion_small"``, see
            :func:`experiments.catalog.list_configs`).
        overrides: ``key.path=value`` strings (see :func:`apply_override`).

    Raises:
        ConfigError: The file is missing, is not valid TOML, or fails validation.
    """
    from experiments.catalog import resolve_config

    path = resolve_config(path)
    data = read_config(path)
    apply_overrides(data, overrides)
    return validate_config(data, str(path))


#: An unquoted ``--set`` value taken as a string: a word such as ``ring``, ``private:3``
#: or ``edge:1-2`` (anything else that is not a TOML value is an error).
_BARE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.:+\-]*")


def _parse_value(text: str, override: str) -> Any:
    if not text:
        raise ConfigError("--set", [f"{override!r}: no value after '='"])
    try:
        document = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError as err:
        if _BARE_WORD.fullmatch(text):
            return text
        raise ConfigError(
            "--set",
            [
                f"{override!r}: the value is not a TOML value ({err}); quote strings "
                '(name="my-run"); an unquoted word (graph.kind=ring) is a string'
            ],
        ) from None
    if set(document) != {"v"}:
        raise ConfigError(
            "--set", [f"{override!r}: one KEY.PATH=VALUE per --set (the value has more)"]
        )
    return document["v"]


def split_key(key: str) -> list[str]:
    """The parts of a dotted key path; a part in double quotes may contain dots.

    ``sweep.grid."policy.beta"`` is ``["sweep", "grid", "policy.beta"]``.

    Raises:
        ConfigError: An empty part or an unclosed quote.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ConfigError("--set", [f"{key!r}: control characters in the key path"])
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
    are created, and a missing list when the next part is an index (``guards.0.pattern``
    without any guards yet). A part in double quotes may contain dots (see :func:`split_key`).

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
                        f"{len(node)} item(s): use 0..{len(node)} ({len(node)} appends an item)"
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
                node = node.setdefault(part, [] if parts[i + 1].isdigit() else {})
        else:
            parent = ".".join(parts[:i])
            shown = shown_value(node)
            raise ConfigError(
                "--set",
                [f"{key}: {parent} = {shown} is not a table or list, so it has no {part!r}"],
            )


def apply_override(data: dict[str, Any], override: str) -> None:
    r"""Apply one ``key.path=value`` override to a nested config mapping, in place.

    The value is one TOML value (``5``, ``0.1``, ``true``, ``"ring"``, ``[0, 1]``,
    ``{ kind = "ring", n = 20, k = 4 }``); an unquoted word (letters first, then letters,
    digits and ``_ . : + -``) is a string, so ``graph.kind=ring`` works. Anything else is
    an error: other text that is not TOML, an empty value, or more than one value
    (``'steps=1\nname="x"'``). See :func:`set_path` for paths.

    Raises:
        ConfigError: The override is not of the form ``key.path=value``, its value is not
            one TOML value or word, or its path is invalid.
    """
    key, eq, raw = override.partition("=")
    if not eq or not key.strip():
        raise ConfigError(
            "--set", [f"{override!r}: expected KEY.PATH=VALUE, e.g. steps=5 or graph.n=200"]
        )
    set_path(data, key, _parse_value(raw.strip(), override))
