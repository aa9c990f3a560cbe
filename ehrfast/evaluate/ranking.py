"""Rank metrics for many weightings of the same scores at once — the bootstrap engine.

A bootstrap resample of n subjects is a vector of counts w [n] (how often each subject was
drawn). Sorting each class's scores once turns AUROC, AUPRC and the PR curve of every
resample into cumulative sums and gathers over a [b, n] matrix, instead of b calls to a
sort-based routine. With w = 1 (and with tied scores) the results equal scikit-learn's.
"""

from __future__ import annotations

import numpy as np


class RankedScores:
    """Scores of one model split by class and sorted; built once, reused for every resample."""

    def __init__(self, label: np.ndarray, score: np.ndarray):
        score = np.asarray(score, np.float64)
        label = np.asarray(label, bool)
        # Positives and negatives each sorted ascending; for every positive, where its
        # score falls among the negatives and among the positives.
        pos_idx, neg_idx = np.flatnonzero(label), np.flatnonzero(~label)
        self.pos_sorted = pos_idx[np.argsort(score[pos_idx], kind="stable")]
        self.neg_sorted = neg_idx[np.argsort(score[neg_idx], kind="stable")]
        pos_scores, neg_scores = score[self.pos_sorted], score[self.neg_sorted]
        self.neg_below = np.searchsorted(neg_scores, pos_scores, side="left")  # negatives with s < s_i
        self.neg_upto = np.searchsorted(neg_scores, pos_scores, side="right")  # negatives with s <= s_i
        self.pos_below = np.searchsorted(pos_scores, pos_scores, side="left")  # positives with s < s_i

    def _per_positive(self, weights: np.ndarray):
        """For each positive i (ascending score): its weight, TP(s ≥ s_i), FP(s ≥ s_i), the
        weighted negatives below and tied with it, and the class totals; [b, n_pos] / [b]."""
        w = np.asarray(weights, np.float64)
        w_pos = w[:, self.pos_sorted]
        cum_neg = _cumsum0(w[:, self.neg_sorted])
        cum_pos = _cumsum0(w_pos)
        p_tot, n_tot = cum_pos[:, -1], cum_neg[:, -1]
        below = cum_neg[:, self.neg_below]
        ties = cum_neg[:, self.neg_upto] - below
        tp = p_tot[:, None] - cum_pos[:, self.pos_below]
        fp = n_tot[:, None] - below
        return w_pos, tp, fp, below, ties, p_tot, n_tot

    def auroc_auprc(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUROC and average precision for each row of ``weights`` [b, n]; NaN for rows
        whose resample holds one class only.

        AUROC = Σ_i w_i (N(s < s_i) + ½ N(s = s_i)) / (P·N) over positives i;
        AP = Σ_i w_i · TP(s ≥ s_i) / (TP(s ≥ s_i) + FP(s ≥ s_i)) / P.
        """
        w_pos, tp, fp, below, ties, p_tot, n_tot = self._per_positive(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = np.sum(w_pos * (below + 0.5 * ties), axis=1) / (p_tot * n_tot)
            # tp + fp = 0 only where w_i = 0 too; guard so 0 · (0/0) does not poison the sum
            ap = np.sum(w_pos * (tp / np.maximum(tp + fp, 1e-300)), axis=1) / p_tot
        bad = (p_tot == 0) | (n_tot == 0)
        auc[bad] = np.nan
        ap[bad] = np.nan
        return auc, ap

    def interpolated_precision(self, weights: np.ndarray, recall_grid: np.ndarray) -> np.ndarray:
        """Interpolated precision max_{R ≥ r} P at each grid recall r: [b, len(grid)].
        As in scikit-learn's PR curve, the curve starts at (recall 0, precision 1).

        Only thresholds at positives matter: between them recall is flat and precision
        can only fall. Over positives in ascending score, recall does not increase, so the
        best precision at recall ≥ r is a prefix maximum."""
        grid = np.asarray(recall_grid, np.float64)
        _, tp, fp, _, _, p_tot, _ = self._per_positive(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / np.maximum(tp + fp, 1e-300)
            recall = tp / p_tot[:, None]
        best = np.maximum.accumulate(precision, axis=1)
        out = np.zeros((len(tp), len(grid)))
        for i in range(len(tp)):  # searchsorted is per row; everything else is vectorized
            reach = np.searchsorted(-recall[i], -grid, side="right")  # positives with recall ≥ r
            out[i] = np.where(reach > 0, best[i, np.maximum(reach - 1, 0)], 0.0)
        out[:, grid <= 0] = 1.0
        out[p_tot == 0] = np.nan
        return out


def _cumsum0(x: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 1 with a leading zero column: [b, m] -> [b, m + 1]."""
    out = np.zeros((x.shape[0], x.shape[1] + 1))
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out
