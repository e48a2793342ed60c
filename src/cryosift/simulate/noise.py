"""Gaussian noise, white or coloured, and the signal-to-noise ratios the simulator reports.

Coloured noise has the power spectrum the radial-profile paper states, ``1 / sqrt(1 + rho^2)``,
with ``rho`` the radial frequency in radians per pixel (pi at Nyquist, the frequency unit of
ASPIRE, which the paper's experiments used): the power falls to 0.30 of its zero-frequency
value at Nyquist. Either kind is scaled so that each pixel's standard deviation is ``sigma``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from cryosift.simulate.choices import NOISE_COLOURS


def noise_psd(n: int, colour: str) -> np.ndarray:
    """The power spectrum ``(n, n//2+1)`` (``rfft2`` layout) of ``colour`` noise on an
    ``n x n`` grid, normalised to mean 1 over the full grid so that pixel variance is 1."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour {colour!r}; choose from {NOISE_COLOURS}")
    ky = sfft.fftfreq(n)[:, None]
    kx = sfft.rfftfreq(n)[None, :]
    rho = 2 * np.pi * np.sqrt(ky**2 + kx**2)
    psd = np.ones_like(rho) if colour == "white" else 1 / np.sqrt(1 + rho**2)
    # Mean over the full (Hermitian) grid: rfft columns 1..(n-1)//2 stand for two columns each.
    weights = np.full(psd.shape[1], 2.0)
    weights[0] = 1
    if n % 2 == 0:
        weights[-1] = 1
    return psd / (np.sum(psd * weights) / (n * n))


def gaussian_noise(
    shape: tuple[int, int, int], sigma: float, colour: str, rng: np.random.Generator
) -> np.ndarray:
    """``(B, n, n)`` float32 Gaussian noise of pixel standard deviation ``sigma``."""
    white = rng.standard_normal(shape, dtype=np.float32)
    if colour == "white":
        return white * np.float32(sigma)
    n = shape[-1]
    ft = sfft.rfft2(white, workers=-1) * np.sqrt(noise_psd(n, colour)).astype(np.float32)
    return (sfft.irfft2(ft, s=(n, n), workers=-1) * sigma).astype(np.float32)


def mean_snr(clean: np.ndarray, sigma: float, margin: int = 0) -> float:
    """The radial-profile paper's SNR: the mean of the clean images ``(B, n, n)`` over the
    region ``[margin:-margin, margin:-margin]`` around the object, over the noise std."""
    region = clean[:, margin : clean.shape[1] - margin, margin : clean.shape[2] - margin]
    return float(region.mean() / sigma)


def power_snr(clean: np.ndarray, sigma: float) -> float:
    """The SNR most tools quote: the variance of the clean images ``(B, n, n)`` (each about its
    own mean, averaged over images) over the noise variance."""
    return float(clean.var(axis=(1, 2)).mean() / sigma**2)
