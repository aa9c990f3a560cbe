"""A GPT-2-style decoder that reads polygenic risk scores, in plain PyTorch.

Learned positions, pre-LayerNorm blocks, GELU (tanh) MLP, tied LM head — GPT-2's layout, with
weights stored as GPT-2 stores them ([in, out] "Conv1D" matrices, the same parameter names),
so Hugging Face ``GPT2LMHeadModel`` state dicts load without reshaping. PRS enter through a
small encoder that maps the trait vector to ``n_soft_tokens`` soft tokens in (−1, 1), read
either by a cross-attention sub-layer in every block (``modality="cross"``, GPT-2's
``add_cross_attention``) or prepended to the token embeddings (``modality="prefix"``).

Shapes: ``idx`` [B, T] int64 token ids; ``prs`` [B, n_prs_traits] float; ``soft_tokens``
[B, n_soft, n_embd]; logits [B, T, vocab] (prefix positions are not returned).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ehrfast.errors import InvalidInputError
from ehrfast.model.caches import LayerCache, SlotCache
from ehrfast.model.config import GPTConfig
from ehrfast.model.kernels.cross_attention import cross_attention
from ehrfast.model.packed_attention import PackedMask, attend, packed_mask


class Conv1D(nn.Module):
    """GPT-2's linear layer: y = x @ weight + bias, weight [in, out]; ``bias=False``: y = x @ weight."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y = flat @ self.weight if self.bias is None else torch.addmm(self.bias, flat, self.weight)
        return y.reshape(*x.shape[:-1], -1)


def layer_norm(cfg: GPTConfig) -> nn.LayerNorm:
    return nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias)


def _heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """[B, L, C] -> [B, H, L, C/H]."""
    b, length, c = x.shape
    return x.view(b, length, n_head, c // n_head).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd, cfg.bias)
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd, cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | PackedMask | None = None,
                cache: LayerCache | SlotCache | None = None) -> torch.Tensor:
        """``mask`` [B, 1, T, S] bool (True = may attend), a ``PackedMask`` (packed rows), or
        None = plain causal. With ``cache``, x holds the positions after the cached ones: their
        keys and values are appended and ``mask`` covers all S filled positions (``GPT.prefill``
        / ``GPT.decode`` build it); a ``SlotCache`` masks for itself."""
        q, k, v = (_heads(t, self.n_head) for t in self.c_attn(x).split(x.shape[-1], dim=2))
        if isinstance(cache, SlotCache):
            return self.c_proj(cache.attend(q, k, v).transpose(1, 2).reshape(x.shape))
        if cache is not None:
            k, v = cache.append(k, v)
        y = attend(q, k, v, mask, dropout_p=self.dropout if self.training else 0.0)
        return self.c_proj(y.transpose(1, 2).reshape(x.shape))


class CrossAttention(nn.Module):
    """Queries from the tokens, keys/values from the soft tokens (GPT-2's crossattention).
    The attention itself is ``kernels.cross_attention``: the fused Triton kernel on CUDA."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.q_attn = Conv1D(cfg.n_embd, cfg.n_embd, cfg.bias)
        self.c_attn = Conv1D(cfg.n_embd, 2 * cfg.n_embd, cfg.bias)
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd, cfg.bias)
        self.dropout = cfg.dropout

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the soft tokens (computed once per subject when decoding):
        memory [B, M, C] -> [B, H, M, C/H]; packed memory [B, S, M, C] -> [B, S, H, M, C/H]."""
        *lead, m, c = memory.shape
        kv = self.c_attn(memory).view(*lead, m, 2, self.n_head, c // self.n_head)
        k, v = kv.unbind(-3)
        return k.transpose(-3, -2), v.transpose(-3, -2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
                segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``memory``: soft tokens [B, M, C] (or [B, S, M, C] for packed rows), or their (keys,
        values) from ``memory_kv``. ``segment_ids`` [B, T]: which of the S subjects' soft tokens
        each position reads (packed rows)."""
        q = _heads(self.q_attn(x), self.n_head)
        k, v = memory if isinstance(memory, tuple) else self.memory_kv(memory)
        y = cross_attention(q, k, v, segment_ids, dropout_p=self.dropout if self.training else 0.0)
        return self.c_proj(y.transpose(1, 2).reshape(x.shape))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = Conv1D(cfg.n_embd, 4 * cfg.n_embd, cfg.bias)
        self.c_proj = Conv1D(4 * cfg.n_embd, cfg.n_embd, cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = layer_norm(cfg)
        self.attn = SelfAttention(cfg)
        self.ln_2 = layer_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.modality == "cross":
            self.ln_cross_attn = layer_norm(cfg)
            self.crossattention = CrossAttention(cfg)

    def forward(self, x: torch.Tensor, memory=None, self_mask=None, segment_ids=None,
                cache: LayerCache | SlotCache | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), self_mask, cache))
        if memory is not None:
            x = x + self.drop(self.crossattention(self.ln_cross_attn(x), memory, segment_ids))
        return x + self.mlp(self.ln_2(x))


class PRSEncoder(nn.Module):
    """trait vector [B, n_traits] -> soft tokens [B, n_soft, n_embd] in (−1, 1).
    A row of NaN (a subject without genotypes) is replaced by a learned "missing" vector."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_soft, self.n_embd = cfg.n_soft_tokens, cfg.n_embd
        self.hidden = nn.Linear(cfg.n_prs_traits, cfg.prs_hidden)
        self.out = nn.Linear(cfg.prs_hidden, cfg.n_embd * cfg.n_soft_tokens)
        self.missing = nn.Parameter(torch.zeros(cfg.n_prs_traits))

    def forward(self, prs: torch.Tensor) -> torch.Tensor:
        prs = prs.to(self.hidden.weight.dtype)  # float32 traits read by a bf16 model
        missing = torch.isnan(prs).all(dim=-1, keepdim=True)
        prs = torch.where(missing, self.missing.to(prs.dtype).expand_as(prs), torch.nan_to_num(prs))
        z = self.out(F.gelu(self.hidden(prs)))
        return (2 * torch.sigmoid(z) - 1).view(prs.shape[0], self.n_soft, self.n_embd)


def _segment_starts(segment_ids: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: True where a packed row's subject begins (its first position)."""
    return torch.cat([torch.ones_like(segment_ids[:, :1], dtype=torch.bool), segment_ids[:, 1:] != segment_ids[:, :-1]], dim=1)


def _positions_in_segment(starts: torch.Tensor) -> torch.Tensor:
    """[B, T] int64: each position's offset from the start of its segment."""
    index = torch.arange(starts.shape[1], device=starts.device).expand_as(starts)
    first = torch.cummax(torch.where(starts, index, torch.zeros_like(index)), dim=1).values
    return index - first


@dataclass
class PackedLayout:
    """Where packed rows' subjects begin, and the few facts about them that the host needs
    (shapes, validation), read from the device in one transfer: a packed training step waits
    for the GPU once here instead of once per fact."""

    starts: torch.Tensor  # [B, T] bool: a subject's first token
    begun: torch.Tensor  # [B, T] int64: subjects begun up to each token (>= 1)
    positions: torch.Tensor  # [B, T] int64: each token's position within its subject
    decreasing: bool  # some row's segment ids go down
    negative: bool  # some segment id is below 0
    n_segments: int  # largest segment id + 1
    most_subjects_in_a_row: int
    longest_subject: int  # tokens

    @classmethod
    def of(cls, segment_ids: torch.Tensor) -> PackedLayout:
        starts = _segment_starts(segment_ids)
        begun = starts.long().cumsum(1)
        positions = _positions_in_segment(starts)
        decreasing = (segment_ids[:, 1:] < segment_ids[:, :-1]).any()
        facts = torch.stack([decreasing.long(), (segment_ids.min() < 0).long(), segment_ids.max().long() + 1, begun[:, -1].max(),
                             positions.max() + 1]).tolist()
        return cls(starts, begun, positions, bool(facts[0]), bool(facts[1]), *facts[2:])


def _insert_prefixes(x: torch.Tensor, segment_ids: torch.Tensor, layout: PackedLayout, soft: torch.Tensor):
    """Packed prefix rows: inserts each subject's soft tokens before its first token.
    x [B, T, C], segment_ids [B, T], soft [B, S, n_soft, C] -> (x [B, L, C], segment ids [B, L]
    with -1 for the padding that evens out rows holding fewer subjects, and token_index [B, T]:
    where each input token went)."""
    b, t, c = x.shape
    n_soft = soft.shape[2]
    starts, begun = layout.starts, layout.begun
    token_index = torch.arange(t, device=x.device) + begun * n_soft
    length = t + layout.most_subjects_in_a_row * n_soft
    rows = torch.arange(b, device=x.device)
    out = x.new_zeros(b, length, c)
    seg = torch.full((b, length), -1, dtype=segment_ids.dtype, device=x.device)
    out[rows[:, None], token_index] = x
    seg[rows[:, None], token_index] = segment_ids
    row, at = starts.nonzero(as_tuple=True)  # every subject's first token
    subject = segment_ids[row, at]
    prefix = (at + (begun[row, at] - 1) * n_soft)[:, None] + torch.arange(n_soft, device=x.device)  # [R, n_soft]
    out[row[:, None], prefix] = soft[row, subject].to(out.dtype)
    seg[row[:, None], prefix] = subject[:, None]
    return out, seg, token_index


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
                wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
                ln_f=layer_norm(cfg),
            )
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied
        self.prs_encoder = PRSEncoder(cfg) if cfg.modality != "none" and cfg.n_prs_traits > 0 else None
        nn.init.normal_(self.transformer.wte.weight, std=0.02)
        nn.init.normal_(self.transformer.wpe.weight, std=0.01)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def soft_tokens(self, prs: torch.Tensor | None, soft_tokens: torch.Tensor | None, batch: int,
                    segments: int | None = None) -> torch.Tensor | None:
        """The soft tokens a batch reads (None for modality "none"), from ``prs`` through the PRS
        encoder or given directly, with every modality and shape check in one place. Unpacked
        rows: prs [B, n_traits] or soft_tokens [B, n_soft, C] -> [B, n_soft, C]. Packed rows
        (``segments`` = subjects present per row): prs [B, S >= segments, n_traits] or
        soft_tokens [B, S, n_soft, C] -> [B, S, n_soft, C]."""
        cfg = self.config
        if cfg.modality == "none":
            if prs is not None or soft_tokens is not None:
                raise InvalidInputError("this model has modality 'none': pass neither prs nor soft_tokens")
            return None
        packed = segments is not None
        if soft_tokens is not None:
            ok = soft_tokens.dim() == (4 if packed else 3) and soft_tokens.shape[0] == batch and soft_tokens.shape[-1] == cfg.n_embd
            if not ok or (packed and soft_tokens.shape[1] < segments):
                want = f"[B={batch}, S>={segments}, n_soft, {cfg.n_embd}]" if packed else f"[B={batch}, n_soft, {cfg.n_embd}]"
                raise InvalidInputError(f"{'packed ' if packed else ''}soft_tokens must be {want}, got {tuple(soft_tokens.shape)}")
            return soft_tokens
        if prs is None or self.prs_encoder is None:
            need = f"[B, S, {cfg.n_prs_traits}]" if packed else f"[B, {cfg.n_prs_traits}]"
            why = "this model has no PRS encoder (n_prs_traits = 0); pass soft_tokens" if self.prs_encoder is None and prs is not None \
                else f"modality {cfg.modality!r} needs prs {need} or soft_tokens"
            raise InvalidInputError(why)
        if not packed:
            if prs.shape != (batch, cfg.n_prs_traits):
                raise InvalidInputError(f"prs must be [B={batch}, {cfg.n_prs_traits}], got {tuple(prs.shape)}")
            return self.prs_encoder(prs)
        if prs.dim() != 3 or prs.shape[0] != batch or prs.shape[1] < segments or prs.shape[2] != cfg.n_prs_traits:
            raise InvalidInputError(f"packed {cfg.modality} rows need prs [B={batch}, S>={segments}, {cfg.n_prs_traits}], "
                                    f"got {tuple(prs.shape)}")
        n_seg = prs.shape[1]
        return self.prs_encoder(prs.reshape(batch * n_seg, -1)).view(batch, n_seg, cfg.n_soft_tokens, cfg.n_embd)

    def embed(self, idx: torch.Tensor, positions: torch.Tensor, memory: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """Input embeddings of tokens ``idx`` [B, T] at ``positions`` ([B, T] or [T]): token plus
        position embedding. A prefix model given its soft tokens ``memory`` [B, n_soft, C] puts
        them first, at positions 0 … n_soft − 1, and shifts the tokens' positions by n_soft.
        Returns (x [B, n_prefix + T, C], the memory cross-attention reads (None for prefix and
        none models), n_prefix)."""
        x = self.transformer.wte(idx)
        if memory is None or self.config.modality != "prefix":
            return x + self.transformer.wpe(positions), memory, 0
        b, n_soft = memory.shape[:2]
        prefix_positions = torch.arange(n_soft, device=idx.device).expand(b, n_soft)
        positions = torch.cat([prefix_positions, positions.expand(b, -1) + n_soft], dim=1)
        return torch.cat([memory.to(x.dtype), x], dim=1) + self.transformer.wpe(positions), None, n_soft

    def hidden_states(self, idx: torch.Tensor, prs=None, soft_tokens=None, segment_ids=None) -> torch.Tensor:
        """Final-LayerNorm outputs [B, T, n_embd] of the token positions."""
        if segment_ids is not None:
            return self._packed_hidden_states(idx, prs, soft_tokens, segment_ids)
        b, t = idx.shape
        memory = self.soft_tokens(prs, soft_tokens, b)
        n_prefix = memory.shape[1] if memory is not None and self.config.modality == "prefix" else 0
        if n_prefix + t > self.config.block_size:
            raise InvalidInputError(f"sequence of {n_prefix + t} positions exceeds block_size {self.config.block_size}")
        x, memory, n_prefix = self.embed(idx, torch.arange(t, device=idx.device), memory)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, memory)
        return self.transformer.ln_f(x)[:, n_prefix:]

    def _packed_hidden_states(self, idx, prs, soft_tokens, segment_ids) -> torch.Tensor:
        """Packed rows: several subjects per row. ``segment_ids`` [B, T] int64, non-decreasing
        along each row, name each position's subject (an index into ``prs`` [B, S, n_traits] or
        ``soft_tokens`` [B, S, n_soft, n_embd], which give each subject its own soft tokens).
        Self-attention is block-diagonal causal and positions restart at every subject, so no
        information crosses subjects. Cross-attention reads the subject's own soft tokens;
        prefix models get each subject's soft tokens inserted before its first token."""
        cfg = self.config
        b, t = idx.shape
        if segment_ids.shape != idx.shape:
            raise InvalidInputError(f"segment_ids must have the shape of idx {tuple(idx.shape)}, got {tuple(segment_ids.shape)}")
        if t == 0:
            raise InvalidInputError("packed rows need at least one position")
        layout = PackedLayout.of(segment_ids)
        if layout.decreasing or layout.negative:
            raise InvalidInputError("segment_ids must be >= 0 and non-decreasing along each row")
        soft = self.soft_tokens(prs, soft_tokens, b, segments=layout.n_segments)
        n_prefix = soft.shape[2] if cfg.modality == "prefix" else 0
        if layout.longest_subject + n_prefix > cfg.block_size:
            raise InvalidInputError(f"a packed subject spans more than block_size {cfg.block_size} positions")
        seg, token_index, memory = segment_ids, None, soft  # cross: each position reads its own subject's soft tokens
        if cfg.modality == "prefix":
            x, seg, token_index = _insert_prefixes(self.transformer.wte(idx), segment_ids, layout, soft)
            # positions restart at each inserted prefix; the padding that evens out rows gets 0
            x = x + self.transformer.wpe(torch.where(seg >= 0, _positions_in_segment(_segment_starts(seg)), 0))
            memory = None
        else:
            x, _, _ = self.embed(idx, layout.positions)
        self_mask = packed_mask(seg, dropout_active=self.training and cfg.dropout > 0)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, memory, self_mask, segment_ids if memory is not None else None)
        x = self.transformer.ln_f(x)
        return x if token_index is None else x.gather(1, token_index[..., None].expand(-1, -1, x.shape[-1]))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Next-token logits [..., vocab] of final hidden states [..., n_embd] (before ln_f)."""
        return self.lm_head(self.transformer.ln_f(x))

    def forward(self, idx: torch.Tensor, prs: torch.Tensor | None = None, soft_tokens: torch.Tensor | None = None,
                segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, T, vocab] for the token positions (soft-token prefix positions excluded).
        ``segment_ids`` [B, T] packs several subjects per row (see ``_packed_hidden_states``)."""
        return self.lm_head(self.hidden_states(idx, prs, soft_tokens, segment_ids))

    # ---- Hugging Face GPT2LMHeadModel state dicts -------------------------------

    def to_hf_state_dict(self) -> dict[str, torch.Tensor]:
        """GPT-2 names and layouts (the PRS encoder is not part of GPT-2 and is left out). GPT-2
        always has biases: a model without them (``bias=False``) writes zero biases, which is the
        same function."""
        sd = {k: v for k, v in self.state_dict().items() if not k.startswith("prs_encoder.")}
        sd["lm_head.weight"] = sd["transformer.wte.weight"]
        if not self.config.bias:
            for name, module in self.named_modules():
                if name.startswith("prs_encoder") or not isinstance(module, Conv1D | nn.LayerNorm):
                    continue
                sd[f"{name}.bias"] = torch.zeros(module.weight.shape[-1] if isinstance(module, Conv1D) else module.weight.shape[0],
                                                 dtype=module.weight.dtype, device=module.weight.device)
        return sd

    @classmethod
    def from_hf_state_dict(cls, state_dict: dict[str, torch.Tensor], config: GPTConfig) -> GPT:
        model = cls(config)
        own = model.state_dict()
        wanted = {k for k in own if not k.startswith("prs_encoder.")}
        given = {k: v for k, v in state_dict.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        if not config.bias:  # zero biases (GPT-2's layout of a no-bias model) are dropped; any other bias does not fit
            for k in [k for k in given if k.endswith(".bias") and k not in own]:
                if torch.count_nonzero(given[k]):
                    raise InvalidInputError(f"{k}: a non-zero bias, but the config has bias=False")
                del given[k]
        missing = sorted(wanted - set(given))
        unexpected = sorted(set(given) - set(own))
        if missing or unexpected:
            raise InvalidInputError(f"state dict does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for k, v in given.items():
            if own[k].shape != v.shape:
                raise InvalidInputError(f"{k}: shape {tuple(v.shape)} in the state dict, {tuple(own[k].shape)} in the model")
        model.load_state_dict(given, strict=False)
        return model
