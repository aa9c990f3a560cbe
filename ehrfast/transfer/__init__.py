"""Transfer learning from a trained model: a classification head on the frozen backbone's
hidden state, and the PRS encoder's embeddings as features for a small MLP.

Public API (imported on first use)::

    run_transfer(tokens_dir, meds_dir, ehr_model, prs_model, prs_path, out_dir) -> TransferSummary
    context_features(model, ds, subject_ids, prediction_times_us)   # [n, n_embd] frozen features
    prs_embeddings(model, prs)                                      # [n, n_embd] mean soft token
    demographic_features(ds, subject_ids, prediction_times_us)      # [n, k] age + static tokens
    train_probe(x, y, hidden=None | int, ...) -> Probe              # dropout + linear, or 1-hidden-layer MLP
"""

from typing import TYPE_CHECKING

from ehrfast._lazy import lazy_exports

_EXPORTS = {"TransferSummary": "experiment", "run_transfer": "experiment", "TransferOptions": "options",
            "context_features": "features", "demographic_features": "features", "prs_embeddings": "features", "Probe": "probe",
            "train_probe": "probe"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "Probe",
    "TransferOptions",
    "TransferSummary",
    "context_features",
    "demographic_features",
    "prs_embeddings",
    "run_transfer",
    "train_probe",
]

if TYPE_CHECKING:
    from ehrfast.transfer.experiment import TransferSummary, run_transfer
    from ehrfast.transfer.features import context_features, demographic_features, prs_embeddings
    from ehrfast.transfer.options import TransferOptions
    from ehrfast.transfer.probe import Probe, train_probe
