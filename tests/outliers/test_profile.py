"""The radial-profile score on constructed images: calibrated on noise, high for centred
particles, lower for partial ones, blind to contrast polarity."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import disc_blob
from cryosift.outliers.profile import ProfileStats, radial_template, ring_index

N = 33


def _scores(images: np.ndarray) -> np.ndarray:
    stats = ProfileStats(images.shape[-1])
    for start in range(0, len(images), 300):  # streamed in chunks, as clean does
        stats.add(images[start : start + 300])
    assert stats.count == len(images)
    return stats.scorer()(images)


def _stack(n_disc: int, n_noise: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = N // 2
    disc = disc_blob(N, (c, c + shift), 8.0)
    clean = np.concatenate([np.repeat(disc[None], n_disc, 0), np.zeros((n_noise, N, N))])
    return clean + rng.normal(scale=1.0, size=clean.shape)


def test_ring_index_and_template():
    rings = ring_index(5)
    assert rings[2, 2] == 0 and rings[0, 2] == 2 and rings[0, 0] == 3
    sym = disc_blob(N, (N // 2, N // 2), 6.0)
    t = radial_template(sym)
    assert abs(t.mean()) < 1e-12 and np.linalg.norm(t) == pytest.approx(1.0)
    ref = sym - sym.mean()
    assert np.corrcoef(t.ravel(), ref.ravel())[0, 1] > 0.99  # already symmetric: kept
    assert np.allclose(radial_template(np.zeros((N, N))), 0)


def test_pure_noise_scores_like_a_standard_normal():
    rng = np.random.default_rng(1)
    z = _scores(rng.normal(size=(3000, N, N)))
    assert abs(z.mean()) < 0.1 and 0.85 < z.std() < 1.15


def test_particles_score_high_noise_does_not():
    images = _stack(600, 400)
    z = _scores(images)
    particles, noise = z[:600], z[600:]
    assert np.median(particles) > 3
    assert abs(np.median(noise)) < 0.3 and noise.std() < 1.1
    assert (particles > 2).mean() > 0.95 and (noise > 2).mean() < 0.05


def test_partial_particles_score_lower_and_polarity_does_not_matter():
    centred = _stack(600, 0, seed=2)
    shifted = np.concatenate([centred[:400], _stack(200, 0, shift=11.0, seed=3)])
    z = _scores(shifted)
    assert np.median(z[400:]) < np.median(z[:400]) - 2
    np.testing.assert_allclose(_scores(-shifted), z, rtol=1e-9, atol=1e-9)
