"""The radial template of Kapnulin, Heimowitz & Sharon: a sum of centred 2D Gaussians."""

from __future__ import annotations

import numpy as np

#: Standard deviations of the five Gaussians, as fractions of the template size k.
PAPER_SIGMAS: tuple[float, ...] = (0.05, 0.15, 0.25, 0.35, 0.45)


def template_size(d: int, ratio: float = 0.3) -> int:
    """Template side k = round(ratio * d) (numpy rounding, as the reference code), at least 1."""
    return max(1, int(np.round(d * ratio)))


def gaussian_template(k: int, sigmas: tuple[float, ...] = PAPER_SIGMAS) -> np.ndarray:
    """Sum of 2D Gaussians of size ``(k, k)`` with standard deviations ``s * k``.

    Each Gaussian is normalised to sum 1 before summing, so the template sums to
    ``len(sigmas)``. Returns float64 ``(k, k)``, symmetric about its centre ``(k - 1) / 2``.
    """
    total = np.zeros((k, k))
    x = np.arange(k) - (k - 1) / 2  # scipy.signal.windows.gaussian's samples, without scipy
    for s in sigmas:
        g = np.exp(-0.5 * (x / (k * s)) ** 2)
        g2 = np.outer(g, g)
        total += g2 / g2.sum()
    return total
