"""The CUDA sampling step (``ehrfast._cuda.sampling_step``, ``csrc/sampler/``) behind the same
interface as ``ehrfast.infer.sampling_step.reference_step`` — and the same kernel source compiled
for the CPU (``ehrfast._cuda_host``), which the tests run where there is no GPU.

The kernel takes raw device pointers (the extension does not link libtorch), so everything it
reads is checked here first: device, dtype, shape and contiguity of every tensor. Each row's
step number is its ``generated`` count, on the device, so rows of one batch may be at
different steps (continuous batching) and a captured CUDA graph could replay the step.
"""

from __future__ import annotations

import torch

from ehrfast.backends import cuda_host_module, cuda_module
from ehrfast.errors import BackendUnavailableError, InvalidInputError
from ehrfast.infer.sampling_step import EventRecord, EventSettings, SamplerState, StepSettings

_LOGITS_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}  # ehrfast._cuda.LogitsDtype
MAX_EVENTS = 16  # kMaxEvents of csrc/sampler/sampling_step.hpp (checked against the module in the tests)


def unavailable_reason(device, vocab: int) -> str | None:
    """Why the kernel cannot run on ``device`` for this vocabulary, or None when it can."""
    if not str(device).startswith("cuda"):
        return f"device {device!r} is not a CUDA device"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    ext = cuda_module()
    if ext is None:
        return "ehrfast._cuda is not built in this installation (reinstall with nvcc on PATH)"
    index = torch.device(device).index
    limit = ext.max_vocab(torch.cuda.current_device() if index is None else index)
    if vocab > limit:
        return f"vocabulary of {vocab} tokens exceeds the kernel's shared-memory limit of {limit} on this GPU"
    return None


def _check(name: str, t: torch.Tensor, dtype: torch.dtype, n: int, device: torch.device) -> None:
    if t.dtype != dtype or t.shape != (n,) or t.device != device or not t.is_contiguous():
        raise InvalidInputError(f"{name}: need a contiguous [{n}] {dtype} tensor on {device}, got {tuple(t.shape)} {t.dtype} on {t.device}")


def kernel_step(logits: torch.Tensor, state: SamplerState, settings: StepSettings, events: EventSettings | None = None,
                record: EventRecord | None = None, p_target: torch.Tensor | None = None) -> torch.Tensor | None:
    """One step on the GPU: logits [n_rows, V] float32 / bfloat16 / float16 (rows contiguous;
    a column slice of a wider buffer is fine). Updates ``state`` (and, with competing
    ``events``, ``record``: as ``sampling_step.event_step``) in place; writes this step's target
    mass into ``p_target`` [n_rows] float64 when given and returns it."""
    ext = cuda_module()
    if ext is None:
        raise BackendUnavailableError("ehrfast._cuda is not built in this installation")
    if not logits.is_cuda:
        raise InvalidInputError(f"logits must be on a CUDA device, got {logits.device}")
    _checked(logits, state, settings, p_target, events, record)
    ext.sampling_step(step_args(ext, logits, state, settings, p_target, events, record), torch.cuda.current_stream(logits.device).cuda_stream)
    return p_target


def host_kernel_step(logits: torch.Tensor, state: SamplerState, settings: StepSettings, events: EventSettings | None = None,
                     record: EventRecord | None = None, p_target: torch.Tensor | None = None) -> torch.Tensor | None:
    """The same step run by the CUDA kernel's own source compiled for the CPU
    (``ehrfast._cuda_host``, an emulation of CUDA's execution model): CPU tensors; for tests."""
    ext = cuda_host_module()
    if ext is None:
        raise BackendUnavailableError("ehrfast._cuda_host is not built in this installation")
    if logits.device.type != "cpu":
        raise InvalidInputError(f"the host build of the kernel reads CPU tensors, got logits on {logits.device}")
    _checked(logits, state, settings, p_target, events, record)
    ext.sampling_step(step_args(ext, logits, state, settings, p_target, events, record), 0)
    return p_target


def _checked(logits: torch.Tensor, state: SamplerState, settings: StepSettings, p_target: torch.Tensor | None,
             events: EventSettings | None = None, record: EventRecord | None = None) -> None:
    """Device, dtype, shape and contiguity of every tensor the kernel reads: it takes raw pointers."""
    if logits.dim() != 2 or logits.dtype not in _LOGITS_DTYPES or logits.stride(1) != 1:
        raise InvalidInputError(f"logits must be [n_rows, V] float32/bfloat16/float16 with unit column stride, got "
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
    if (events is None) != (record is None):
        raise InvalidInputError("competing events need both the event settings and the event record")
    if events is not None:
        if not 1 <= events.n_events <= MAX_EVENTS:
            raise InvalidInputError(f"the kernel holds 1 to {MAX_EVENTS} event classes, got {events.n_events}")
        _check("events.event_class", events.event_class, torch.int16, vocab, device)
        _check("events.time_edges_us", events.time_edges_us, torch.float64, len(events.time_edges_us), device)
        for name, t, dtype in (("mc_event", record.mc_event, torch.int16), ("mc_token", record.mc_token, torch.int64),
                               ("mc_step", record.mc_step, torch.int32), ("mc_elapsed_us", record.mc_elapsed_us, torch.float64),
                               ("end_reason", record.end_reason, torch.int8), ("end_elapsed_us", record.end_elapsed_us, torch.float64)):
            _check(f"record.{name}", t, dtype, n, device)
        for name, t, shape in (("cif", record.cif, (n, events.n_events)), ("cif_time", record.cif_time, (n, events.n_events, events.n_bins))):
            if t.dtype != torch.float64 or tuple(t.shape) != shape or t.device != device or not t.is_contiguous():
                raise InvalidInputError(f"record.{name}: need a contiguous {list(shape)} float64 tensor on {device}, got "
                                        f"{tuple(t.shape)} {t.dtype} on {t.device}")


def step_args(ext, logits: torch.Tensor, state: SamplerState, settings: StepSettings, p_target: torch.Tensor | None,
              events: EventSettings | None = None, record: EventRecord | None = None):
    """The kernel's ``SamplingStepArgs`` for checked tensors: their device addresses, shapes and the task's scalars."""
    a = ext.SamplingStepArgs()
    a.logits, a.dtype = logits.data_ptr(), getattr(ext.LogitsDtype, _LOGITS_DTYPES[logits.dtype])
    a.n_rows, a.vocab, a.row_stride = logits.shape[0], logits.shape[1], logits.stride(0)
    a.subject_keys, a.sample_index = state.subject_keys.data_ptr(), state.sample_index.data_ptr()
    a.seed = settings.seed & 0xFFFFFFFFFFFFFFFF
    a.target_mask, a.stop_mask, a.durations_us = (t.data_ptr() for t in (settings.target_mask, settings.stop_mask, settings.durations_us))
    a.horizon_us, a.temperature, a.top_p, a.max_new_tokens = settings.horizon_us, settings.temperature, settings.top_p, settings.max_new_tokens
    a.alive, a.elapsed_us, a.log_survival = state.alive.data_ptr(), state.elapsed_us.data_ptr(), state.log_survival.data_ptr()
    a.hit, a.generated, a.next_token = state.hit.data_ptr(), state.generated.data_ptr(), state.next_token.data_ptr()
    a.p_target = 0 if p_target is None else p_target.data_ptr()
    if events is not None:
        a.event_class, a.n_events = events.event_class.data_ptr(), events.n_events
        a.time_edges_us, a.n_edges = events.time_edges_us.data_ptr(), len(events.time_edges_us)
        a.survival_epsilon, a.stop_at_event = events.survival_epsilon, int(events.stop_at_event)
        a.mc_event, a.mc_token, a.mc_step = record.mc_event.data_ptr(), record.mc_token.data_ptr(), record.mc_step.data_ptr()
        a.mc_elapsed_us, a.end_reason, a.end_elapsed_us = record.mc_elapsed_us.data_ptr(), record.end_reason.data_ptr(), record.end_elapsed_us.data_ptr()
        a.cif, a.cif_time = record.cif.data_ptr(), record.cif_time.data_ptr()
    return a
