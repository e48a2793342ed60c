"""The written-out shrinkage LDA equals scikit-learn's (solver lsqr, shrinkage auto)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf as sk_ledoit_wolf
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from cryosift.outliers.lda import fit_shrinkage_lda, ledoit_wolf


@pytest.mark.parametrize(("n", "f", "seed"), [(400, 10, 0), (60, 40, 1), (3000, 56, 2)])
def test_equals_scikit_learn(n, f, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)) @ rng.normal(size=(f, f)) + rng.normal(size=f)
    y = rng.random(n) < 0.3
    x[y] += rng.normal(size=f) * 0.5
    x[:, 0] = 3.0  # a constant feature, as ring profiles can have
    ours = fit_shrinkage_lda(x, y).decision_function(x)
    theirs = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x, y)
    np.testing.assert_allclose(ours, theirs.decision_function(x), rtol=1e-6, atol=1e-6)
    z = x[:, 1:] - x[:, 1:].mean(axis=0)
    np.testing.assert_allclose(ledoit_wolf(z), sk_ledoit_wolf(z)[0], rtol=1e-9, atol=1e-12)
