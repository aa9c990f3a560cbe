"""One-time checks before "auto" trusts an accelerated attention path (the Triton cross-attention
kernel, compiled FlexAttention) with a model: a version that miscompiles or rejects the inputs
costs a warning and the torch path, not a training run."""

from __future__ import annotations

from collections.abc import Callable

import torch


def mismatch_with_reference(what: str, fast: Callable, reference: Callable, q: torch.Tensor, k: torch.Tensor,
                            v: torch.Tensor) -> str | None:
    """Runs ``fast(q, k, v)`` and ``reference`` on fp32 copies, forward and backward, and returns
    why they disagree (None when they agree): fp32 within 1e-4, 16-bit within 3e-2 of the
    largest reference value. Gradients are on and autocast off whatever the caller is under
    (no_grad / inference_mode / autocast: scoring, prefill)."""
    tolerance = 1e-4 if q.dtype == torch.float32 else 3e-2
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(q.device.type, enabled=False):
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]  # a clone leaves inference mode
        try:
            got = fast(*leaves)
            got_grads = torch.autograd.grad(got.float().square().sum(), leaves)
            want = reference(*(t.float() for t in leaves))
            want_grads = torch.autograd.grad(want.square().sum(), leaves)
        except Exception as error:  # noqa: BLE001 — any failure means: do not use the fast path
            return f"{what} failed its self-test ({type(error).__name__}: {str(error)[:300]})"
    for name, a, b in zip(("output", "dq", "dk", "dv"), (got, *got_grads), (want, *want_grads)):
        a, b = a.detach().float(), b.detach().float()
        err = float((a - b).abs().max() / b.abs().max().clamp(min=1e-2))
        if not err <= tolerance:
            return f"{what}'s {name} is off by {err:.2e} (relative) in its self-test for {q.dtype}"
    return None
