"""Lazy re-exports for the packages' ``__init__``: ``cryosift.outliers.detect`` and its kin
stay the public names, but importing a light submodule (a command's option constants, say)
does not import every heavy sibling (pandas, scipy) through the package."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], list[str]]:
    """The ``__getattr__`` (PEP 562) and ``__all__`` of ``package`` whose public names are
    ``exports`` (submodule -> names): a name's submodule is imported the first time the
    name is asked for."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return __getattr__, sorted(where)
