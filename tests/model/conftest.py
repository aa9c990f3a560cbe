"""Without a GPU the Triton kernels run under Triton's interpreter (CPU tensors). Triton reads
``TRITON_INTERPRET`` when a kernel is defined — the kernel modules are imported on first use,
after this runs."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
