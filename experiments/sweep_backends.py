"""Where a sweep's runs execute: this machine (``local``) or a Ray cluster (``ray``).

The local backend lives in :mod:`experiments.sweep` (in-process, or worker processes
with ``--jobs``). This module runs the same run function as Ray tasks: one task per
run, each asking for one CPU, so a cluster runs as many runs at once as it has CPUs.
Everything else stays with the sweep: which runs to start, resume or skip, the index and
the lock. Results are the same as with the local backend because each task runs
:func:`experiments.sweep._run_one` on the run's config, writing its run directory.

What a cluster needs: every node can import ``memespread`` (install it on the nodes, or
pass a Ray ``runtime_env``), and the sweep directory is on a filesystem every node
mounts at the same path (the tasks write the run directories; the driver reads them).
While a task runs it holds a shared lock on the sweep's lock file, as local workers do,
so a rerun is refused until the tasks of a killed sweep are gone (on filesystems
without locks this check is skipped).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from experiments.messages import first_line

#: The backends ``memespread sweep --backend`` accepts.
BACKENDS = ("local", "ray")

#: Runs one run (``config_data, run_dir, action, progress``) and returns its status: the
#: sweep's run function, passed in so that this module does not import the sweep.
RunOne = Callable[[dict[str, Any], str, str, bool], str]
#: Takes a lock on an open file (``fd, exclusive=...``): the sweep's lock function.
Lock = Callable[..., bool]


class SweepBackendError(Exception):
    """A backend cannot be used (Ray is not installed, or its address is wrong): exit 2."""


def _ray_task(
    run_one: RunOne,
    lock: Lock,
    config_data: dict[str, Any],
    run_dir: str,
    action: str,
    lock_path: str,
) -> str:
    """One run as a Ray task: hold the sweep's lock (shared), run it, return its status."""
    fd = None
    try:
        fd = os.open(lock_path, os.O_RDWR)
        lock(fd, exclusive=False)
    except OSError:
        fd = None  # a node that cannot open the lock file runs unlocked
    try:
        return run_one(config_data, run_dir, action, False)
    finally:
        if fd is not None:
            os.close(fd)


def connect_ray(address: str | None) -> Any:
    """Connect to Ray: a cluster at ``address``, or a local Ray (an existing one if any).

    Returns:
        The ``ray`` module, initialised.

    Raises:
        SweepBackendError: Ray is not installed, or nothing answers at ``address``.
    """
    try:
        import ray
    except ImportError:
        raise SweepBackendError("--backend ray needs Ray: pip install 'memespread[ray]'") from None
    if ray.is_initialized():
        return ray
    problem = _unreachable(address)
    if problem is not None:
        raise SweepBackendError(
            f"--address {address!r}: cannot connect to a Ray cluster ({problem}); give the "
            "head node's address as HOST:6379 (or ray://HOST:10001), or omit --address "
            "for a local Ray"
        )
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        raise SweepBackendError(
            f"--address {address!r}: cannot connect to a Ray cluster ({first_line(err)}); give the "
            "head node's address as HOST:6379 (or ray://HOST:10001), or omit --address "
            "for a local Ray"
        ) from None
    return ray


def _unreachable(address: str | None, timeout_s: float = 5.0) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` address (None: it answers, or not checkable).

    Ray itself retries an unreachable address for minutes, and prints warnings for about
    20 s at a port that answers but is not Ray's; a TCP connection attempt and an HTTP/2
    greeting tell at once. Ray's head (GCS) and client server both speak gRPC, so they
    answer the HTTP/2 connection preface with a SETTINGS frame; anything else (a web
    server, a database, silence) is not a Ray cluster. ``auto``, ``local`` and addresses
    without a port are left to Ray.
    """
    if not address or address in ("auto", "local"):
        return None
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return "not HOST:PORT"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
            return None if _answers_http2(sock) else _NOT_GRPC
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as err:
        return err.strerror or type(err).__name__


#: Why an address that accepts connections is not a Ray cluster.
_NOT_GRPC = "the port answers, but not as Ray's gRPC server"

#: HTTP/2's client connection preface followed by an empty SETTINGS frame (RFC 9113 3.4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
#: The frame type of SETTINGS, the first frame an HTTP/2 server sends.
_SETTINGS_FRAME = 4


def _answers_http2(sock: socket.socket) -> bool:
    """Whether the server on ``sock`` greets an HTTP/2 client with a SETTINGS frame.

    Raises:
        OSError: The connection fails or times out (the socket's timeout).
    """
    sock.sendall(_HTTP2_PREFACE)
    header = b""
    while len(header) < 9:  # a frame header: length (3), type (1), flags (1), stream (4)
        chunk = sock.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == _SETTINGS_FRAME


def run_on_ray(
    todo: Sequence[tuple[dict[str, Any], str, str]],
    lock_path: Path,
    *,
    run_one: RunOne,
    lock: Lock,
    address: str | None = None,
    on_done: Callable[[], None] = lambda: None,
) -> dict[str, str]:
    """Run ``todo`` as Ray tasks; returns ``run_dir -> error`` of the runs that failed.

    Args:
        todo: ``(config_data, run_dir, action)`` per run (action: start, resume, replace).
        lock_path: The sweep's lock file (each task holds it shared while it runs).
        run_one: The sweep's run function, which each task calls.
        lock: The sweep's lock function.
        address: The Ray cluster (None: the local Ray, started if none runs).
        on_done: Called after each run ends (progress bars).

    Raises:
        SweepBackendError: Ray cannot be used (see :func:`connect_ray`).
        KeyboardInterrupt: Interrupted; the tasks still running are cancelled.
    """
    ray = connect_ray(address)
    task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
    pending = {
        task.remote(run_one, lock, config, run_dir, action, str(lock_path)): run_dir
        for config, run_dir, action in todo
    }
    failed: dict[str, str] = {}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                run_dir = pending.pop(ref)
                try:
                    ray.get(ref)
                except Exception as err:
                    failed[run_dir] = _task_error(err)
                on_done()
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return failed


def _task_error(err: BaseException) -> str:
    """One line for a failed task: the run's own error when Ray wraps it."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        err = cause
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
