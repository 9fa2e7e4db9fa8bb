"""Reading a run's ``manifest.json``: the one reader, which checks what it reads.

A manifest is a JSON object written by the runner (see
:func:`experiments.runner.new_manifest`); the command line, resume, sweeps, reports and
the notebooks' loaders all read it through :func:`read_manifest`, which returns it only
when it has the shape every reader relies on. Anything else (missing, truncated, binary,
``[]``, a hand-edited ``steps_completed = "x"``, a ``config_sha256`` that no longer
matches the config) is a :class:`ManifestError` whose message is one line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: The manifest file of a run directory.
MANIFEST_FILE = "manifest.json"

#: Statuses a manifest may have.
STATUSES = ("running", "complete", "failed", "interrupted")

#: Largest manifest read (a manifest is a few kilobytes).
_MAX_BYTES = 64 * 2**20


class ManifestError(ValueError):
    """A run directory whose manifest (or checkpoint) is missing, unreadable or malformed.

    Invalid input: the command line exits 2. The message is one line, ``PATH: problem``.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.source = str(path)
        self.problem = problem


class NotARunDirError(ManifestError, FileNotFoundError):
    """A directory without a manifest (also a :class:`FileNotFoundError`)."""


def config_sha256(config: dict[str, Any]) -> str:
    """Hex SHA-256 of a resolved config (its JSON dump with sorted keys).

    Binds a manifest and its checkpoints to the config they were made with.
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_manifest(data: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """``data`` if it has a manifest's shape.

    Raises:
        ManifestError: Naming the first problem found.
    """

    def fail(problem: str) -> ManifestError:
        return ManifestError(path, problem)

    if not isinstance(data, dict):
        raise fail(f"not a run manifest (a JSON {type(data).__name__}, not an object)")
    config = data.get("config")
    if not isinstance(config, dict):
        raise fail("not a run manifest (no 'config' object)")
    status = data.get("status")
    if status not in STATUSES:
        raise fail(f"status = {status!r}: must be one of {', '.join(STATUSES)}")
    done = data.get("steps_completed")
    if isinstance(done, bool) or not isinstance(done, int) or done < 0:
        raise fail(f"steps_completed = {done!r}: must be an integer >= 0")
    for key in ("n_agents", "n_banks"):
        value = data.get(key)
        if value is not None and (type(value) is not int or value < 0):
            raise fail(f"{key} = {value!r}: must be an integer >= 0")
    for key in ("seed", "steps"):
        if key in data and data[key] != config.get(key):
            raise fail(
                f"{key} = {data[key]!r} differs from config.{key} = {config.get(key)!r}; "
                "the manifest was edited"
            )
    digest = data.get("config_sha256")
    if digest is not None and digest != config_sha256(config):
        raise fail("its config no longer matches config_sha256; the manifest was edited")
    return data


def missing_manifest_reason(run_dir: str | os.PathLike[str]) -> str:
    """Why ``run_dir`` has no manifest: it is a file, it does not exist, or it has none."""
    if Path(run_dir).is_file():
        return "a file, not a directory"
    return "no manifest.json" if Path(run_dir).exists() else "it does not exist"


def read_manifest(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of a run directory.

    Raises:
        ManifestError: No manifest (not a run directory), or one that is not valid UTF-8
            JSON of a manifest's shape (see :func:`check_manifest`).
        OSError: The manifest exists but cannot be read (permissions, I/O).
    """
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise NotARunDirError(run_dir, f"not a run directory ({missing_manifest_reason(run_dir)})")
    with open(path, "rb") as handle:
        raw = handle.read(_MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:
        raise ManifestError(path, f"larger than {_MAX_BYTES} bytes; not a run manifest")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ManifestError(path, f"not valid JSON ({reason}); the file is corrupt") from None
    return check_manifest(data, path)


def read_manifest_if_any(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checked manifest of ``run_dir``, or None when it has none or an unreadable one.

    For callers that only describe a directory and must not fail on it (a failure
    message, a sweep index that lists such a run as ``unreadable``); whatever acts on a
    run (resume, fork, load, report) uses :func:`read_manifest` and its error.
    """
    try:
        return read_manifest(run_dir)
    except (ManifestError, OSError):
        return None
