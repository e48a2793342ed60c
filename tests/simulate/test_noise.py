"""Noise has the requested standard deviation and spectrum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import fft as sfft

from cryosift.simulate.noise import gaussian_noise, mean_snr, noise_psd, power_snr


@pytest.mark.parametrize("colour", ["white", "coloured"])
@pytest.mark.parametrize("n", [33, 64])
def test_pixel_std_is_sigma(colour, n):
    noise = gaussian_noise((400, n, n), 2.5, colour, np.random.default_rng(0))
    assert abs(noise.std() / 2.5 - 1) < 0.01
    assert abs(noise.mean()) < 0.02


def test_coloured_spectrum_follows_the_paper():
    n = 64
    noise = gaussian_noise((600, n, n), 1.0, "coloured", np.random.default_rng(1))
    power = (np.abs(sfft.rfft2(noise)) ** 2).mean(axis=0) / (n * n)
    expected = noise_psd(n, "coloured")
    ky = sfft.fftfreq(n)[:, None]
    kx = sfft.rfftfreq(n)[None, :]
    rho = 2 * np.pi * np.hypot(ky, kx)
    for lo, hi in [(0.1, 0.5), (1.0, 1.5), (2.5, 3.1)]:
        band = (rho >= lo) & (rho < hi)
        assert abs(power[band].mean() / expected[band].mean() - 1) < 0.03
    # the shape itself: 1 / sqrt(1 + rho^2), relative to the lowest band
    low, high = (rho > 0) & (rho < 0.2), (rho > 2.9) & (rho < 3.1)
    ratio = power[high].mean() / power[low].mean()
    assert abs(ratio - 1 / np.sqrt(1 + 3.0**2)) < 0.03


def test_white_noise_is_flat():
    psd = noise_psd(32, "white")
    np.testing.assert_allclose(psd, 1.0)


def test_snr_definitions():
    clean = np.zeros((2, 20, 20), np.float32)
    clean[:, 5:15, 5:15] = 2.0  # mean over [5:-5, 5:-5] is 2
    assert mean_snr(clean, 4.0, margin=5) == pytest.approx(0.5)
    assert mean_snr(clean, 4.0) == pytest.approx(2.0 * 100 / 400 / 4.0)
    assert power_snr(clean, 1.0) == pytest.approx(clean[0].var())
