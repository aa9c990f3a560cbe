"""Lazy package exports: a package whose modules import torch names its public objects here,
so that importing one light module of it (its options, for the command line) does not load
torch. ``lazy_exports({"name": "module", ...})`` returns the package's ``__getattr__``."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """``__getattr__`` for ``package``: ``exports`` maps a public name to the submodule (relative
    to the package) that defines it; the submodule is imported on first access."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
