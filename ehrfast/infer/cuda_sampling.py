"""The CUDA sampling step (``ehrfast._cuda.sampling_step``, ``csrc/sampler/``) behind the same
interface as ``ehrfast.infer.sampler.reference_step``.

The kernel takes raw device pointers (the extension does not link libtorch), so everything it
reads is checked here first: device, dtype, shape and contiguity of every tensor. Each row's
step number is its ``generated`` count, on the device, so rows of one batch may be at
different steps (continuous batching) and a captured CUDA graph could replay the step.
"""

from __future__ import annotations

import torch

from ehrfast._backend import _cuda_module
from ehrfast.infer.sampler import SamplerState, StepSettings

_LOGITS_DTYPES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def unavailable_reason(device, vocab: int) -> str | None:
    """Why the kernel cannot run on ``device`` for this vocabulary, or None when it can."""
    if not str(device).startswith("cuda"):
        return f"device {device!r} is not a CUDA device"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    ext = _cuda_module()
    if ext is None:
        return "ehrfast._cuda is not built in this installation (reinstall with nvcc on PATH)"
    index = torch.device(device).index
    limit = ext.max_vocab(torch.cuda.current_device() if index is None else index)
    if vocab > limit:
        return f"vocabulary of {vocab} tokens exceeds the kernel's shared-memory limit of {limit} on this GPU"
    return None


def _check(name: str, t: torch.Tensor, dtype: torch.dtype, n: int, device: torch.device) -> None:
    if t.dtype != dtype or t.shape != (n,) or t.device != device or not t.is_contiguous():
        raise ValueError(f"{name}: need a contiguous [{n}] {dtype} tensor on {device}, got {tuple(t.shape)} {t.dtype} on {t.device}")


def kernel_step(logits: torch.Tensor, state: SamplerState, settings: StepSettings,
                p_target: torch.Tensor | None = None) -> torch.Tensor | None:
    """One step on the GPU: logits [n_rows, V] float32 / bfloat16 / float16 (rows contiguous;
    a column slice of a wider buffer is fine). Updates ``state`` in place; writes this step's
    target mass into ``p_target`` [n_rows] float64 when given and returns it."""
    ext = _cuda_module()
    if ext is None:
        raise RuntimeError("ehrfast._cuda is not built in this installation")
    if logits.dim() != 2 or logits.dtype not in _LOGITS_DTYPES or not logits.is_cuda or logits.stride(1) != 1:
        raise ValueError(f"logits must be [n_rows, V] float32/bfloat16/float16 on a CUDA device with unit column stride, got "
                         f"{tuple(logits.shape)} {logits.dtype} on {logits.device}")
    n, vocab = logits.shape
    device = logits.device
    for name, t, dtype in (("subject_keys", state.subject_keys, torch.int64), ("sample_index", state.sample_index, torch.int64),
                           ("alive", state.alive, torch.bool), ("elapsed_us", state.elapsed_us, torch.float64),
                           ("log_survival", state.log_survival, torch.float64), ("hit", state.hit, torch.bool),
                           ("generated", state.generated, torch.int32), ("next_token", state.next_token, torch.int64)):
        _check(f"state.{name}", t, dtype, n, device)
    for name, t, dtype in (("target_mask", settings.target_mask, torch.bool), ("stop_mask", settings.stop_mask, torch.bool),
                           ("durations_us", settings.durations_us, torch.float64)):
        _check(f"settings.{name}", t, dtype, vocab, device)
    if p_target is not None:
        _check("p_target", p_target, torch.float64, n, device)
    ext.sampling_step(
        logits=logits.data_ptr(), dtype=_LOGITS_DTYPES[logits.dtype], n_rows=n, vocab=vocab, row_stride=logits.stride(0),
        subject_keys=state.subject_keys.data_ptr(), sample_index=state.sample_index.data_ptr(),
        seed=settings.seed & 0xFFFFFFFFFFFFFFFF, target_mask=settings.target_mask.data_ptr(), stop_mask=settings.stop_mask.data_ptr(),
        durations_us=settings.durations_us.data_ptr(), horizon_us=settings.horizon_us, temperature=settings.temperature,
        top_p=settings.top_p, max_new_tokens=settings.max_new_tokens, alive=state.alive.data_ptr(),
        elapsed_us=state.elapsed_us.data_ptr(), log_survival=state.log_survival.data_ptr(), hit=state.hit.data_ptr(),
        generated=state.generated.data_ptr(), next_token=state.next_token.data_ptr(),
        p_target=0 if p_target is None else p_target.data_ptr(), stream=torch.cuda.current_stream(device).cuda_stream)
    return p_target
