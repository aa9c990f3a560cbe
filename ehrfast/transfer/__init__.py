"""Transfer learning from a trained model: a classification head on the frozen backbone's
hidden state, and the PRS encoder's embeddings as features for a small MLP.

Public API::

    context_features(model, ds, subject_ids, prediction_times_us)   # [n, n_embd] frozen features
    prs_embeddings(model, prs)                                      # [n, n_embd] mean soft token
    demographic_features(ds, subject_ids, prediction_times_us)      # [n, k] age + static tokens
    train_probe(x, y, hidden=None | int, ...) -> Probe              # dropout + linear, or 1-hidden-layer MLP
"""

from ehrfast.transfer.features import context_features, demographic_features, prs_embeddings
from ehrfast.transfer.probe import Probe, train_probe

__all__ = ["Probe", "context_features", "demographic_features", "prs_embeddings", "train_probe"]
