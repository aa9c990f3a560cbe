"""One line that says which CPU a benchmark ran on: model, cores, the vector units the
kernels can use, and whether the C++ core is built (and with OpenMP) — so that numbers from
different machines are never compared as if they were one."""

from __future__ import annotations

import os
import platform

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_line() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    from ehrfast.backends import core

    build = "C++ core not built" if core is None else \
        f"C++ core{' + OpenMP' if core.built_with_openmp() else ''}, kernels compiled for {core.kernel_isa()}"
    simd = " ".join(f for f in SIMD_FLAGS if f in flags) or "unknown"
    return f"cpu: {model}, {os.cpu_count()} cores; SIMD: {simd}; {build}"


if __name__ == "__main__":
    print(cpu_line())
