"""Backend selection: the fast path when built, a clear error when forced but missing."""

from __future__ import annotations

import ast
import os
import shutil
import warnings
from pathlib import Path

import pytest

import ehrfast
from ehrfast import backends


def test_version_and_build_info():
    assert ehrfast.__version__
    info = ehrfast.build_info()
    assert isinstance(info["cpp_core"], bool)
    if os.environ.get("EHRFAST_REQUIRE_CORE") == "1":
        assert info["cpp_core"], info["core_error"]
        assert info["cuda_host_kernels"], "ehrfast._cuda_host (the CUDA kernels built for the CPU) is missing: its tests would skip"
        if shutil.which("nvcc") and os.environ.get("EHRFAST_CUDA", "AUTO").upper() != "OFF":
            assert info["cuda_kernels"], "nvcc is on PATH but ehrfast._cuda was not built"


@pytest.mark.skipif(backends.core is None, reason="C++ core not built")
def test_prs_kernels_run_on_a_vector_unit_this_cpu_has():
    """The unit kernel_isa() reports is one the CPU has, whether the build fixed it
    (-march=native) or picked it when loading (EHRFAST_NATIVE=OFF: x86-64-v4 / v3 / baseline)."""
    isa, picked = backends.core.kernel_isa(), backends.core.kernel_isa_chosen_at_run_time()
    assert isa in {"avx512f", "avx2", "avx", "sse2", "neon", "scalar"} and isinstance(picked, bool)
    cpuinfo = Path("/proc/cpuinfo")
    if isa in {"avx512f", "avx2", "avx"} and cpuinfo.exists():
        flags = set(next((ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")), "").split())
        assert isa in flags, f"kernels run on {isa}, which this CPU lacks"
        if picked:  # the resolver's levels: v4 needs all of AVX-512 F/BW/CD/DQ/VL, v3 AVX2 + FMA + BMI
            v4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
            assert (isa == "avx512f") == v4
            assert isa != "avx2" or {"avx2", "fma", "bmi1", "bmi2"} <= flags


def test_unknown_backend():
    with pytest.raises(ValueError, match="must be one of auto, fast, reference \\(or 'cpp' / 'python'\\)"):
        backends.resolve_backend("fortran", "bed packing")


def test_missing_core_falls_back_once_or_errors(monkeypatch):
    monkeypatch.setattr(backends, "core", None)
    monkeypatch.setattr(backends, "_warned", set())
    with pytest.warns(RuntimeWarning, match="Python reference"):
        assert backends.resolve_backend(None, "thing") == "python"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.resolve_backend("auto", "thing") == "python"  # warned once only
    with pytest.raises(backends.BackendUnavailableError, match="pip install"):
        backends.resolve_backend("cpp", "thing")
    assert backends.resolve_backend("python", "thing") == "python"


@pytest.mark.parametrize("name", ["_core", "_cuda", "_cuda_host"])
def test_stub_lists_exactly_the_compiled_names(name):
    """ehrfast/_core.pyi, _cuda.pyi and _cuda_host.pyi must describe the modules that are really built."""
    module = {"_core": backends.core, "_cuda": backends.cuda_module(), "_cuda_host": backends.cuda_host_module()}[name]
    if module is None:
        pytest.skip(f"ehrfast.{name} not built")
    stub = ast.parse((Path(ehrfast.__file__).parent / f"{name}.pyi").read_text())
    stubbed = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign)}  # constants such as MAX_EVENTS
    compiled = {n for n in dir(module) if not n.startswith("_")}
    assert stubbed == compiled


def test_one_vocabulary_and_the_old_names(monkeypatch):
    """auto | fast | reference for every component; each component's own names still work."""
    for name, c in backends.COMPONENTS.items():
        assert backends.choose(name, c.fast) == "fast" and backends.choose(name, c.reference) == "reference"
        assert backends.choose(name, "fast") == "fast" and backends.choose(name, "REFERENCE") == "reference"
    with pytest.raises(ValueError, match="EHRFAST_CROSS_ATTENTION"):
        monkeypatch.setenv("EHRFAST_CROSS_ATTENTION", "cudnn")
        backends.refresh()
        backends.choose("cross_attention")


def test_environment_is_read_once_and_overrides_nest(monkeypatch):
    monkeypatch.setenv("EHRFAST_PACKED_ATTENTION", "sdpa")
    backends.refresh()
    assert backends.setting("packed_attention") == ("reference", "EHRFAST_PACKED_ATTENTION")
    monkeypatch.setenv("EHRFAST_PACKED_ATTENTION", "flex")  # read once: a later change is not seen ...
    assert backends.choose("packed_attention") == "reference"
    backends.refresh()  # ... until the environment is read again
    assert backends.choose("packed_attention") == "fast"
    backends.configure(packed_attention="reference")
    try:
        assert backends.setting("packed_attention") == ("reference", "configure")
        with backends.use(packed_attention="fast"):
            assert backends.setting("packed_attention") == ("fast", "use")
            assert backends.choose("packed_attention", "reference") == "reference"  # a call's own choice wins
        assert backends.choose("packed_attention") == "reference"
    finally:
        backends.configure(packed_attention=None)
    assert backends.setting("packed_attention")[1] == "EHRFAST_PACKED_ATTENTION"


def test_info_prints_the_resolved_table(monkeypatch):
    monkeypatch.setenv("EHRFAST_SLOT_ATTENTION", "reference")
    backends.refresh()
    rows = {r.component: r for r in backends.backend_table()}
    assert set(rows) == set(backends.COMPONENTS)
    assert (rows["slot_attention"].choice, rows["slot_attention"].source, rows["slot_attention"].runs) == (
        "reference", "EHRFAST_SLOT_ATTENTION", "reference")
    assert rows["core"].runs == ("cpp" if backends.core is not None else rows["core"].runs)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ehrfast.cli", "info"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "EHRFAST_SLOT_ATTENTION": "reference"}).stdout
    assert "slot_attention" in out and "[EHRFAST_SLOT_ATTENTION]" in out and "packed_attention" in out
