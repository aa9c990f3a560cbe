"""Features a trained model gives for a (subject, prediction time), computed once, without
gradients — one forward pass per subject instead of K × N sampled tokens."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ehrfast.errors import InvalidInputError
from ehrfast.model.gpt import GPT
from ehrfast.tokenize.dataset import TokenizedDataset
from ehrfast.units import US_PER_YEAR


def context_features(model: GPT, ds: TokenizedDataset, subject_ids: Sequence[int], prediction_times_us: Sequence[int],
                     prs: np.ndarray | None = None, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """[n, n_embd] float32: the final hidden state at the last context token (what the model
    sees at each prediction time, left-truncated to its window). ``prs`` [n, n_traits] for
    models that read PRS. Rows are right-padded in batches: attention is causal, so the pad
    after a row's last token cannot change its hidden state."""
    if len(subject_ids) != len(prediction_times_us):
        raise InvalidInputError(f"{len(subject_ids)} subject ids but {len(prediction_times_us)} prediction times")
    contexts = [ds.context(int(s), int(t), max_tokens=model.config.token_window)[0] for s, t in zip(subject_ids, prediction_times_us)]
    out = np.zeros((len(contexts), model.config.n_embd), np.float32)
    model.eval()
    for start in range(0, len(contexts), batch_size):
        rows = contexts[start: start + batch_size]
        idx = np.zeros((len(rows), max(len(r) for r in rows)), np.int64)
        for k, r in enumerate(rows):
            idx[k, : len(r)] = r
        batch_prs = None if prs is None else torch.as_tensor(prs[start: start + len(rows)], dtype=torch.float32, device=device)
        with torch.no_grad():
            h = model.hidden_states(torch.as_tensor(idx, device=device), batch_prs)
        last = torch.as_tensor([len(r) - 1 for r in rows], device=device)
        out[start: start + len(rows)] = h[torch.arange(len(rows), device=device), last].float().cpu().numpy()
    return out


def prs_embeddings(model: GPT, prs: np.ndarray, device: str = "cpu") -> np.ndarray:
    """[n, n_embd] float32: the PRS encoder's soft tokens for each row of ``prs`` [n, n_traits],
    averaged over the soft tokens (NaN rows get the learned "missing" embedding)."""
    if model.prs_encoder is None:
        raise InvalidInputError("this model has no PRS encoder (modality 'none')")
    model.eval()
    with torch.no_grad():
        soft = model.prs_encoder(torch.as_tensor(np.asarray(prs), dtype=torch.float32, device=device))
    return soft.mean(dim=1).float().cpu().numpy()


def demographic_features(ds: TokenizedDataset, subject_ids: Sequence[int], prediction_times_us: Sequence[int]) -> np.ndarray:
    """[n, 1 + k] float64: age in years at the prediction time (0 when birth is unknown), then
    one indicator per static token of the vocabulary (sex, race, ...)."""
    static_ids = [i for i, kind in enumerate(ds.vocab.kinds) if kind == "static"]
    column = {tok: k for k, tok in enumerate(static_ids)}
    out = np.zeros((len(subject_ids), 1 + len(static_ids)))
    for row, (s, t) in enumerate(zip(subject_ids, prediction_times_us)):
        i = ds.row(int(s))
        birth = int(ds.birth_times[i])
        out[row, 0] = 0.0 if birth == np.iinfo(np.int64).min else (int(t) - birth) / US_PER_YEAR
        tokens, _ = ds.timeline(i)
        for tok in np.asarray(tokens[: int(ds.static_lengths[i])]).tolist():
            if tok in column:
                out[row, 1 + column[tok]] = 1.0
    return out
