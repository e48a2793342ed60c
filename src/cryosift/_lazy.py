"""Lazy re-exports for the packages' ``__init__``: ``cryosift.outliers.detect`` and its kin
stay the public names, but importing a light submodule (a command's option constants, say)
does not import every heavy sibling (pandas, scipy) through the package."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``package`` that imports
    ``package.exports[name]`` the first time ``name`` is asked for and returns its ``name``."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
