"""The decorator of the compiled kernels (numba), cached on disk where numba can.

numba keeps a kernel's machine code in ``__pycache__`` beside its source, or, where
that is not writable (a read-only install), in the user's cache directory
(``NUMBA_CACHE_DIR``, else ``~/.cache/numba``). With neither writable, ``cache=True``
makes numba refuse the function when it is decorated, so importing the module would
fail; such a kernel is compiled in each process instead (a few seconds on its first
call), and the ``sim.kernels`` logger warns once per process
(:data:`UNCACHED_WARNING`), saying how to give numba a cache directory.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from numba import njit

#: What the ``sim.kernels`` logger says (once per process) when numba cannot cache.
UNCACHED_WARNING = (
    "numba cannot cache the compiled kernels of sim (neither the package's __pycache__ nor "
    "a user cache directory is writable): they are compiled again in every process, about "
    "4 s each (every run, every sweep worker). Set NUMBA_CACHE_DIR to a writable directory "
    "to compile them once."
)


@functools.cache
def _warn_uncached() -> None:
    """Log :data:`UNCACHED_WARNING`; cached, so it is logged once per process."""
    logging.getLogger(__name__).warning(UNCACHED_WARNING)


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(cache=True, nogil=True, **options)``, uncached where numba cannot cache.

    Where numba has no writable cache directory the kernel is compiled without a disk
    cache, in each process that calls it, and :data:`UNCACHED_WARNING` is logged (once
    per process, however many kernels fall back).

    Args:
        options: Further :func:`numba.njit` options (``inline="always"``).
    """

    def compile_later(func: Callable[..., Any]) -> Any:
        try:
            return njit(cache=True, nogil=True, **options)(func)
        except RuntimeError as error:
            if "no locator available" not in str(error):
                raise
            _warn_uncached()
            return njit(nogil=True, **options)(func)

    return compile_later
