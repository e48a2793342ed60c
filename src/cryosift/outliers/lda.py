"""Two-class shrinkage linear discriminant, the computation of scikit-learn's
``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``, in numpy.

Written out because importing scikit-learn costs about 0.5 s, a ninth of a whole
``cryosift clean`` of 40,000 images; ``tests/outliers/test_lda.py`` checks it against
scikit-learn. Each class's covariance is the Ledoit-Wolf shrunk covariance of its
standardised features, scaled back; the pooled covariance weights them by the class
frequencies; the discriminant solves it against the class means by least squares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf shrunk covariance ``(F, F)`` of samples ``x`` ``(n, F)`` (centred here)."""
    x = x - x.mean(axis=0)
    n, p = x.shape
    emp = x.T @ x / n
    x2 = x * x
    trace = x2.sum(axis=0) / n
    mu = trace.sum() / p
    beta_ = float((x2.T @ x2).sum())
    delta_ = float(((x.T @ x) ** 2).sum()) / n**2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * trace.sum() + p * mu**2) / p
    beta = min(beta, delta)
    shrink = 0.0 if beta == 0 else beta / delta
    out = (1.0 - shrink) * emp
    out.flat[:: p + 1] += shrink * mu
    return np.asarray(out)


def _class_cov(x: np.ndarray) -> np.ndarray:
    """Shrunk covariance of standardised ``x`` ``(n, F)``, back in the units of ``x``."""
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    cov = ledoit_wolf((x - x.mean(axis=0)) / scale)
    return np.asarray(scale[:, None] * cov * scale[None, :])


@dataclass(frozen=True)
class Discriminant:
    """``decision_function(x)``: ``(n,)`` log-odds of class 1 over class 0."""

    coef: np.ndarray
    intercept: float

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.asarray(x, dtype=np.float64) @ self.coef + self.intercept)


def fit_shrinkage_lda(x: np.ndarray, y: np.ndarray) -> Discriminant:
    """Fit on features ``x`` ``(n, F)`` and boolean labels ``y`` ``(n,)`` (both present)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    groups = (x[~y], x[y])
    priors = np.array([len(g) for g in groups], dtype=np.float64) / len(x)
    means = np.stack([g.mean(axis=0) for g in groups])
    cov = sum(p * _class_cov(g) for p, g in zip(priors, groups, strict=True))
    coef = np.linalg.lstsq(cov, means.T, rcond=None)[0].T  # (2, F)
    intercept = -0.5 * np.einsum("kf,kf->k", means, coef) + np.log(priors)
    return Discriminant(coef[1] - coef[0], float(intercept[1] - intercept[0]))
