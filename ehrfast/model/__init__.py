"""GPT decoder with PRS soft tokens (cross-attention or prefix)."""

from ehrfast.model.config import GPTConfig
from ehrfast.model.gpt import GPT, PRSEncoder

__all__ = ["GPT", "GPTConfig", "PRSEncoder"]
