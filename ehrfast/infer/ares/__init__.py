"""ETHOS-ARES's adaptive risk estimation: risk trajectories over a stay (``trajectory.py``), their
explanations (``explanations.py``, groups in ``groups.py``), next-token readouts (``next_token.py``),
figures and the HTML page (``figures.py``, ``page.py``) and the ``ehrfast ares`` stage (``run.py``).

Public API (imported on first use)::

    risk_trajectory(model, ds, stays, TrajectorySettings(...)) -> RiskTrajectory   (.table(): the trajectory parquet)
    stays_from_labels(ds, labels, settings) -> (stays, skipped)
    explain(trajectory, component, top_k) -> pa.Table
    next_token_probabilities(model, contexts, candidate_ids, forced) -> [n, C]
    run_ares(checkpoint, data_dir, anchors_path, out_dir, TrajectorySettings(...), ...) -> AresSummary   (ehrfast ares)
    run_next_token(checkpoint, data_dir, task, out_path) -> NextTokenSummary   (ehrfast next-token)
"""

from typing import TYPE_CHECKING

from ehrfast._lazy import lazy_exports

_EXPORTS = {
    "TrajectorySettings": "options", "RiskTrajectory": "trajectory", "StayTrajectory": "trajectory", "Stay": "trajectory",
    "risk_trajectory": "trajectory", "stays_from_labels": "trajectory", "COMPONENTS": "trajectory",
    "explain": "explanations", "explain_stay": "explanations", "ExplainedGroup": "explanations",
    "token_groups": "groups", "GroupRule": "groups",
    "next_token_probabilities": "next_token", "marginal_next_token_probabilities": "next_token", "NextTokenTask": "next_token",
    "run_ares": "run", "AresSummary": "run", "run_next_token": "run", "NextTokenSummary": "run", "read_next_tokens": "next_token",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "AresSummary",
    "COMPONENTS",
    "ExplainedGroup",
    "GroupRule",
    "NextTokenSummary",
    "NextTokenTask",
    "RiskTrajectory",
    "Stay",
    "StayTrajectory",
    "TrajectorySettings",
    "explain",
    "explain_stay",
    "marginal_next_token_probabilities",
    "next_token_probabilities",
    "read_next_tokens",
    "risk_trajectory",
    "run_ares",
    "run_next_token",
    "stays_from_labels",
    "token_groups",
]

if TYPE_CHECKING:
    from ehrfast.infer.ares.explanations import ExplainedGroup, explain, explain_stay
    from ehrfast.infer.ares.groups import GroupRule, token_groups
    from ehrfast.infer.ares.next_token import NextTokenTask, marginal_next_token_probabilities, next_token_probabilities, read_next_tokens
    from ehrfast.infer.ares.options import TrajectorySettings
    from ehrfast.infer.ares.run import AresSummary, NextTokenSummary, run_ares, run_next_token
    from ehrfast.infer.ares.trajectory import COMPONENTS, RiskTrajectory, Stay, StayTrajectory, risk_trajectory, stays_from_labels
