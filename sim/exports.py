"""Lazy re-exports: a package's public names, each imported from its module on first use.

``sim`` and ``agents`` list their public API in their ``__init__`` without importing
every module up front (PEP 562), so importing one module of a package never loads the
others, and no import circle is created through a package's ``__init__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package that re-exports names lazily.

    Args:
        package: The package's name (for messages).
        exports: Each public name and the module that defines it.
    """

    def get_attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def names() -> list[str]:
        return sorted(exports)

    return get_attribute, names
