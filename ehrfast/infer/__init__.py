"""Zero-shot risk: tasks, the trajectory sampler (torch reference / CPU path), path probabilities."""

from ehrfast.infer.decoders import CachedDecoder, RecomputeDecoder
from ehrfast.infer.sampler import SamplingResult, sample_trajectories, sampling_step, wilson_interval
from ehrfast.infer.task import Task

__all__ = ["CachedDecoder", "RecomputeDecoder", "SamplingResult", "Task", "sample_trajectories", "sampling_step", "wilson_interval"]
