"""Zero-shot risk by sampling futures: the trajectory sampler (KV-cache decoders, the torch
reference step and the CUDA kernel), path probabilities, and cohort scoring.

Public API (imported on first use: the package's options load without torch)::

    score_cohort(checkpoint, data_dir, labels_path, task, out_path, ScoreOptions(...), *, meds_dir, prs_path) -> ScoreSummary
    sample_trajectories(decoder, contexts, target_ids, durations_us, SamplingSettings(...), ...) -> SamplingResult
    risk_level(p) -> [n] levels 1-5;  binomial_interval(k, n, method) -> (low, high)
"""

from typing import TYPE_CHECKING

from ehrfast._lazy import lazy_exports

_EXPORTS = {
    "CachedDecoder": "decoders", "RecomputeDecoder": "decoders", "ScoreOptions": "options", "SamplingResult": "sampler",
    "SamplingSettings": "sampler", "sample_trajectories": "sampler", "binomial_interval": "risk", "risk_level": "risk",
    "wilson_interval": "risk", "sampling_step": "sampling_step",
    "ScoreSummary": "score", "score_cohort": "score",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "CachedDecoder",
    "RecomputeDecoder",
    "SamplingResult",
    "SamplingSettings",
    "ScoreOptions",
    "ScoreSummary",
    "binomial_interval",
    "risk_level",
    "sample_trajectories",
    "sampling_step",
    "score_cohort",
    "wilson_interval",
]

if TYPE_CHECKING:
    from ehrfast.infer.decoders import CachedDecoder, RecomputeDecoder
    from ehrfast.infer.options import ScoreOptions
    from ehrfast.infer.risk import binomial_interval, risk_level, wilson_interval
    from ehrfast.infer.sampler import SamplingResult, SamplingSettings, sample_trajectories
    from ehrfast.infer.sampling_step import sampling_step
    from ehrfast.infer.score import ScoreSummary, score_cohort
