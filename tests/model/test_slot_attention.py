"""The decode-step slot-attention kernel against its torch reference, and the reference against
the definition. Without a GPU the kernel runs under Triton's interpreter (CPU tensors; 16-bit
matrix products upcast to fp32 there), so its logic — valid-history masks, ragged write
positions, finished rows, padded head dims and row counts — is tested on every machine; the
`gpu` tests run the compiled kernel on CUDA at the paper's sizes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrfast import backends
from ehrfast.model import GPT, GPTConfig, decoding
from ehrfast.model.kernels import slot_attention as sa

CUDA = torch.cuda.is_available()  # without one, conftest.py has the kernels interpreted

DEVICE = "cuda" if CUDA else "cpu"
needs_triton = pytest.mark.skipif(sa.triton_unavailable_reason(torch.empty(1, device=DEVICE)) is not None,
                                  reason=str(sa.triton_unavailable_reason(torch.empty(1, device=DEVICE))))
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 1e-2}


def by_definition(q, prefix_k, prefix_v, prefix_valid, own_k, own_v, write_position, active):
    """Each row alone: softmax over its slot's valid history and its own positions ≤ its write position."""
    rows, h, _, d = q.shape
    n = rows // prefix_k.shape[0]
    out = torch.zeros(rows, h, 1, d, dtype=torch.float64)
    for r in range(rows):
        if not active[r]:
            continue
        s = r // n
        keys = torch.cat([prefix_k[s][:, prefix_valid[s]], own_k[r][:, : int(write_position[r]) + 1]], dim=1).double()
        values = torch.cat([prefix_v[s][:, prefix_valid[s]], own_v[r][:, : int(write_position[r]) + 1]], dim=1).double()
        w = torch.softmax(torch.einsum("hd,hkd->hk", q[r, :, 0].double(), keys) / d**0.5, dim=-1)
        out[r, :, 0] = torch.einsum("hk,hkd->hd", w, values)
    return out


def relative_error(got, want):
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).abs().max() / want.abs().max().clamp(min=1e-2))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 2), st.integers(2, 20), st.integers(1, 9), st.integers(0, 10**6))
def test_reference_is_the_definition(slots, n, heads, history, new, seed):
    inputs = sa.random_slot_inputs(slots, n, heads, history, new, 8, torch.float32, "cpu", seed)
    want = by_definition(*inputs).float()
    torch.testing.assert_close(sa.slot_attention_reference(*inputs), want, rtol=1e-5, atol=1e-6)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [64, 120, 128])
@pytest.mark.parametrize("n", [1, 10, 17])
def test_kernel_matches_the_reference(dtype, head_dim, n):
    """History lengths with partial tiles (70 = 64 + 6), own caches longer than one tile, write
    positions from 0 to K − 1, one finished row, rows per slot that do and do not fill 16."""
    inputs = sa.random_slot_inputs(3, n, 2, 70, 40, head_dim, dtype, DEVICE, seed=head_dim + n)
    got = sa.slot_attention(*inputs, backend="triton")
    want = sa.slot_attention_reference(*(t.float() if t.is_floating_point() else t for t in inputs))
    assert got.shape == want.shape and got.dtype == dtype
    assert relative_error(got, want) <= TOLERANCE[dtype]
    assert not got[~inputs[-1]].any()  # finished rows read nothing and get zeros


@needs_triton
@settings(max_examples=8, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 3), st.integers(1, 80), st.integers(1, 40), st.sampled_from([16, 24, 40]),
       st.integers(0, 10**6))
def test_kernel_matches_the_reference_on_random_shapes(slots, n, heads, history, new, head_dim, seed):
    inputs = sa.random_slot_inputs(slots, n, heads, history, new, head_dim, torch.float32, DEVICE, seed)
    assert relative_error(sa.slot_attention(*inputs, backend="triton"), sa.slot_attention_reference(*inputs)) <= 1e-4


@needs_triton
@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_slot_decoding_with_the_kernel_equals_the_reference(modality, monkeypatch):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=40, block_size=48, n_layer=2, n_head=2, n_embd=48, modality=modality,
                    n_prs_traits=0 if modality == "none" else 3, n_soft_tokens=2, dropout=0.0)
    model = GPT(cfg).to(DEVICE).eval()
    idx = torch.randint(1, 40, (2, 9), device=DEVICE)
    pad = torch.tensor([4, 0], device=DEVICE)
    prs = None if modality == "none" else torch.randn(2, 3, device=DEVICE)
    tokens = torch.randint(1, 40, (6, 5), device=DEVICE)
    logits = {}
    for backend in ("reference", "triton"):
        monkeypatch.setenv("EHRFAST_SLOT_ATTENTION", backend)
        backends.refresh()
        with torch.no_grad():
            state = decoding.slot_state(model, 2, 3, max_context=12, max_new_tokens=5)
            decoding.fill_slots(model, state, torch.tensor([0, 1], device=DEVICE), idx, prs, pad=pad)
            logits[backend] = torch.stack([decoding.decode_slots(model, tokens[:, j], state) for j in range(5)])
    torch.testing.assert_close(logits["triton"], logits["reference"], rtol=1e-4, atol=1e-4)


def test_auto_uses_the_reference_on_cpu(monkeypatch):
    def kernel_must_not_run(*args):
        raise AssertionError("the kernel ran on CPU tensors under backend='auto'")

    monkeypatch.setattr(sa, "_triton_slot_attention", kernel_must_not_run)
    monkeypatch.delenv("EHRFAST_SLOT_ATTENTION", raising=False)
    backends.refresh()
    inputs = sa.random_slot_inputs(2, 3, 2, 10, 4, 8, torch.float32, "cpu")
    torch.testing.assert_close(sa.slot_attention(*inputs), sa.slot_attention_reference(*inputs))


def test_bad_inputs_are_clear_errors(monkeypatch):
    inputs = list(sa.random_slot_inputs(2, 3, 2, 10, 4, 8, torch.float32, "cpu"))
    with pytest.raises(ValueError, match="own_k must be"):
        sa.slot_attention(*inputs[:4], inputs[4][:, :1], *inputs[5:], backend="reference")
    with pytest.raises(ValueError, match="write_position int64"):
        sa.slot_attention(*inputs[:6], inputs[6].int(), inputs[7], backend="reference")
    with pytest.raises(ValueError, match="whole number of rows per slot"):
        bad = [inputs[0][:5], *inputs[1:4], inputs[4][:5], inputs[5][:5], inputs[6][:5], inputs[7][:5]]
        sa.slot_attention(*bad, backend="reference")
    monkeypatch.setenv("EHRFAST_SLOT_ATTENTION", "banana")  # not a choice (fast is one now)
    backends.refresh()
    with pytest.raises(ValueError, match="EHRFAST_SLOT_ATTENTION"):
        sa.slot_attention(*inputs)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_kernel_at_the_paper_sizes_on_the_gpu():
    """The acceptance workload's shapes: 8 heads × 120 dims, 10 samples per subject, history
    1,024, K = 512, bf16; auto picks the kernel after its self-test."""
    inputs = sa.random_slot_inputs(32, 10, 8, 1024, 512, 120, torch.bfloat16, "cuda", seed=1)
    assert sa._auto_uses_triton(inputs[0])
    want = sa.slot_attention_reference(*(t.float() if t.is_floating_point() else t for t in inputs))
    assert relative_error(sa.slot_attention(*inputs), want) <= 1e-2
