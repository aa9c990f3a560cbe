"""What the Triton kernels share: whether one can run on given tensors, and their matrix-product
switches. (The auto / fast / reference choice itself is ``ehrfast.backends``.)"""

from __future__ import annotations

import os

import torch

MAX_HEAD_DIM = 256
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def triton_unavailable_reason(kernels, q: torch.Tensor) -> str | None:
    """Why a Triton kernel (``kernels``: its module, None when triton failed to import) cannot
    run on ``q``'s device, dtype and head dim; None when it can. CPU tensors run only under
    Triton's interpreter (``TRITON_INTERPRET=1``), which the tests use."""
    if kernels is None:
        return "triton is not installed"
    if not q.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        return "tensors are not on a CUDA device (set TRITON_INTERPRET=1 to interpret on the CPU)"
    if q.dtype not in DTYPES:
        return f"dtype {q.dtype} (float16, bfloat16 or float32 only)"
    if q.shape[-1] > MAX_HEAD_DIM:
        return f"head dim {q.shape[-1]} exceeds {MAX_HEAD_DIM}"
    return None


def dot_options(dtype: torch.dtype, on_cuda: bool) -> dict:
    """The kernels' matrix-product switches: fp32 inputs use exact fp32 products (not TF32);
    the interpreter (CPU tensors) cannot multiply 16-bit matrices, so it upcasts them."""
    return dict(UPCAST=not on_cuda, PRECISION="ieee" if dtype == torch.float32 else "tf32")
