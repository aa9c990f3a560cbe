"""GPT decoder: Hugging Face GPT-2 state-dict equivalence, PRS modalities, prefix loss masking."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ehrfast import backends
from ehrfast.model import GPT, GPTConfig, decoding


def loss_reference(model: GPT, idx: torch.Tensor, prs=None, ignore_index: int = 0) -> torch.Tensor:
    """Next-token cross-entropy over token positions; soft tokens never enter the loss and
    targets equal to ``ignore_index`` ([PAD]) are skipped."""
    logits = model(idx[:, :-1], prs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), idx[:, 1:].reshape(-1), ignore_index=ignore_index)

transformers = pytest.importorskip("transformers")


def _hf(cross: bool, seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=61, n_positions=48, n_embd=40, n_layer=3, n_head=4, add_cross_attention=cross,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return cfg, model


@pytest.mark.parametrize("cross", [False, True])
def test_hf_logits_agree(cross):
    hf_cfg, hf = _hf(cross)
    cfg = GPTConfig.from_hf(hf_cfg)
    ours = GPT.from_hf_state_dict(hf.state_dict(), cfg).eval()
    idx = torch.randint(0, 61, (3, 20))
    memory = torch.randn(3, 5, 40) if cross else None
    with torch.no_grad():
        expected = hf(input_ids=idx, encoder_hidden_states=memory).logits
        got = ours(idx, soft_tokens=memory)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    back = ours.to_hf_state_dict()
    for k, v in hf.state_dict().items():
        if k in back:
            torch.testing.assert_close(back[k], v, rtol=0, atol=0)


def test_state_dict_mismatch_is_a_clear_error():
    hf_cfg, hf = _hf(cross=True)
    with pytest.raises(ValueError, match="unexpected"):
        GPT.from_hf_state_dict(hf.state_dict(), GPTConfig.from_hf(hf_cfg, modality="none"))


def test_prs_modalities_and_prefix_loss():
    torch.manual_seed(0)
    for modality in ("cross", "prefix"):
        cfg = GPTConfig.preset("tiny", vocab_size=30, modality=modality, n_prs_traits=7)
        model = GPT(cfg).eval()
        idx = torch.randint(1, 30, (2, 12))
        prs = torch.randn(2, 7)
        logits = model(idx, prs=prs)
        assert logits.shape == (2, 12, 30)
        soft = model.prs_encoder(prs)
        assert soft.shape == (2, cfg.n_soft_tokens, cfg.n_embd) and soft.abs().max() < 1
        torch.testing.assert_close(model(idx, soft_tokens=soft), logits)
        other = model(idx, prs=prs + 3)
        assert not torch.allclose(other, logits)  # the PRS reaches the logits
        # the loss covers token positions only: it equals a manual CE on the returned logits
        manual = torch.nn.functional.cross_entropy(model(idx[:, :-1], prs=prs).reshape(-1, 30), idx[:, 1:].reshape(-1))
        torch.testing.assert_close(loss_reference(model, idx, prs=prs), manual)
    with pytest.raises(ValueError, match="needs prs"):
        model(idx)
    with pytest.raises(ValueError, match="prs must be"):
        model(idx, prs=torch.randn(2, 3))


def test_config_validation_and_presets():
    assert GPTConfig.preset("paper", vocab_size=100).head_dim == 120  # not a power of two
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="modality"):
        GPTConfig(vocab_size=10, modality="soft")
    model = GPT(GPTConfig.preset("tiny", vocab_size=10))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 65, dtype=torch.long))


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_packed_rows_equal_separate_rows_and_do_not_leak(modality):
    torch.manual_seed(1)
    cfg = GPTConfig.preset("tiny", vocab_size=25, modality=modality, n_prs_traits=0 if modality == "none" else 5)
    model = GPT(cfg).eval()
    a, b = torch.randint(1, 25, (1, 7)), torch.randint(1, 25, (1, 9))
    prs = torch.randn(1, 2, 5) if modality != "none" else None
    packed = torch.cat([a, b], dim=1)
    seg = torch.tensor([[0] * 7 + [1] * 9])
    with torch.no_grad():
        out = model(packed, prs=prs, segment_ids=seg)
        alone_a = model(a, prs=prs[:, 0] if prs is not None else None)
        alone_b = model(b, prs=prs[:, 1] if prs is not None else None)
    torch.testing.assert_close(out[:, :7], alone_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[:, 7:], alone_b, rtol=1e-5, atol=1e-5)
    # changing subject A's tokens (or PRS) leaves subject B's logits unchanged
    a2 = torch.randint(1, 25, (1, 7))
    prs2 = prs.clone() if prs is not None else None
    if prs2 is not None:
        prs2[:, 0] += 5
    with torch.no_grad():
        changed = model(torch.cat([a2, b], dim=1), prs=prs2, segment_ids=seg)
    torch.testing.assert_close(changed[:, 7:], out[:, 7:], rtol=0, atol=1e-6)
    assert not torch.allclose(changed[:, :7], out[:, :7])


def test_packed_prefix_rows_with_different_subject_counts():
    """Rows holding 1, 2 and 3 subjects (ids not starting at 0): every token's logits equal those
    of its subject run alone with its own soft-token prefix; the soft tokens never get logits."""
    torch.manual_seed(2)
    cfg = GPTConfig.preset("tiny", vocab_size=25, modality="prefix", n_prs_traits=5)
    model = GPT(cfg).eval()
    seg = torch.tensor([[1] * 12, [0] * 5 + [1] * 7, [0] * 3 + [2] * 4 + [3] * 5])
    idx = torch.randint(1, 25, (3, 12))
    prs = torch.randn(3, 4, 5)
    with torch.no_grad():
        out = model(idx, prs=prs, segment_ids=seg)
        assert out.shape == (3, 12, 25)
        for r in range(3):
            for s in seg[r].unique():
                cols = seg[r] == s
                alone = model(idx[r : r + 1, cols], prs=prs[r : r + 1, int(s)])
                torch.testing.assert_close(out[r : r + 1, cols], alone, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="non-decreasing"):
        model(idx, prs=prs, segment_ids=seg.flip(1))


@pytest.mark.parametrize("modality", ["cross", "prefix", "none"])
def test_packed_rows_are_checked_against_block_size_and_bad_segment_ids(modality):
    """A packed subject may fill block_size positions (its prefix included), not one more; a
    subject's length counts its own tokens, not the row's."""
    cfg = GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=16, modality=modality,
                    n_prs_traits=3 if modality != "none" else 0, n_soft_tokens=4)
    model = GPT(cfg).eval()
    longest = cfg.block_size - (cfg.n_soft_tokens if modality == "prefix" else 0)
    prs = {} if modality == "none" else {"prs": torch.randn(2, 3, 3)}
    fits = torch.tensor([[0] * longest + [1] * 5, [0] * 3 + [1] * 3 + [2] * (longest - 1)])
    idx = torch.randint(1, 20, fits.shape)
    with torch.no_grad():
        assert model(idx, segment_ids=fits, **prs).shape == (2, longest + 5, 20)
        too_long = torch.tensor([[0] * (longest + 1) + [1] * 4, [0] * 3 + [1] * 3 + [2] * (longest - 1)])
        with pytest.raises(ValueError, match="spans more than block_size"):
            model(idx, segment_ids=too_long, **prs)
        with pytest.raises(ValueError, match=">= 0 and non-decreasing"):
            model(idx, segment_ids=fits - 1, **prs)
        with pytest.raises(ValueError, match="at least one position"):
            model(idx[:, :0], segment_ids=fits[:, :0], **prs)


def test_packed_prs_may_cover_more_subjects_than_the_inputs_show():
    # a row's last subject can be reduced to the final (target-only) token: inputs then hold one
    # segment fewer than the PRS tensor; that must work, not raise
    cfg = GPTConfig.preset("tiny", vocab_size=25, modality="cross", n_prs_traits=5)
    model = GPT(cfg).eval()
    idx = torch.randint(1, 25, (2, 10))
    seg = torch.zeros(2, 10, dtype=torch.long)
    prs = torch.randn(2, 2, 5)
    with torch.no_grad():
        out = model(idx, prs=prs, segment_ids=seg)
        alone = model(idx, prs=prs[:, 0])
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="S>=2"):
        model(idx, prs=prs[:, :1], segment_ids=torch.ones(2, 10, dtype=torch.long))


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_kv_cache_decoding_equals_full_forward(modality):
    """prefill + one decode step per token gives the logits a full forward pass gives."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=40, n_layer=2, n_head=2, n_embd=32, modality=modality,
                    n_prs_traits=0 if modality == "none" else 5, n_soft_tokens=3, dropout=0.0)
    model = GPT(cfg).eval()
    idx = torch.randint(0, 50, (3, 24))
    prs = None if modality == "none" else torch.randn(3, 5)
    with torch.no_grad():
        full = model(idx, prs)
        logits, state = decoding.prefill(model, idx[:, :10], prs, max_new_tokens=14)
        steps = [logits] + [decoding.decode_reference(model, idx[:, j], state) for j in range(10, 24)]
        torch.testing.assert_close(torch.stack(steps[:-1], 1), full[:, 9:23], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(steps[-1], full[:, 23], rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="KV cache holds"):
            decoding.decode_reference(model, idx[:, 0], state)  # the 15th new token: no room left
        with pytest.raises(ValueError, match="exceed block_size"):
            decoding.prefill(model, idx, prs, max_new_tokens=40)


def _slot_model(modality, seed):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=40, block_size=32, n_layer=2, n_head=2, n_embd=16, modality=modality,
                    n_prs_traits=0 if modality == "none" else 3, n_soft_tokens=2, dropout=0.0)
    return GPT(cfg).eval()


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_slot_decoding_equals_copied_histories(modality):
    """n samples per slot reading their subject's prefilled history in place (decode_slots) get
    the logits of n copies of it decoded with growing caches, each sample fed different tokens;
    left-padded subjects, a slot capacity longer than the histories; state updated in place."""
    model = _slot_model(modality, 4)
    idx = torch.randint(1, 40, (2, 9))
    pad = torch.tensor([5, 0])
    prs = None if modality == "none" else torch.randn(2, 3)
    n, steps = 3, 6
    nxt = torch.randint(1, 40, (2 * n, steps))
    with torch.no_grad():
        first, copied = decoding.prefill(model, idx, prs, max_new_tokens=steps, pad=pad)
        copied = copied.repeat_reference(n)
        slots = decoding.slot_state(model, 2, n, max_context=12, max_new_tokens=steps)
        position, write_position = slots.position, slots.write_position
        torch.testing.assert_close(decoding.fill_slots(model, slots, torch.tensor([0, 1]), idx, prs, pad=pad), first)
        for j in range(steps):
            torch.testing.assert_close(decoding.decode_slots(model, nxt[:, j], slots), decoding.decode_reference(model, nxt[:, j], copied), rtol=1e-5, atol=1e-5)
        assert slots.position is position and slots.write_position is write_position  # graph-safe: updated in place
        assert slots.layers[0].prefix_k.shape[0] == 2  # one history per subject, not per sample


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_refilling_a_slot_mid_run_leaves_the_other_slot_alone(modality):
    """Continuous batching: slot 0 gets a new subject after 3 steps; its samples then decode as
    in a fresh state, and slot 1's samples go on as if nothing happened."""
    model = _slot_model(modality, 5)
    idx = torch.randint(1, 40, (3, 8))
    pad = torch.tensor([0, 3, 6])
    prs = None if modality == "none" else torch.randn(3, 3)
    n = 2
    nxt = torch.randint(1, 40, (2 * n, 8))
    with torch.no_grad():
        running = decoding.slot_state(model, 2, n, max_context=8, max_new_tokens=8)
        decoding.fill_slots(model, running, torch.tensor([0, 1]), idx[:2], None if prs is None else prs[:2], pad=pad[:2])
        alone = decoding.slot_state(model, 2, n, max_context=8, max_new_tokens=8)
        decoding.fill_slots(model, alone, torch.tensor([0, 1]), idx[:2], None if prs is None else prs[:2], pad=pad[:2])
        for j in range(3):
            decoding.decode_slots(model, nxt[:, j], running)
            decoding.decode_slots(model, nxt[:, j], alone)
        refilled_logits = decoding.fill_slots(model, running, torch.tensor([0]), idx[2:], None if prs is None else prs[2:], pad=pad[2:])
        fresh = decoding.slot_state(model, 1, n, max_context=8, max_new_tokens=8)
        torch.testing.assert_close(refilled_logits, decoding.fill_slots(model, fresh, torch.tensor([0]), idx[2:], None if prs is None else prs[2:],
                                                                     pad=pad[2:]))
        for j in range(3, 8):
            out = decoding.decode_slots(model, nxt[:, j], running)
            torch.testing.assert_close(out[:n], decoding.decode_slots(model, nxt[:n, j], fresh), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out[n:], decoding.decode_slots(model, nxt[:, j], alone)[n:], rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="exceed block_size"):
            decoding.slot_state(model, 1, n, max_context=30, max_new_tokens=8)


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_left_padded_batch_decodes_like_each_row_alone(modality):
    torch.manual_seed(2)
    cfg = GPTConfig(vocab_size=40, block_size=32, n_layer=2, n_head=2, n_embd=16, modality=modality,
                    n_prs_traits=0 if modality == "none" else 3, n_soft_tokens=2, dropout=0.0)
    model = GPT(cfg).eval()
    lengths = [3, 9, 6]
    rows = [torch.randint(1, 40, (n,)) for n in lengths]
    prs = None if modality == "none" else torch.randn(3, 3)
    nxt = torch.randint(1, 40, (3, 4))
    padded = torch.zeros(3, max(lengths), dtype=torch.long)
    for r, row in enumerate(rows):
        padded[r, max(lengths) - len(row):] = row
    with torch.no_grad():
        logits, state = decoding.prefill(model, padded, prs, max_new_tokens=4, pad=torch.tensor([max(lengths) - n for n in lengths]))
        batch = [logits] + [decoding.decode_reference(model, nxt[:, j], state) for j in range(3)]
        for r, row in enumerate(rows):
            full = model(torch.cat([row, nxt[r, :3]])[None], None if prs is None else prs[r:r + 1])[0]
            alone = torch.stack([b[r] for b in batch])
            torch.testing.assert_close(alone, full[len(row) - 1:], rtol=1e-5, atol=1e-5)


def packed_logits_and_grads(model, idx, seg, prs, backend, monkeypatch, grads: bool):
    monkeypatch.setenv("EHRFAST_PACKED_ATTENTION", backend)
    backends.refresh()
    model.zero_grad()
    with torch.set_grad_enabled(grads):
        logits = model(idx, prs=prs, segment_ids=seg)
    if not grads:
        return logits, []
    logits.float().square().mean().backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def packed_case(modality, device="cpu"):
    torch.manual_seed(5)
    cfg = GPTConfig.preset("tiny", vocab_size=30, modality=modality, n_prs_traits=0 if modality == "none" else 4)
    idx = torch.randint(1, 30, (2, 40), device=device)
    seg = torch.tensor([[0] * 11 + [1] * 29, [0] * 25 + [1] * 6 + [2] * 9], device=device)
    prs = None if modality == "none" else torch.randn(2, 3, 4, device=device)
    return GPT(cfg).to(device), idx, seg, prs


@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_packed_flex_attention_equals_the_dense_mask(modality, monkeypatch):
    """FlexAttention's block mask (run eagerly here, forward only — torch has no CPU backward
    for it; compiled on CUDA, where the gpu test checks gradients) gives the dense-mask SDPA's
    logits on packed rows, prefix padding included."""
    model, idx, seg, prs = packed_case(modality)
    flex, _ = packed_logits_and_grads(model, idx, seg, prs, "flex", monkeypatch, grads=False)
    dense, _ = packed_logits_and_grads(model, idx, seg, prs, "sdpa", monkeypatch, grads=False)
    torch.testing.assert_close(flex, dense, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("EHRFAST_PACKED_ATTENTION", "banana")  # not a choice (fast is one now)
    backends.refresh()
    with pytest.raises(ValueError, match="EHRFAST_PACKED_ATTENTION"):
        model(idx, prs=prs, segment_ids=seg)


@pytest.mark.gpu
@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_packed_attention_picks_flex_on_cuda(modality, monkeypatch):
    from ehrfast.model import packed_attention

    for dtype in (torch.bfloat16, torch.float32):
        assert packed_attention._flex_works(torch.device("cuda", torch.cuda.current_device()), dtype, 120)
    model, idx, seg, prs = packed_case(modality, "cuda")
    flex_logits, flex_grads = packed_logits_and_grads(model, idx, seg, prs, "auto", monkeypatch, grads=True)
    dense_logits, dense_grads = packed_logits_and_grads(model, idx, seg, prs, "sdpa", monkeypatch, grads=True)
    torch.testing.assert_close(flex_logits, dense_logits, rtol=1e-4, atol=1e-5)
    for a, b in zip(flex_grads, dense_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
