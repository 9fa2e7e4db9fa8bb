"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys

#: ``prctl`` option: the signal the kernel sends this process when its parent dies.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux only).

    Elsewhere, or where ``prctl`` is unavailable, nothing happens: callers that must not
    outlive their parent also watch it themselves (see ``experiments.sweep``). Safe to call
    in a child between fork and exec (``preexec_fn``): it only calls ``prctl``.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
