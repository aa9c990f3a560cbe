"""Backend selection: the fast path when built, a clear error when forced but missing."""

from __future__ import annotations

import ast
import os
import shutil
import warnings
from pathlib import Path

import pytest

import ehrfast
from ehrfast import _backend


def test_version_and_build_info():
    assert ehrfast.__version__
    info = ehrfast.build_info()
    assert isinstance(info["cpp_core"], bool)
    if os.environ.get("EHRFAST_REQUIRE_CORE") == "1":
        assert info["cpp_core"], info["core_error"]
        if shutil.which("nvcc") and os.environ.get("EHRFAST_CUDA", "AUTO").upper() != "OFF":
            assert info["cuda_kernels"], "nvcc is on PATH but ehrfast._cuda was not built"


def test_unknown_backend():
    with pytest.raises(ValueError, match="must be 'auto', 'cpp' or 'python'"):
        _backend.resolve_backend("fortran", "bed packing")


def test_missing_core_falls_back_once_or_errors(monkeypatch):
    monkeypatch.setattr(_backend, "core", None)
    monkeypatch.setattr(_backend, "_warned", set())
    with pytest.warns(RuntimeWarning, match="Python reference"):
        assert _backend.resolve_backend(None, "thing") == "python"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _backend.resolve_backend("auto", "thing") == "python"  # warned once only
    with pytest.raises(_backend.BackendUnavailableError, match="pip install"):
        _backend.resolve_backend("cpp", "thing")
    assert _backend.resolve_backend("python", "thing") == "python"


@pytest.mark.parametrize("name", ["_core", "_cuda"])
def test_stub_lists_exactly_the_compiled_names(name):
    """ehrfast/_core.pyi and _cuda.pyi must describe the modules that are really built."""
    module = _backend.core if name == "_core" else _backend._cuda_module()
    if module is None:
        pytest.skip(f"ehrfast.{name} not built")
    stub = ast.parse((Path(ehrfast.__file__).parent / f"{name}.pyi").read_text())
    stubbed = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    compiled = {n for n in dir(module) if not n.startswith("_")}
    assert stubbed == compiled
