"""The deterministic mode: with a real (small, random) GPT, trajectories and probabilities are
bit-identical whatever the batching — one slot, six slots, every subject at once, a subject
scored alone — because each subject's logits are computed on shapes set by that subject only
(``IsolatedDecoder``). The Markov-chain double cannot show this: its logits are a table lookup."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ehrfast.infer.decoders import CachedDecoder, IsolatedDecoder, decoder_for
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.model import GPT, GPTConfig

VOCAB = 64


def _gpt(modality: str) -> GPT:
    torch.manual_seed(7)
    cfg = GPTConfig(vocab_size=VOCAB, block_size=96, n_layer=2, n_head=4, n_embd=64, modality=modality,
                    n_prs_traits=0 if modality == "none" else 3, n_soft_tokens=2)
    return GPT(cfg).eval()


def _run(decoder, contexts, keys, prs):
    paths = {}

    def sink(subjects, tokens, elapsed, counts, first_hit):
        for k, s in enumerate(subjects.tolist()):  # a path's tokens are its first counts[k, j] entries
            valid = np.arange(tokens.shape[2])[None] < counts[k][:, None]
            paths[keys[s]] = (np.where(valid, tokens[k], -1), np.where(valid, elapsed[k], np.nan), counts[k].copy(), first_hit[k].copy())

    settings = SamplingSettings(horizon_us=5e7, n_samples=6, max_new_tokens=28, temperature=1.3, top_p=0.97, stop_ids=(1, 2), seed=11)
    res = sample_trajectories(decoder, contexts, np.array([5, 6, 7]), np.linspace(0, 2e6, VOCAB), settings, subject_keys=keys,
                              prs=prs, trajectory_sink=sink)
    return res, paths


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_one_slot_six_slots_and_all_subjects_are_bit_identical(modality):
    model = _gpt(modality)
    rng = np.random.default_rng(3)
    contexts = [rng.integers(8, VOCAB, int(n)) for n in rng.integers(3, 60, 14)]
    keys = list(range(100, 114))
    prs = None if modality == "none" else rng.standard_normal((14, 3)).astype(np.float32)
    runs = [_run(IsolatedDecoder(model, 28, "cpu", slots), contexts, keys, prs) for slots in (1, 6, len(contexts))]
    first, first_paths = runs[0]
    assert len(set(first.tokens_generated.tolist())) > 1  # subjects finish at different steps: slots refill mid-run
    for res, paths in runs[1:]:
        np.testing.assert_array_equal(res.sample_path_probability, first.sample_path_probability)  # every bit
        np.testing.assert_array_equal(res.sample_hit, first.sample_hit)
        np.testing.assert_array_equal(res.tokens_generated, first.tokens_generated)
        for key in keys:
            for a, b in zip(paths[key], first_paths[key]):
                np.testing.assert_array_equal(a, b)
    # a subject scored on its own, in a call of one, gets what it got among thirteen others
    k = 9
    alone, alone_paths = _run(IsolatedDecoder(model, 28, "cpu", 4), [contexts[k]], [keys[k]], None if prs is None else prs[k: k + 1])
    np.testing.assert_array_equal(alone.sample_path_probability[0], first.sample_path_probability[k])
    np.testing.assert_array_equal(alone_paths[keys[k]][0], first_paths[keys[k]][0])


def test_deterministic_mode_samples_what_the_batched_decoder_samples_in_distribution():
    """The two modes compute the same model: logits agree to float rounding (not bit for bit)."""
    model = _gpt("none")
    rng = np.random.default_rng(5)
    contexts = [rng.integers(8, VOCAB, int(n)) for n in (4, 30, 17, 50)]
    batched, isolated = CachedDecoder(model, 10, "cpu", 4), IsolatedDecoder(model, 10, "cpu", 4)
    a, b = batched.begin(4, 3, 50), isolated.begin(4, 3, 50)
    assert a == b == 4
    la = batched.fill(np.arange(4), contexts, None)
    lb = isolated.fill(np.arange(4), contexts, None)
    torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)
    token = torch.as_tensor(rng.integers(8, VOCAB, 12))
    torch.testing.assert_close(batched.step(token, torch.ones(12, dtype=torch.bool)), isolated.step(token, torch.ones(12, dtype=torch.bool)),
                               rtol=1e-4, atol=1e-5)


def test_decoder_for_picks_the_isolated_decoder_when_deterministic():
    model = _gpt("none")
    contexts = [np.arange(8, 20)]
    assert type(decoder_for(model, contexts, 10, "cpu")) is CachedDecoder
    assert type(decoder_for(model, contexts, 10, "cpu", deterministic=True)) is IsolatedDecoder


def test_deterministic_cpu_sampling_runs_on_one_intra_op_thread_and_restores_the_count():
    # MKL's small matmuls round differently with 1 and 2 threads on some CPUs (seen on AMD EPYC):
    # the deterministic mode pins one thread so a 2-thread process and a 1-thread worker agree
    import torch

    from ehrfast.infer.decoders import reproducible_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with reproducible_threads(True, "cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with reproducible_threads(False, "cpu"):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
