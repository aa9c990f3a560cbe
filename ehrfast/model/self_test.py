"""One-time checks before "auto" trusts an accelerated attention path (the Triton cross-attention
and slot-attention kernels, compiled FlexAttention) with a model: a version that miscompiles or rejects the inputs
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
        if why := _off(what, name, a, b, q.dtype):
            return why
    return None


def output_mismatch(what: str, fast: Callable[[], torch.Tensor], reference: Callable[[], torch.Tensor], dtype: torch.dtype,
                    device: torch.device) -> str | None:
    """``mismatch_with_reference`` for a forward-only path: ``fast()`` (inputs in ``dtype``)
    against ``reference()`` (fp32 inputs), without gradients or autocast."""
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        try:
            got, want = fast(), reference()
        except Exception as error:  # noqa: BLE001 — any failure means: do not use the fast path
            return f"{what} failed its self-test ({type(error).__name__}: {str(error)[:300]})"
    return _off(what, "output", got, want, dtype)


def _off(what: str, name: str, got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> str | None:
    """Why ``got`` is too far from ``want`` (None when it is close): fp32 within 1e-4, 16-bit
    within 3e-2 of the largest reference value."""
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    got, want = got.detach().float(), want.detach().float()
    err = float((got - want).abs().max() / want.abs().max().clamp(min=1e-2))
    if not err <= tolerance:
        return f"{what}'s {name} is off by {err:.2e} (relative) in its self-test for {dtype}"
    return None
