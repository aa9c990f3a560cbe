"""MEDS → token timelines (ETHOS-compatible), with a C++ core and a Python reference.

Public API::

    tokenize_dataset(meds_dir, out_dir, config=None, *, backend=None, vocab_from=None, overwrite=False) -> TokenizeSummary
    TokenizedDataset(dir)            # memory-mapped arrays, .context(subject, time)
    Tokenizer.load(dir)              # a fitted tokenizer (what tokenize_dataset saved)
    decode(ids, vocab)               # token ids -> strings
"""

from ehrfast.tokenize.api import TokenizeSummary, tokenize_dataset
from ehrfast.tokenize.config import TokenizerConfig, VisitRule
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.tokenize.options import TokenizeOptions
from ehrfast.tokenize.tokenizer import Tokenizer
from ehrfast.tokenize.vocab import Vocabulary


def decode(ids, vocab: Vocabulary) -> list[str]:
    """Token ids -> token strings."""
    return vocab.decode(ids)


__all__ = ["TokenizeOptions", "TokenizeSummary", "TokenizedDataset", "Tokenizer", "TokenizerConfig", "VisitRule", "Vocabulary", "decode",
           "tokenize_dataset"]
