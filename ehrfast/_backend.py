"""Finding the compiled backends, and choosing between a fast path and its reference.

Every compiled component has a pure Python/numpy/torch reference with the same semantics.
``resolve_backend`` picks the fast path when it is present, falls back to the reference with
one warning when it is not, and raises a clear error when a user forces a backend that is
missing — never an ImportError from deep inside a stack.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType
from typing import Any

_CORE_IMPORT_ERROR: str | None = None
_warned: set[str] = set()


def _load_core() -> ModuleType | None:
    global _CORE_IMPORT_ERROR
    try:
        return importlib.import_module("ehrfast._core")
    except ImportError as exc:  # source checkout without a build, or a broken build
        _CORE_IMPORT_ERROR = str(exc)
        return None


core: ModuleType | None = _load_core()


class BackendUnavailableError(RuntimeError):
    """A backend was forced (``backend="cpp"``) but its compiled module is not present."""


def require_core() -> ModuleType:
    """The compiled C++ core, or a clear error saying how to get it."""
    if core is None:
        raise BackendUnavailableError(
            "the ehrfast C++ core (ehrfast._core) is not built in this installation "
            f"({_CORE_IMPORT_ERROR}). Reinstall with `pip install .` from a checkout "
            "(needs a C++17 compiler and CMake), or use backend='python'."
        )
    return core


def resolve_backend(requested: str | None, component: str) -> str:
    """Returns ``"cpp"`` or ``"python"`` for a C++-accelerated ``component``.

    ``requested`` is None/"auto" (C++ if built, else the Python reference with one warning),
    "cpp" (error if missing) or "python".
    """
    if requested in (None, "auto"):
        if core is not None:
            return "cpp"
        if component not in _warned:
            _warned.add(component)
            warnings.warn(
                f"ehrfast C++ core not built; {component} uses the slower Python reference",
                RuntimeWarning,
                stacklevel=3,
            )
        return "python"
    if requested == "cpp":
        require_core()
        return "cpp"
    if requested == "python":
        return "python"
    raise ValueError(f"backend for {component} must be 'auto', 'cpp' or 'python', got {requested!r}")


def _cuda_module() -> ModuleType | None:
    try:
        return importlib.import_module("ehrfast._cuda")
    except ImportError:
        return None


def build_info() -> dict[str, Any]:
    """Which compiled backends and accelerators this installation can use.

    Keys: ``version``, ``cpp_core`` (bool), ``cpp_openmp`` (bool), ``cuda_kernels`` (bool),
    ``triton`` (bool, importable), ``torch`` (version or None), ``gpu`` (device name or None),
    ``core_error`` (why the core failed to import, or None).
    """
    from ehrfast import __version__

    info: dict[str, Any] = {
        "version": __version__,
        "cpp_core": core is not None,
        "cpp_openmp": bool(core is not None and core.built_with_openmp()),
        "cuda_kernels": _cuda_module() is not None,
        "triton": importlib.util.find_spec("triton") is not None,
        "torch": None,
        "gpu": None,
        "core_error": _CORE_IMPORT_ERROR,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info
