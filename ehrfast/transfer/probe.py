"""Small supervised models on fixed features: dropout + linear (a classification head), or a
one-hidden-layer MLP — standardized with the training statistics, trained with AdamW on the
binary cross-entropy, seeded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ehrfast.errors import InvalidInputError


@dataclass
class Probe:
    mean: np.ndarray  # [d] training mean of each feature
    scale: np.ndarray  # [d] training standard deviation (1 where constant)
    net: nn.Module

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n] float64 probabilities for features x [n, d]."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise InvalidInputError(f"features must be [n, {len(self.mean)}], got {x.shape}")
        self.net.eval()
        with torch.no_grad():
            z = torch.as_tensor((x - self.mean) / self.scale, dtype=torch.float32)
            return torch.sigmoid(self.net(z)[:, 0]).double().numpy()


def train_probe(x: np.ndarray, y: np.ndarray, *, hidden: int | None = None, dropout: float = 0.1, epochs: int = 100,
                lr: float = 3e-3, weight_decay: float = 1e-2, batch_size: int = 256, seed: int = 0) -> Probe:
    """Fits dropout + linear (``hidden=None``) or linear → GELU → dropout → linear (one hidden
    layer of ``hidden`` units) to x [n, d], y [n] bool."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y).astype(bool)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise InvalidInputError(f"need features [n, d] and n labels, got {x.shape} and {y.shape}")
    if y.all() or not y.any():
        raise InvalidInputError("the training labels hold one class only")
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale == 0] = 1.0
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d = x.shape[1]
    net = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, 1)) if hidden is None else \
        nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    xs = torch.as_tensor((x - mean) / scale, dtype=torch.float32)
    ys = torch.as_tensor(y, dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(ys), generator=generator)
        for start in range(0, len(ys), batch_size):
            take = order[start: start + batch_size]
            opt.zero_grad()
            loss_fn(net(xs[take])[:, 0], ys[take]).backward()
            opt.step()
    return Probe(mean, scale, net)
