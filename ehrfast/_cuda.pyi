"""Type stubs for the CUDA extension ``ehrfast._cuda`` (built when nvcc is found).

The kernels take raw device pointers as integers (``tensor.data_ptr()``) and a CUDA stream
handle; use them through ``ehrfast.infer.cuda_sampling``, which validates every tensor first.
"""

class LogitsDtype:
    """The dtype of the logits the sampling step reads."""

    float32: LogitsDtype
    bfloat16: LogitsDtype
    float16: LogitsDtype

class SamplingStepArgs:
    """Everything one sampling step reads and updates; device pointers as integer addresses.

    logits [n_rows, row_stride] of ``dtype`` (the first ``vocab`` columns used);
    subject_keys / sample_index [n_rows] int64 (with generated, the row's step number, the
    random stream's counter); target_mask / stop_mask [vocab] uint8; durations_us [vocab]
    float64; state [n_rows]: alive and hit uint8, elapsed_us and log_survival float64,
    generated int32; next_token [n_rows] int64 out; p_target [n_rows] float64 out, or 0."""

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
    """One sampling step for every row of ``args`` on ``stream`` (a cudaStream_t as an integer)."""

def max_vocab(device: int) -> int:
    """Largest vocabulary the sampling kernel holds in shared memory on ``device`` (0: no usable device)."""

def philox4x32_10(c0: int, c1: int, c2: int, c3: int, k0: int, k1: int) -> tuple[int, int, int, int]:
    """Philox4x32-10 of a 4-word counter and 2-word key, computed on the host by the kernel's code."""

def uniform_pair(seed: int, subject: int, sample: int, step: int) -> tuple[float, float]:
    """The kernel's (u_first, u_continue) in [0, 1) for one (seed, subject, sample, step), on the host."""
