"""The CUDA sampling kernel against the torch reference step (GPU only; skipped without CUDA).

Same logits, same Philox counters: the kernel must draw the same tokens and accumulate the
same path probabilities (≤ 1e-5), for every logits dtype, temperatures, top-p (with ties),
vocabularies that do and do not divide the block, and rows that have already finished.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ehrfast._backend import _cuda_module
from ehrfast.infer.sampler import SamplerState, StepSettings, reference_step, sample_trajectories

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_cuda_module() is None, reason="ehrfast._cuda not built")]


def _settings(vocab, rng, device, top_p, temperature, horizon=50.0, max_new_tokens=1000):
    target = torch.zeros(vocab, dtype=torch.bool)
    target[torch.as_tensor(rng.choice(vocab, size=max(1, vocab // 10), replace=False))] = True
    stop = torch.zeros(vocab, dtype=torch.bool)
    stop[torch.as_tensor(rng.choice(vocab, size=max(1, vocab // 50), replace=False))] = True
    durations = torch.as_tensor(rng.exponential(1.0, vocab) * (rng.random(vocab) < 0.3))
    return StepSettings(target.to(device), stop.to(device), durations.to(device), horizon, max_new_tokens, temperature, top_p, seed=1234)


def _state(n, rng, device):
    state = SamplerState.start(rng.integers(-(2**62), 2**62, n), rng.integers(0, 10, n), device)
    state.alive[torch.as_tensor(rng.random(n) < 0.1, device=device)] = False  # some rows already finished
    state.elapsed_us += torch.as_tensor(rng.random(n) * 10, device=device)
    state.generated += torch.as_tensor(rng.integers(0, 50, n), dtype=torch.int32, device=device)  # rows at different steps
    return state


def _clone(state: SamplerState) -> SamplerState:
    return SamplerState(*(t.clone() for t in vars(state).values()))


@pytest.mark.parametrize("vocab", [7, 257, 4096, 9001])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("top_p,temperature", [(1.0, 1.0), (0.9, 1.0), (0.5, 0.7), (0.95, 1.3)])
def test_kernel_step_matches_reference(vocab, dtype, top_p, temperature):
    from ehrfast.infer.cuda_sampling import kernel_step

    rng = np.random.default_rng(vocab)
    device = torch.device("cuda")
    n = 300
    logits = (torch.randn(n, vocab, generator=torch.Generator().manual_seed(vocab)) * 3).to(dtype)
    logits[:, : vocab // 3] = logits[:, :1]  # ties: many tokens share one value (the nucleus boundary keeps them all)
    logits = logits.to(device)
    settings = _settings(vocab, rng, device, top_p, temperature)
    for _ in range(3):
        state = _state(n, rng, device)
        expected_state = _clone(state)
        p_kernel = torch.zeros(n, dtype=torch.float64, device=device)
        kernel_step(logits, state, settings, p_kernel)
        p_reference = reference_step(logits.float(), expected_state, settings)
        torch.testing.assert_close(p_kernel, p_reference, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(state.next_token, expected_state.next_token, rtol=0, atol=0)
        torch.testing.assert_close(state.log_survival, expected_state.log_survival, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(state.elapsed_us, expected_state.elapsed_us, rtol=1e-12, atol=0)
        for name in ("alive", "hit", "generated"):
            torch.testing.assert_close(getattr(state, name), getattr(expected_state, name), rtol=0, atol=0, msg=name)


def test_kernel_never_samples_outside_the_nucleus_or_into_the_target():
    from ehrfast.infer.cuda_sampling import kernel_step

    rng = np.random.default_rng(0)
    device = torch.device("cuda")
    n, vocab = 2048, 1000
    logits = torch.randn(n, vocab, device=device, dtype=torch.float64).float()
    settings = _settings(vocab, rng, device, top_p=0.6, temperature=1.0)
    probs = torch.softmax(logits.double(), -1)
    for step in range(5):
        state = SamplerState.start(np.arange(n), np.zeros(n, np.int64), device)
        state.generated += step
        kernel_step(logits, state, settings)
        p = probs[torch.arange(n, device=device), state.next_token]
        above = (probs * (probs > p[:, None])).sum(-1)
        assert (above < 0.6).all() and not settings.target_mask[state.next_token].any()


def test_kernel_engine_gives_the_reference_engine_paths():
    """Whole trajectories on a Markov chain: kernel and reference steps, same seed → same paths."""
    device = "cuda"
    rng = np.random.default_rng(3)
    vocab = 40
    transition = rng.dirichlet(np.ones(vocab) * 0.5, size=vocab)
    log_p = torch.log(torch.as_tensor(transition, dtype=torch.float32, device=device))

    def model(idx, prs=None):
        return log_p[idx]

    durations = rng.exponential(1.0, vocab) * (rng.random(vocab) < 0.4)
    contexts = [rng.integers(0, vocab, 3) for _ in range(20)]
    kw = dict(horizon_us=30.0, n_samples=16, max_new_tokens=64, stop_ids=[0], seed=5, top_p=0.9, device=device,
              subject_keys=np.arange(20) + 10**17)
    kernel = sample_trajectories(model, contexts, np.array([5, 6]), durations, step_backend="cuda", **kw)
    reference = sample_trajectories(model, contexts, np.array([5, 6]), durations, step_backend="torch", **kw)
    np.testing.assert_allclose(kernel.sample_path_probability, reference.sample_path_probability, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(kernel.sample_hit, reference.sample_hit)
    np.testing.assert_array_equal(kernel.tokens_generated, reference.tokens_generated)


def test_kernel_rejects_bad_tensors():
    from ehrfast.infer.cuda_sampling import kernel_step

    rng = np.random.default_rng(0)
    settings = _settings(10, rng, "cuda", 1.0, 1.0)
    state = SamplerState.start(np.arange(4), np.zeros(4, np.int64), "cuda")
    with pytest.raises(ValueError, match="logits"):
        kernel_step(torch.zeros(4, 10, dtype=torch.float64, device="cuda"), state, settings)
    with pytest.raises(ValueError, match="state.alive"):
        bad = _clone(state)
        bad.alive = bad.alive.to(torch.int32)
        kernel_step(torch.zeros(4, 10, device="cuda"), bad, settings)
    with pytest.raises(ValueError, match="settings.durations_us"):
        kernel_step(torch.zeros(4, 11, device="cuda"), state, settings)


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_cuda_graph_decoding_gives_the_eager_and_cpu_paths(modality):
    """CachedDecoder on CUDA: decode steps replayed from a captured CUDA graph, with slots
    refilled mid-run (stop tokens end subjects at different steps), sample what eager CUDA
    decoding and the CPU engine sample."""
    from ehrfast.infer.decoders import CachedDecoder
    from ehrfast.model import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=64, block_size=96, n_layer=2, n_head=2, n_embd=64, modality=modality,
                    n_prs_traits=0 if modality == "none" else 4, n_soft_tokens=3, dropout=0.0)
    model = GPT(cfg).eval()
    rng = np.random.default_rng(0)
    contexts = [rng.integers(1, 64, n) for n in rng.integers(3, 40, 11)]
    prs = None if modality == "none" else rng.standard_normal((11, 4)).astype(np.float32)
    kw = dict(horizon_us=1e9, n_samples=5, max_new_tokens=24, seed=2, prs=prs, top_p=0.9, stop_ids=list(range(1, 6)))
    cpu = sample_trajectories(CachedDecoder(model, 24, "cpu", 3), contexts, np.array([7, 8]), np.ones(64), device="cpu", **kw)
    model.cuda()
    runs = {graphs: sample_trajectories(CachedDecoder(model, 24, "cuda", 3, cuda_graphs=graphs), contexts, np.array([7, 8]), np.ones(64),
                                        device="cuda", **kw) for graphs in (False, True)}
    assert len(set(cpu.tokens_generated.tolist())) > 1
    for name, run in (("eager", runs[False]), ("cpu", cpu)):
        np.testing.assert_allclose(runs[True].sample_path_probability, run.sample_path_probability, rtol=1e-5, atol=1e-7, err_msg=name)
        np.testing.assert_array_equal(runs[True].tokens_generated, run.tokens_generated, err_msg=name)
