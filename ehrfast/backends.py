"""Every choice between a fast path and its reference, in one place.

Each accelerated component has a pure Python / torch reference with the same semantics. The
choice for each is one of three words:

* ``auto`` — the fast path when it can run here (built, on the right device, passed its
  one-time self-test), else the reference, with one warning where a user would expect speed;
* ``fast`` — the fast path, or an error saying why it cannot run;
* ``reference`` — the reference.

The choice is read once from the environment (``EHRFAST_CORE``, ``EHRFAST_SAMPLING_STEP``,
``EHRFAST_CROSS_ATTENTION``, ``EHRFAST_SLOT_ATTENTION``, ``EHRFAST_PACKED_ATTENTION``),
and can be set for the process (``configure``), for a block (``use``), or per call (the
``backend=`` argument of a component). The older per-component names are accepted too
(``cpp``/``python``, ``cuda``/``torch``, ``triton``, ``flex``/``sdpa``). ``ehrfast info``
prints the resolved table.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ehrfast.errors import BackendUnavailableError, InvalidInputError

CHOICES = ("auto", "fast", "reference")


@dataclass(frozen=True)
class Component:
    """An accelerated component: its environment variable and the names of its two paths."""

    name: str
    title: str
    env: str
    fast: str  # what the fast path is called where it runs ("cpp", "triton", …)
    reference: str  # and the reference ("python", "torch", …)

    def normalize(self, value: str | None, source: str) -> str:
        """``value`` as one of CHOICES; ``source`` names where it came from for the error."""
        if value is None:
            return "auto"
        word = str(value).strip().lower()
        if word in CHOICES:
            return word
        if word == self.fast:
            return "fast"
        if word == self.reference:
            return "reference"
        raise InvalidInputError(f"{source} must be one of auto, fast, reference (or {self.fast!r} / {self.reference!r}) for the "
                                f"{self.title}; got {value!r}")


COMPONENTS = {
    c.name: c
    for c in (
        Component("core", "C++ core (MEDS reader, tokenizer, PRS scorer, .bed codec)", "EHRFAST_CORE", "cpp", "python"),
        Component("sampling_step", "trajectory sampling step", "EHRFAST_SAMPLING_STEP", "cuda", "torch"),
        Component("cross_attention", "cross-attention to soft tokens", "EHRFAST_CROSS_ATTENTION", "triton", "reference"),
        Component("slot_attention", "decode-step slot attention", "EHRFAST_SLOT_ATTENTION", "triton", "reference"),
        Component("packed_attention", "packed self-attention (training)", "EHRFAST_PACKED_ATTENTION", "flex", "sdpa"),
    )
}

_from_env: dict[str, str] | None = None  # read once, on first use
_configured: dict[str, str] = {}
_overrides: list[dict[str, str]] = []  # innermost last (``use`` blocks)


def _component(name: str) -> Component:
    if name not in COMPONENTS:
        raise InvalidInputError(f"unknown backend component {name!r}; components: {', '.join(COMPONENTS)}")
    return COMPONENTS[name]


def _environment() -> dict[str, str]:
    global _from_env
    if _from_env is None:
        read = {}
        for c in COMPONENTS.values():
            if (raw := os.environ.get(c.env)) not in (None, ""):
                read[c.name] = c.normalize(raw, c.env)
        _from_env = read
    return _from_env


def refresh() -> None:
    """Reads the ``EHRFAST_*`` variables again (they are read once, on first use)."""
    global _from_env
    _from_env = None


def setting(name: str) -> tuple[str, str]:
    """(choice, where it came from: "use", "configure", the variable's name, or "default")."""
    component = _component(name)
    for layer in reversed(_overrides):
        if name in layer:
            return layer[name], "use"
    if name in _configured:
        return _configured[name], "configure"
    env = _environment()
    if name in env:
        return env[name], component.env
    return "auto", "default"


def choose(name: str, requested: str | None = None) -> str:
    """The choice for component ``name``: ``requested`` (a call's ``backend=`` argument) when it
    is given and not "auto", else the process setting."""
    component = _component(name)
    requested = component.normalize(requested, "backend") if requested is not None else "auto"
    return requested if requested != "auto" else setting(name)[0]


def _validated(choices: dict[str, str], source: str) -> dict[str, str]:
    return {name: _component(name).normalize(value, f"{source}({name}=…)") for name, value in choices.items()}


def configure(**choices: str) -> None:
    """Sets choices for the whole process, e.g. ``configure(cross_attention="reference")``;
    ``None`` (or "auto") restores the default."""
    for name, value in _validated({k: v for k, v in choices.items() if v is not None}, "configure").items():
        _configured[name] = value
    for name in (k for k, v in choices.items() if v is None):
        _configured.pop(_component(name).name, None)


@contextlib.contextmanager
def use(**choices: str) -> Iterator[None]:
    """Choices for the block only: ``with backends.use(packed_attention="reference"): ...``."""
    _overrides.append(_validated(choices, "use"))
    try:
        yield
    finally:
        _overrides.pop()


def torch_device(name):
    """``torch.device(name)`` checked at the boundary: a name torch does not know ("banana"), or
    a CUDA device on a machine without one, is an error naming the option, not a failure deep
    inside loading a checkpoint."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidInputError(f"device {name!r} (--device) is not a torch device; use cpu, cuda, cuda:1, ...") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"device {name!r} (--device): no CUDA GPU is visible here; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInputError(f"device {name!r} (--device): this machine has {torch.cuda.device_count()} GPU(s)")
    return device


_warned: set[str] = set()


def warn_once(message: str, category: type[Warning] = RuntimeWarning, stacklevel: int = 3) -> None:
    """One warning per distinct message per process (a fallback is said once, not per call)."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, category, stacklevel=stacklevel + 1)


# ---- the compiled C++ core --------------------------------------------------------------

_CORE_IMPORT_ERROR: str | None = None


def _extension(name: str, variable: str) -> ModuleType:
    """The compiled module ``ehrfast.<name>``, or the build that the environment variable
    ``variable`` names (a path: e.g. one built with sanitizers, or instrumented for fuzzing)."""
    import sys

    path = os.environ.get(variable)
    if not path:
        return importlib.import_module(f"ehrfast.{name}")
    full = f"ehrfast.{name}"
    if full not in sys.modules:
        spec = importlib.util.spec_from_file_location(full, path)
        if spec is None or spec.loader is None:
            raise BackendUnavailableError(f"{variable}={path}: not a loadable extension module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[full] = module
    return sys.modules[full]


def _load_core() -> ModuleType | None:
    global _CORE_IMPORT_ERROR
    try:
        return _extension("_core", "EHRFAST_CORE_MODULE")
    except ImportError as exc:  # source checkout without a build, or a broken build
        _CORE_IMPORT_ERROR = str(exc)
        return None


core: ModuleType | None = _load_core()


def require_core() -> ModuleType:
    """The compiled C++ core, or a clear error saying how to get it."""
    if core is None:
        raise BackendUnavailableError(
            "the ehrfast C++ core (ehrfast._core) is not built in this installation "
            f"({_CORE_IMPORT_ERROR}). Reinstall with `pip install .` from a checkout "
            "(needs a C++17 compiler and CMake), or use backend='reference'."
        )
    return core


def resolve_backend(requested: str | None, what: str) -> str:
    """"cpp" or "python": what runs a C++-accelerated step (``what`` names it in messages).

    ``requested`` is a call's ``backend=`` argument (None / "auto" defers to the process
    setting of ``core``); auto takes the C++ core when it is built, else the Python reference
    with one warning; "fast" (or "cpp") without a build is an error."""
    choice = choose("core", requested)
    if choice == "reference":
        return "python"
    if choice == "fast":
        require_core()
        return "cpp"
    if core is not None:
        return "cpp"
    warn_once(f"ehrfast C++ core not built; {what} uses the slower Python reference")
    return "python"


def cuda_module() -> ModuleType | None:
    """``ehrfast._cuda`` (the CUDA kernels), or None when it is not built."""
    try:
        return importlib.import_module("ehrfast._cuda")
    except ImportError:
        return None


def cuda_host_module() -> ModuleType | None:
    """``ehrfast._cuda_host``: the CUDA kernels' sources compiled for the CPU (tests), or None.
    ``EHRFAST_CUDA_HOST_MODULE`` may name another build of it (e.g. one with sanitizers)."""
    try:
        return _extension("_cuda_host", "EHRFAST_CUDA_HOST_MODULE")
    except ImportError:
        if os.environ.get("EHRFAST_CUDA_HOST_MODULE"):
            raise
        return None


# ---- what this installation can run ------------------------------------------------------


def _torch() -> ModuleType | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def _gpu_name() -> str | None:
    torch = _torch()
    return torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None


def _auto_path(name: str, gpu: str | None) -> str:
    """What "auto" runs for ``name`` here, in words."""
    triton = importlib.util.find_spec("triton") is not None
    if name == "core":
        return "cpp" if core is not None else f"python (core not built: {_CORE_IMPORT_ERROR})"
    if gpu is None:
        return f"{COMPONENTS[name].reference} (no CUDA device)"
    if name == "sampling_step":
        return "cuda" if cuda_module() is not None else "torch (ehrfast._cuda not built)"
    if name in ("cross_attention", "slot_attention"):
        return "triton after its one-time self-test" if triton else "reference (triton not installed)"
    flex = _torch() is not None and importlib.util.find_spec("torch.nn.attention.flex_attention") is not None
    return "flex after its one-time self-test" if flex else "sdpa (torch has no FlexAttention)"


@dataclass(frozen=True)
class BackendRow:
    """One line of ``ehrfast info``'s backend table."""

    component: str
    title: str
    choice: str  # auto | fast | reference
    source: str  # default | the variable | configure | use
    runs: str  # what runs with that choice on this machine


def backend_table() -> list[BackendRow]:
    """The resolved choice of every component and what it runs on this machine."""
    gpu = _gpu_name()
    rows = []
    for name, c in COMPONENTS.items():
        choice, source = setting(name)
        runs = {"reference": c.reference, "fast": c.fast}.get(choice) or _auto_path(name, gpu)
        rows.append(BackendRow(name, c.title, choice, source, runs))
    return rows


def build_info() -> dict[str, Any]:
    """Which compiled backends and accelerators this installation can use.

    Keys: ``version``, ``cpp_core`` (bool), ``cpp_openmp`` (bool), ``cuda_kernels`` (bool),
    ``cuda_host_kernels`` (bool: the CUDA kernels' sources built for the CPU, for tests),
    ``triton`` (bool, importable), ``torch`` (version or None), ``gpu`` (device name or None),
    ``core_error`` (why the core failed to import, or None), ``backends`` (the resolved table).
    """
    from ehrfast._version import __version__

    torch = _torch()
    return {
        "version": __version__,
        "cpp_core": core is not None,
        "cpp_openmp": bool(core is not None and core.built_with_openmp()),
        "cuda_kernels": cuda_module() is not None,
        "cuda_host_kernels": cuda_host_module() is not None,
        "triton": importlib.util.find_spec("triton") is not None,
        "torch": torch.__version__ if torch is not None else None,
        "gpu": _gpu_name(),
        "core_error": _CORE_IMPORT_ERROR,
        "backends": [vars(row) for row in backend_table()],
    }


__all__ = ["CHOICES", "COMPONENTS", "BackendRow", "backend_table", "build_info", "choose", "configure", "core", "cuda_module", "torch_device",
           "cuda_host_module", "refresh", "require_core", "resolve_backend", "setting", "use", "warn_once"]
