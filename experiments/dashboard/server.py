"""Serve the dashboard: check the target here, then run the page with ``solara run``.

The target is checked before anything starts, so a directory that is not a run (or an
invalid config) is a one-line error of the command, not a traceback in the browser.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from experiments.dashboard.view import TARGET_ENV, describe_target, dumps_target

#: The page module served by ``solara run``.
APP = "experiments.dashboard.app:Page"


class DashboardUnavailableError(RuntimeError):
    """The ``dashboard`` extra (solara) is not installed."""


def server_command(host: str, port: int) -> list[str]:
    """The command that serves the page (``python -m solara run ...``)."""
    return [
        sys.executable, "-m", "solara", "run", APP, "--host", host, "--port", str(port),
        "--production", "--no-open", "--log-level", "warning",
    ]  # fmt: skip


def server_env(target: str | Path) -> dict[str, str]:
    """The environment of the server process: this one plus the checked target.

    Raises:
        experiments.dashboard.view.NotARunError: A directory that is not a run.
        experiments.config.ConfigError: A config that is missing or invalid.
        DashboardUnavailableError: solara is not installed.
    """
    described = describe_target(target)
    if importlib.util.find_spec("solara") is None:
        raise DashboardUnavailableError(
            "the dashboard needs the dashboard extra: pip install 'memespread[dashboard]'"
        )
    env = dict(os.environ)
    env[TARGET_ENV] = dumps_target(described)
    # The page imports the project's packages: make them importable from any directory.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def serve(target: str | Path, host: str = "127.0.0.1", port: int = 8765) -> int:
    """Check ``target`` and serve its dashboard until interrupted; returns the exit code.

    Args:
        target: A run directory (replay with a step slider) or a run config (live run).
        host: Interface to listen on.
        port: Port to listen on.
    """
    env = server_env(target)
    print(f"memespread dashboard: http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(server_command(host, port), env=env)
