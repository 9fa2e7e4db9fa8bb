"""The decorator of the compiled kernels (numba), cached on disk where numba can.

numba keeps a kernel's machine code in ``__pycache__`` beside its source, or, where
that is not writable (a read-only install), in the user's cache directory
(``NUMBA_CACHE_DIR``, else ``~/.cache/numba``). With neither writable, ``cache=True``
makes numba refuse the function when it is decorated, so importing the module would
fail; such a kernel is compiled in each process instead (a few seconds on its first call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(cache=True, nogil=True, **options)``, uncached where numba cannot cache.

    Args:
        options: Further :func:`numba.njit` options (``inline="always"``).
    """

    def compile_later(func: Callable[..., Any]) -> Any:
        try:
            return njit(cache=True, nogil=True, **options)(func)
        except RuntimeError as error:
            if "no locator available" not in str(error):
                raise
            return njit(nogil=True, **options)(func)

    return compile_later
