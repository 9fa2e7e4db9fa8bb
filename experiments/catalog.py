"""The shipped experiment configs (``experiments/configs/*.toml``) and how to find them."""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class ShippedConfig:
    """One shipped config.

    Attributes:
        name: File name without ``.toml`` (what ``memespread run NAME`` accepts).
        path: The file.
        kind: "run" or "sweep" (a sweep has a ``[sweep]`` table).
        doc: Its documentation: the first comment line, without the ``#``.
    """

    name: str
    path: Path
    kind: Literal["run", "sweep"]
    doc: str


def configs_dir() -> Path:
    """The directory of the shipped configs."""
    return Path(str(importlib.resources.files("experiments") / "configs"))


def _doc(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""


def list_configs() -> list[ShippedConfig]:
    """Every shipped config, sorted by name."""
    found = []
    for path in sorted(configs_dir().glob("*.toml")):
        text = path.read_text()
        try:
            kind: Literal["run", "sweep"] = (
                "sweep" if isinstance(tomllib.loads(text).get("sweep"), dict) else "run"
            )
        except tomllib.TOMLDecodeError:
            kind = "run"
        found.append(ShippedConfig(path.stem, path, kind, _doc(text)))
    return found


def resolve_config(name_or_path: str | Path) -> Path:
    """A config path: an existing file as given, else the shipped config of that name.

    ``memespread run demo`` and ``memespread run experiments/configs/demo.toml`` both work.
    A name that is neither is returned unchanged (loading it then reports the missing file).
    """
    path = Path(name_or_path)
    if _is_file(path):
        return path
    shipped = configs_dir() / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if path.parent == Path(".") and _is_file(shipped):
        return shipped
    return path


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the path cannot exist (a name too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
