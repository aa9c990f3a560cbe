"""One line that says which CPU a benchmark ran on: model, cores, the vector units the
kernels can use, and whether the C++ core is built (and with OpenMP) — so that numbers from
different machines are never compared as if they were one."""

from __future__ import annotations

import os
import platform

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


def amd_generation(family: int | None, model: int | None) -> str | None:
    """The Zen generation a VM's bare "AMD EPYC" model name hides (AMD's family/model numbers)."""
    if family == 26:
        return "Zen 5"
    if family == 25 and model is not None:
        return "Zen 4" if 0x10 <= model < 0x20 or 0x60 <= model < 0x80 or 0xA0 <= model < 0xB0 else "Zen 3"
    return "Zen 1/2" if family == 23 else None


def cpu_line() -> str:
    model, flags, info = platform.processor() or platform.machine(), set(), {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "vendor_id", "cpu family", "model"):
                    info.setdefault(key, value.strip())
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    if "model name" in info:
        family, number = (int(info[k]) if info.get(k, "").isdigit() else None for k in ("cpu family", "model"))
        generation = amd_generation(family, number) if info.get("vendor_id") == "AuthenticAMD" else None
        model = f"{info['model name']} (family {info.get('cpu family', '?')} model {info.get('model', '?')}" + \
            (f", {generation})" if generation else ")")
    from ehrfast.backends import core

    build = "C++ core not built" if core is None else \
        f"C++ core{' + OpenMP' if core.built_with_openmp() else ''}, PRS kernels on {core.kernel_isa()} " \
        f"({'chosen at run time' if core.kernel_isa_chosen_at_run_time() else 'compiled for'})"
    simd = " ".join(f for f in SIMD_FLAGS if f in flags) or "unknown"
    return f"cpu: {model}, {os.cpu_count()} cores; SIMD: {simd}; {build}"


if __name__ == "__main__":
    print(cpu_line())
