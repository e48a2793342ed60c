"""The numpy tied two-Gaussian mixture against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from cryosift.outliers.mixture import fit_tied_mixture


@pytest.mark.parametrize(
    ("share", "gap", "sd", "seed"),
    [(0.5, 2.5, 0.8, 0), (0.9, 2.0, 0.5, 1), (0.3, 1.5, 1.0, 2), (0.1, 4.0, 1.0, 3)],
)
def test_matches_scikit_learn(share, gap, sd, seed):
    """Run to convergence, both reach the same fit: means, weights and variance within
    1e-3, every posterior within 2e-3 (the histogram EM's binning; overlapping components
    converge slowest)."""
    rng = np.random.default_rng(seed)
    n = 3000
    k = int(share * n)
    x = np.concatenate([rng.normal(0, sd, n - k), rng.normal(gap, sd, k)]) + 3.0
    ours = fit_tied_mixture(x)
    ref = GaussianMixture(2, covariance_type="tied", tol=1e-10, max_iter=5000, random_state=0)
    ref.fit(x[:, None])
    order = np.argsort(ref.means_[:, 0])
    assert ours.means == pytest.approx(ref.means_[order, 0], abs=1e-3)
    assert ours.weights == pytest.approx(ref.weights_[order], abs=1e-3)
    assert ours.variance == pytest.approx(float(ref.covariances_.ravel()[0]), rel=1e-3)
    post = ref.predict_proba(x[:, None])[:, order]
    assert np.abs(ours.posterior(x) - post).max() < 2e-3
    # the upper component is the particles' share, near the truth
    assert ours.weights[1] == pytest.approx(share, abs=0.05)


def test_deterministic_and_ordered():
    x = np.random.default_rng(4).normal(size=500) ** 2
    a, b = fit_tied_mixture(x), fit_tied_mixture(x.copy())
    assert np.array_equal(a.means, b.means) and a.means[0] <= a.means[1]
    assert a.posterior(x).sum(axis=1) == pytest.approx(1.0)
