"""Type stubs for ``ehrfast._cuda_host``: the CUDA kernels' own sources compiled for the CPU,
with CUDA's execution model emulated (``csrc/common/cuda_host.hpp``) — for tests. The same
entry points as ``ehrfast._cuda``, taking host pointers (CPU tensors' ``data_ptr()``); use them
through ``ehrfast.infer.cuda_sampling.host_kernel_step``."""

import numpy as np
import numpy.typing as npt

class LogitsDtype:
    """The dtype of the logits the sampling step reads."""

    float32: LogitsDtype
    bfloat16: LogitsDtype
    float16: LogitsDtype

class SamplingStepArgs:
    """Everything one sampling step reads and updates (see ``ehrfast._cuda.SamplingStepArgs``); host addresses."""

    logits: int
    dtype: LogitsDtype
    n_rows: int
    vocab: int
    row_stride: int
    subject_keys: int
    sample_index: int
    seed: int
    target_mask: int
    stop_mask: int
    durations_us: int
    horizon_us: float
    temperature: float
    top_p: float
    max_new_tokens: int
    alive: int
    elapsed_us: int
    log_survival: int
    hit: int
    generated: int
    next_token: int
    p_target: int
    # competing events (csrc/sampler/sampling_step.hpp): 0 pointers when not used
    event_class: int
    n_events: int
    time_edges_us: int
    n_edges: int
    survival_epsilon: float
    stop_at_event: int
    mc_event: int
    mc_token: int
    mc_step: int
    mc_elapsed_us: int
    end_reason: int
    end_elapsed_us: int
    cif: int
    cif_time: int
    def __init__(self) -> None: ...

MAX_EVENTS: int  # event classes the kernel holds

def sampling_step(args: SamplingStepArgs, stream: int) -> None:
    """One sampling step for every row of ``args``, run on the CPU block by block (``stream`` is ignored)."""

def max_vocab(device: int) -> int:
    """Largest vocabulary the kernel holds in the emulated shared memory (an H100's 227 KiB per block)."""

def philox4x32_10(c0: int, c1: int, c2: int, c3: int, k0: int, k1: int) -> tuple[int, int, int, int]:
    """Philox4x32-10 of a 4-word counter and 2-word key (the kernel's code)."""

def uniform_pair(seed: int, subject: int, sample: int, step: int) -> tuple[float, float]:
    """The kernel's (u_first, u_continue) in [0, 1) for one (seed, subject, sample, step)."""

def set_schedule(order: str) -> None:
    """The order a block's threads run in between synchronization points: 'forward' or 'reverse'."""

def emulator_selftest(name: str, n_blocks: int, n_threads: int, values: npt.NDArray[np.float64]
                      ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Runs one of the emulator's self-test kernels (block_sum, warp_scan_and_max, and mistakes it must report)."""
