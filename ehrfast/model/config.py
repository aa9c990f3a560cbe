"""GPT configuration: one dataclass, named presets, and conversion from a Hugging Face GPT2Config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ehrfast.errors import InvalidInputError

MODALITIES = ("none", "cross", "prefix")
PRESET_NAMES = ("tiny", "demo", "paper", "ethos_ares")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 256
    dropout: float = 0.0
    modality: str = "none"  # "none" | "cross" (cross-attention to soft tokens) | "prefix" (soft tokens prepended)
    n_prs_traits: int = 0
    n_soft_tokens: int = 10
    prs_hidden: int = 256
    layer_norm_epsilon: float = 1e-5
    bias: bool = True  # False: no bias in the linear layers and LayerNorms (nanoGPT's bias=False, the ETHOS-ARES model)

    def __post_init__(self):
        # each field's type and range, every one named: a config.json edited by hand (or a
        # corrupted one) must fail here, not as NaN losses or NaN probabilities for everyone
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size", "n_soft_tokens", "prs_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"model config: {name} must be a positive integer, got {value!r}")
        if isinstance(self.n_prs_traits, bool) or not isinstance(self.n_prs_traits, int) or self.n_prs_traits < 0:
            raise InvalidInputError(f"model config: n_prs_traits must be an integer >= 0, got {self.n_prs_traits!r}")
        if self.modality not in MODALITIES:
            raise InvalidInputError(f"model config: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.n_embd % self.n_head:
            raise InvalidInputError(f"model config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"model config: dropout must be in [0, 1), got {self.dropout!r}")
        eps = self.layer_norm_epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0.0 < eps < 1.0:
            raise InvalidInputError(f"model config: layer_norm_epsilon must be a small positive number in (0, 1), got {eps!r}")
        if not isinstance(self.bias, bool):
            raise InvalidInputError(f"model config: bias must be true or false, got {self.bias!r}")
        if self.modality == "prefix" and self.n_soft_tokens >= self.block_size:
            raise InvalidInputError(f"model config: n_soft_tokens ({self.n_soft_tokens}) must be smaller than block_size ({self.block_size})")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def prefix_positions(self) -> int:
        """Positions the soft tokens take before the tokens (prefix models), else 0."""
        return self.n_soft_tokens if self.modality == "prefix" else 0

    @property
    def token_window(self) -> int:
        """How many tokens fit the model's window."""
        return self.block_size - self.prefix_positions

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """From ``to_dict``'s mapping; an unknown key is an error naming the known ones."""
        if not isinstance(d, dict):
            raise InvalidInputError(f"model config must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInputError(f"model config: unknown key(s) {unknown}; a config has {sorted(cls.__dataclass_fields__)}")
        if "vocab_size" not in d:
            raise InvalidInputError("model config: vocab_size is missing")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, vocab_size: int, **overrides) -> GPTConfig:
        """``paper`` (the genomics paper: 960 wide, 12 layers, 8 heads, 2048 window, 10 soft tokens,
        4096 hidden), ``ethos_ares`` (the ETHOS-ARES model, ARES.md S14: 768 wide, 6 layers, 12
        heads, 2048 window, dropout 0.3, no biases), ``demo`` (a small model that trains on 2 CPU
        cores in minutes) or ``tiny`` (tests)."""
        presets = {
            "paper": dict(n_layer=12, n_head=8, n_embd=960, block_size=2048, n_soft_tokens=10, prs_hidden=4096),
            "ethos_ares": dict(n_layer=6, n_head=12, n_embd=768, block_size=2048, dropout=0.3, bias=False),
            "demo": dict(n_layer=4, n_head=4, n_embd=128, block_size=512, n_soft_tokens=4, prs_hidden=256),
            "tiny": dict(n_layer=2, n_head=2, n_embd=32, block_size=64, n_soft_tokens=2, prs_hidden=32),
        }
        if name not in presets:
            raise InvalidInputError(f"unknown preset {name!r}; choose from {sorted(presets)}")
        return replace(cls(vocab_size=vocab_size, **presets[name]), **overrides)

    @classmethod
    def from_hf(cls, hf_config, **overrides) -> GPTConfig:
        """From a ``transformers.GPT2Config`` (``add_cross_attention`` → modality "cross"; a
        checkpoint without bias tensors passes ``bias=False``)."""
        if getattr(hf_config, "activation_function", "gelu_new") != "gelu_new":
            raise InvalidInputError(f"only GPT-2's gelu_new activation is supported, got {hf_config.activation_function!r}")
        fields = dict(
            vocab_size=hf_config.vocab_size,
            n_layer=hf_config.n_layer,
            n_head=hf_config.n_head,
            n_embd=hf_config.n_embd,
            block_size=hf_config.n_positions,
            dropout=0.0,
            modality="cross" if getattr(hf_config, "add_cross_attention", False) else "none",
            layer_norm_epsilon=hf_config.layer_norm_epsilon,
        )
        return cls(**{**fields, **overrides})
