"""Serve the dashboard: check the target here, then run the page with ``solara run``.

The target is checked before anything starts, so a directory that is not a run (or an
invalid config) is a one-line error of the command, not a traceback in the browser.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

from experiments.dashboard.view import TARGET_ENV, describe_target, dumps_target

#: The page module served by ``solara run``.
APP = "experiments.dashboard.app:Page"


class DashboardUnavailableError(RuntimeError):
    """The ``dashboard`` extra (solara) is not installed."""


class DashboardAddressError(ValueError):
    """The page cannot listen on the ``--host``/``--port`` given (invalid input: exit 2)."""


def check_address(host: str, port: int) -> None:
    """Refuse a host and port the page's server could not listen on, before it starts.

    The server binds as uvicorn does (the first address ``host`` resolves to, with
    ``SO_REUSEADDR``), so what passes here fails only if another process takes the port
    in between. Without this check the server prints its own multi-line log and exits 3.

    Raises:
        DashboardAddressError: ``host`` does not resolve, is not an address of this
            machine, the port is in use, or listening on it is not permitted.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as err:
        reason = err.strerror if isinstance(err, socket.gaierror) else "not a host name"
        raise DashboardAddressError(
            f"--host {host}: cannot listen there ({reason}); give an address of this machine, "
            "e.g. 127.0.0.1 (the default) or 0.0.0.0 (every interface)"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                problem = f"--port {port}: already in use on {host}; choose another --port"
            elif err.errno == errno.EADDRNOTAVAIL:
                problem = (
                    f"--host {host}: not an address of this machine; give one of its own, "
                    "e.g. 127.0.0.1 (the default) or 0.0.0.0 (every interface)"
                )
            else:
                problem = f"cannot listen on {host}, port {port}: {err.strerror}"
            raise DashboardAddressError(problem) from None


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

    Raises:
        DashboardAddressError: The server could not listen on ``host`` and ``port``
            (:func:`check_address`; checked before it starts).
    """
    env = server_env(target)
    check_address(host, port)
    print(f"memespread dashboard: http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(server_command(host, port), env=env)
