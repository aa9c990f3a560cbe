"""Tabular ML baselines (ARES.md S12): logistic regression, random forest, gradient boosting and
an MLP from scikit-learn, fitted on the training anchors' features (``features.py``) and scored on
the others. Median imputation is fitted on train. LR, RF and GB are scikit-learn's defaults with
``random_state=0`` (LR reads standardized features, fitted on train, so that lbfgs converges); the
MLP stands in for the benchmark's Keras network (Dense 128 relu → 64 relu → sigmoid, Adam 1e-3,
batch 200, 20 epochs) as ``MLPClassifier((128, 64))`` with the same optimiser, batch and epochs,
on standardized features — no tensorflow needed.
"""

from __future__ import annotations

import warnings

import numpy as np

from ehrfast.errors import InvalidInputError

TABULAR_METHODS = ("lr", "rf", "gb", "mlp")


def _models(seed: int) -> dict:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "lr": make_pipeline(StandardScaler(), LogisticRegression(random_state=seed)),
        "rf": RandomForestClassifier(random_state=seed),
        "gb": GradientBoostingClassifier(random_state=seed),
        "mlp": make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(128, 64), learning_rate_init=1e-3, batch_size=200,
                                                             max_iter=20, random_state=seed)),
    }


def impute_with_train_medians(train: np.ndarray, test: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, test with NaN replaced by the training medians, the medians); a feature with no
    training value at all is an error."""
    counts = np.isfinite(train).sum(0)
    if len(train) and (counts == 0).any():
        raise InvalidInputError(f"no training value of feature(s) {[n for n, c in zip(names, counts) if c == 0]}")
    medians = np.nanmedian(train, axis=0) if len(train) else np.zeros(train.shape[1])
    return np.where(np.isfinite(train), train, medians), np.where(np.isfinite(test), test, medians), medians


def fit_and_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, names: list[str], seed: int = 0,
                  methods: tuple[str, ...] = TABULAR_METHODS) -> dict[str, np.ndarray]:
    """{method: [n_test] float64 P(positive)} for the tabular methods, fitted on
    (``x_train`` [n, f], ``y_train`` [n] bool)."""
    y = np.asarray(y_train, bool)
    if len(y) == 0 or y.all() or not y.any():
        raise InvalidInputError(f"tabular baselines need both classes among the training anchors ({int(y.sum())} of {len(y)} positive)")
    train, test, _ = impute_with_train_medians(x_train, x_test, names)
    models = _models(seed)
    out = {}
    for name in methods:
        with warnings.catch_warnings():
            # 20 epochs is the benchmark's budget, not a failure to converge
            warnings.filterwarnings("ignore", message=".*Stochastic Optimizer: Maximum iterations.*")
            models[name].fit(train, y)
        out[name] = models[name].predict_proba(test)[:, 1].astype(np.float64)
    return out
