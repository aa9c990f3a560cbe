"""The fused cross-attention kernel against its torch reference, and the reference against the
definition. Without a GPU the kernel runs under Triton's interpreter (CPU tensors, numpy
arithmetic; 16-bit matrix products upcast to fp32 there), so the kernel's logic — segment
ranges, masks, padded head dims, atomics — is tested on every machine; the `gpu` tests run
the compiled kernel on CUDA with the acceptance grid."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrfast import backends
from ehrfast.model import GPT, GPTConfig
from ehrfast.model.kernels import cross_attention as ca

CUDA = torch.cuda.is_available()  # without one, conftest.py has the kernels interpreted

DEVICE = "cuda" if CUDA else "cpu"
needs_triton = pytest.mark.skipif(ca.triton_unavailable_reason(torch.empty(1, device=DEVICE)) is not None,
                                  reason=str(ca.triton_unavailable_reason(torch.empty(1, device=DEVICE))))
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 1e-2}


def by_definition(q, k5, v5, segment):
    """Each query alone: softmax over its own segment's keys (zero without a segment)."""
    b, h, lq, d = q.shape
    out = torch.zeros_like(q)
    for i in range(b):
        for t in range(lq):
            s = int(segment[i, t])
            if 0 <= s < k5.shape[1]:
                w = torch.softmax(torch.einsum("hd,hkd->hk", q[i, :, t], k5[i, s]) / d**0.5, dim=-1)
                out[i, :, t] = torch.einsum("hk,hkd->hd", w, v5[i, s])
    return out


def random_case(seed, b, h, lq, d, n_seg, lk, dtype, device=DEVICE, sorted_segments=True):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, lq, d, generator=gen)
    k = torch.randn(b, n_seg, h, lk, d, generator=gen)
    v = torch.randn(b, n_seg, h, lk, d, generator=gen)
    seg = torch.randint(-1, n_seg + 1, (b, lq), generator=gen)  # -1 and n_seg: queries without a segment
    if sorted_segments:
        seg = seg.sort(dim=1).values
    grad = torch.randn(b, h, lq, d, generator=gen)
    return [t.to(device=device, dtype=dtype) for t in (q, k, v, grad)] + [seg.to(device)]


def relative_error(got, want):
    """Largest error over the largest reference value (at least 0.01: a gradient that is zero by
    construction — dq with a single key — has no scale of its own)."""
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).abs().max() / want.abs().max().clamp(min=1e-2))


def check_kernel(q, k, v, grad, seg, tolerance):
    """Output and the three gradients of the kernel vs the fp64 reference."""
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    out = ca.cross_attention(*leaves, seg, backend="triton")
    grads = torch.autograd.grad(out, leaves, grad)
    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
    want = ca.cross_attention_reference(*exact, seg)
    want_grads = torch.autograd.grad(want, exact, grad.double())
    for name, a, b in zip(("output", "dq", "dk", "dv"), (out, *grads), (want, *want_grads)):
        assert a.dtype == q.dtype and a.shape == b.shape, name
        assert relative_error(a, b) <= tolerance, f"{name}: relative error {relative_error(a, b):.2e} > {tolerance}"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 3), lq=st.integers(1, 20), n_seg=st.integers(1, 3), lk=st.integers(1, 5))
def test_reference_is_the_definition(seed, b, lq, n_seg, lk):
    q, k, v, _, seg = random_case(seed, b, 2, lq, 8, n_seg, lk, torch.float64, "cpu", sorted_segments=False)
    torch.testing.assert_close(ca.cross_attention_reference(q, k, v, seg), by_definition(q, k, v, seg), rtol=1e-10, atol=1e-10)
    if n_seg == 1:  # one key set: q_segment may be left out, k and v may be 4-d
        all_zero = torch.zeros(b, lq, dtype=torch.long)
        torch.testing.assert_close(ca.cross_attention_reference(q, k[:, 0], v[:, 0]), by_definition(q, k, v, all_zero))


def test_reference_gradients_are_finite_for_queries_without_a_segment():
    q, k, v, _, _ = random_case(0, 1, 2, 6, 8, 2, 3, torch.float64, "cpu")
    seg = torch.tensor([[-1, 0, 0, 1, 2, 2]])
    leaves = [t.requires_grad_() for t in (q, k, v)]
    assert torch.autograd.gradcheck(lambda *a: ca.cross_attention_reference(*a, seg), leaves)
    out = ca.cross_attention_reference(*leaves, seg)
    assert (out[:, :, [0, 4, 5]] == 0).all()


@needs_triton
@settings(max_examples=12 if not CUDA else 60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 2), h=st.integers(1, 3), lq=st.integers(1, 150),
       d=st.sampled_from([16, 24, 64, 120]), n_seg=st.integers(1, 4), lk=st.integers(1, 20),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]), sorted_segments=st.booleans())
def test_kernel_matches_reference(seed, b, h, lq, d, n_seg, lk, dtype, sorted_segments):
    q, k, v, grad, seg = random_case(seed, b, h, lq, d, n_seg, lk, dtype, sorted_segments=sorted_segments)
    check_kernel(q, k, v, grad, seg, TOLERANCE[dtype])


@needs_triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("d", [64, 120, 128])
@pytest.mark.parametrize("lk", [1, 10, 64])
def test_kernel_acceptance_grid(lk, d, dtype):
    """The issue's grid: Lk in {1, 10, 64}, D in {64, 120, 128}, ragged segment ids."""
    lq = 1000 if CUDA else 140
    q, k, v, grad, _ = random_case(lk * d, 2, 3, lq, d, 5, lk, dtype)
    lengths = [[37, 400, 1, 300, 262], [999, 1, 0, 0, 0]] if CUDA else [[37, 50, 1, 30, 22], [139, 1, 0, 0, 0]]
    seg = torch.stack([torch.repeat_interleave(torch.arange(5), torch.tensor(n)) for n in lengths]).to(q.device)
    seg = torch.cat([seg, torch.full((2, lq - seg.shape[1]), -1, device=q.device)], dim=1)  # trailing padding
    check_kernel(q, k, v, grad, seg, TOLERANCE[dtype])
    check_kernel(q, k[:, :1], v[:, :1], grad, None, TOLERANCE[dtype])  # unpacked: one key set, no segments


@needs_triton
def test_backward_is_deterministic_when_asked():
    q, k, v, grad, seg = random_case(5, 2, 2, 300, 64, 3, 10, torch.float32)
    leaves = [t.requires_grad_() for t in (q, k, v)]
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = [torch.autograd.grad(ca.cross_attention(*leaves, seg, backend="triton"), leaves, grad) for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@needs_triton
def test_packed_cross_model_with_the_kernel_equals_the_reference(monkeypatch):
    torch.manual_seed(2)
    cfg = GPTConfig.preset("tiny", vocab_size=30, modality="cross", n_prs_traits=4, n_embd=48, n_head=2)
    model = GPT(cfg).to(DEVICE)
    idx = torch.randint(1, 30, (2, 40), device=DEVICE)
    seg = torch.tensor([[0] * 11 + [1] * 29, [0] * 25 + [2] * 15], device=DEVICE)
    prs = torch.randn(2, 3, 4, device=DEVICE)
    results = []
    for backend in ("triton", "reference"):
        monkeypatch.setenv("EHRFAST_CROSS_ATTENTION", backend)
        backends.refresh()
        model.zero_grad()
        logits = model(idx, prs=prs, segment_ids=seg)
        logits.square().mean().backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (la, ga), (lb, gb) = results
    torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_auto_uses_the_reference_on_cpu_and_with_dropout(monkeypatch):
    def kernel_must_not_run(*args):
        raise AssertionError("the Triton kernel ran")

    monkeypatch.setattr(ca._TritonCrossAttention, "apply", kernel_must_not_run)
    monkeypatch.delenv("EHRFAST_CROSS_ATTENTION", raising=False)
    backends.refresh()
    q, k, v, _, seg = random_case(0, 1, 2, 9, 16, 2, 3, torch.float32, "cpu")
    ca.cross_attention(q, k, v, seg)
    if CUDA:
        q, k, v, _, seg = random_case(0, 1, 2, 9, 16, 2, 3, torch.float32, "cuda")
        ca.cross_attention(q, k, v, seg, dropout_p=0.1)


def test_bad_inputs_are_clear_errors(monkeypatch):
    q, k, v, _, seg = random_case(0, 2, 2, 9, 16, 3, 4, torch.float32, "cpu")
    with pytest.raises(ValueError, match="need q_segment"):
        ca.cross_attention(q, k, v)
    with pytest.raises(ValueError, match="q_segment must be an integer tensor"):
        ca.cross_attention(q, k, v, seg.float())
    with pytest.raises(ValueError, match="q_segment must be an integer tensor"):
        ca.cross_attention(q, k, v, seg[:, :5])
    with pytest.raises(ValueError, match="do not fit q"):
        ca.cross_attention(q, k[..., :8], v[..., :8], seg)
    with pytest.raises(ValueError, match="one shape"):
        ca.cross_attention(q, k, v[:, :2], seg)
    with pytest.raises(ValueError, match="backend"):
        ca.cross_attention(q, k, v, seg, backend="cudnn")
    with pytest.raises(ValueError, match="no dropout"):
        ca.cross_attention(q, k, v, seg, dropout_p=0.1, backend="triton")
    monkeypatch.setenv("EHRFAST_CROSS_ATTENTION", "banana")  # not a choice (fast is one now)
    backends.refresh()
    with pytest.raises(ValueError, match="EHRFAST_CROSS_ATTENTION"):
        ca.cross_attention(q, k, v, seg)


@needs_triton
@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_self_test_passes_inside_no_grad_and_inference_mode(context):
    """Scoring calls the model under no_grad / inference_mode; the one-time self-test still
    needs gradients, and must not fail (and disable the kernel) there."""
    ca._self_test_failure.cache_clear()
    with getattr(torch, context)():
        assert ca._self_test_failure(torch.device(DEVICE), torch.float32, 24, 3) is None
    ca._self_test_failure.cache_clear()


@pytest.mark.gpu
def test_auto_picks_the_kernel_on_cuda():
    for dtype in (torch.bfloat16, torch.float32):
        assert ca._self_test_failure(torch.device("cuda", torch.cuda.current_device()), dtype, 120, 10) is None
        q, k, v, _, seg = random_case(0, 1, 2, 9, 120, 2, 10, dtype, "cuda")
        assert ca._auto_uses_triton(q, k, 0.0)
