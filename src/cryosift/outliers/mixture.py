"""Two Gaussians with one shared variance fitted to 1-D data by EM: the computation of
scikit-learn's ``GaussianMixture(2, covariance_type="tied")``, in numpy.

Written out for the same reason as :mod:`cryosift.outliers.lda`: importing scikit-learn
costs about 0.5 s of every ``cryosift clean``; ``tests/outliers/test_mixture.py`` checks it
against scikit-learn. EM runs on a fine histogram of the data (:data:`BINS` bins; the
binning moves the variance by ``width^2 / 12``, a few millionths of it), so that each
iteration costs the same whatever the stack's size: about 0.01-0.05 s where the two
components separate, at most a few tenths of a second (:data:`MAX_ITER`) where they overlap
and EM converges slowly (200,000 values, 2 cores).
Started, as scikit-learn starts, from a two-means split; deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 1024
#: EM stops when the mean log-likelihood per sample changes by less than this.
TOL = 1e-10
MAX_ITER = 2000
#: Added to the variance, as scikit-learn's ``reg_covar``.
REG_VAR = 1e-6


@dataclass(frozen=True)
class TiedMixture:
    """``weights`` ``(2,)``, ``means`` ``(2,)`` (ascending) and the shared ``variance``."""

    weights: np.ndarray
    means: np.ndarray
    variance: float

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """Each sample's probability ``(N, 2)`` of either component."""
        return _responsibilities(np.asarray(x, dtype=np.float64), self)[0]


def _two_means(x: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Hard labels ``(K,)`` (True: the upper group) of a two-means split of the values
    ``x`` ``(K,)`` seen ``count`` times each (Lloyd's iterations from the extremes)."""
    centres = np.array([x.min(), x.max()], dtype=np.float64)
    upper = np.zeros(len(x), bool)
    for _ in range(1000):
        new = np.asarray(x > centres.mean(), dtype=bool)
        if np.array_equal(new, upper) or new.all() or not new.any():
            return new
        upper = new
        low = np.average(x[~upper], weights=count[~upper])
        centres = np.array([low, np.average(x[upper], weights=count[upper])])
    return upper


def _m_step(x: np.ndarray, count: np.ndarray, resp: np.ndarray) -> TiedMixture:
    weighted = resp * count[:, None]
    n = count.sum()
    n_k = weighted.sum(axis=0) + 10 * np.finfo(float).eps
    means = (weighted * x[:, None]).sum(axis=0) / n_k
    var = float((weighted * (x[:, None] - means) ** 2).sum() / n) + REG_VAR
    return TiedMixture(n_k / n, means, var)


def _responsibilities(x: np.ndarray, m: TiedMixture) -> tuple[np.ndarray, np.ndarray]:
    """``(K, 2)`` responsibilities and each value's log-likelihood ``(K,)``."""
    log_p = -0.5 * ((x[:, None] - m.means) ** 2 / m.variance + np.log(2 * np.pi * m.variance))
    log_p += np.log(m.weights)
    top = log_p.max(axis=1, keepdims=True)
    log_norm = top + np.log(np.exp(log_p - top).sum(axis=1, keepdims=True))
    return np.exp(log_p - log_norm), log_norm[:, 0]


def fit_tied_mixture(x: np.ndarray) -> TiedMixture:
    """Fit two Gaussians with one shared variance to ``x`` ``(N,)`` (not constant)."""
    count, edges = np.histogram(np.asarray(x, dtype=np.float64), BINS)
    seen = count > 0
    centres, count = ((edges[:-1] + edges[1:]) / 2)[seen], count[seen].astype(np.float64)
    upper = _two_means(centres, count)
    model = _m_step(centres, count, np.stack([~upper, upper], axis=1).astype(np.float64))
    last = -np.inf
    for _ in range(MAX_ITER):
        resp, log_like = _responsibilities(centres, model)
        model = _m_step(centres, count, resp)
        mean_ll = float((log_like * count).sum() / count.sum())
        if abs(mean_ll - last) < TOL:
            break
        last = mean_ll
    order = np.argsort(model.means)
    return TiedMixture(model.weights[order], model.means[order], model.variance)
