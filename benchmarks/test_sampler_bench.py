"""Continuous batching vs fixed batches, on CPU, same model, same subjects, same run.

Timelines end at different steps (stop tokens): with fixed batches every batch decodes until
its slowest subject ends, while the engine refills a subject's slot as soon as its samples
end. The fixed-batch baseline is the same engine called once per batch of subjects (nothing
waits, so nothing is refilled) — what the engine did before it had slots. Both give the same
paths (checked); the GPU version of this workload is ``sampler_vs_hf.py``.

    pytest benchmarks/test_sampler_bench.py --benchmark-only --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ehrfast.infer.decoders import CachedDecoder
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.model import GPT, GPTConfig


def sample(model, contexts, target_ids, durations_us, **kw):
    """``sample_trajectories`` with the sampling settings given as keywords, as the tests write them."""
    names = {f.name for f in dataclasses.fields(SamplingSettings)}
    settings = SamplingSettings(**{k: v for k, v in kw.items() if k in names})
    return sample_trajectories(model, contexts, target_ids, durations_us, settings, **{k: v for k, v in kw.items() if k not in names})

SUBJECTS, SLOTS, SAMPLES, NEW_TOKENS, VOCAB = 48, 8, 8, 64, 256
STOPS = list(range(1, 9))  # 8 of 256 tokens end a timeline: lengths spread from a few tokens to K


@pytest.fixture(scope="module")
def workload():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=VOCAB, block_size=192, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    model = GPT(cfg).eval()
    with torch.no_grad():  # make stop tokens likely enough that timelines end at different steps
        model.lm_head.weight[STOPS] += 0.15 * model.lm_head.weight.std()
    rng = np.random.default_rng(0)
    contexts = [rng.integers(9, VOCAB, rng.integers(32, 97)) for _ in range(SUBJECTS)]
    return model, contexts


def _sample(model, contexts, first_key=0):
    return sample(CachedDecoder(model, NEW_TOKENS, "cpu", SLOTS), contexts, np.array([9, 10]), np.ones(VOCAB),
                               horizon_us=1e9, n_samples=SAMPLES, max_new_tokens=NEW_TOKENS, stop_ids=STOPS, seed=0,
                               subject_keys=np.arange(first_key, first_key + len(contexts)))


def continuous(model, contexts):
    return _sample(model, contexts)


def fixed_batches(model, contexts):
    parts = [_sample(model, contexts[i:i + SLOTS], first_key=i) for i in range(0, len(contexts), SLOTS)]
    return np.concatenate([p.sample_path_probability for p in parts]), np.concatenate([p.tokens_generated for p in parts])


def test_continuous_batching(benchmark, workload):
    benchmark.group = f"sampling {SUBJECTS} subjects x {SAMPLES}, {SLOTS} slots, K={NEW_TOKENS}, CPU"
    model, contexts = workload
    result = benchmark.pedantic(continuous, args=(model, contexts), rounds=3, iterations=1)
    paths, generated = fixed_batches(model, contexts)
    np.testing.assert_allclose(result.sample_path_probability, paths, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(result.tokens_generated, generated)
    per_path = result.tokens_generated / SAMPLES
    assert per_path.min() < NEW_TOKENS / 2 < per_path.max()  # the workload really has ragged timelines


def test_fixed_batches(benchmark, workload):
    benchmark.group = f"sampling {SUBJECTS} subjects x {SAMPLES}, {SLOTS} slots, K={NEW_TOKENS}, CPU"
    model, contexts = workload
    benchmark.pedantic(fixed_batches, args=(model, contexts), rounds=3, iterations=1)
