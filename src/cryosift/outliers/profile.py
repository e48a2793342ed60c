"""The radial-profile score: how much of each image looks like the stack's typical particle.

The stack's typical particle is the rotational average of the mean of its (per-image
standardised) images: a radial profile, the same for every in-plane angle. Each image is
projected on that profile (zero mean, unit norm) and the projection divided by the standard
deviation it would have for pure noise with the stack's own power spectrum, so that

- pure noise scores about N(0, 1) (slightly less: the spectrum includes the particles' power),
- a centred particle scores high, a partial or off-centre one lower,

whatever the contrast polarity (a dark particle gives a dark profile) and without any label.
Images are ``(B, n, n)`` with the centre at pixel ``n // 2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft


def centre_distance(size: int) -> np.ndarray:
    """``(size, size)`` float64: each pixel's distance from the centre pixel ``size // 2``."""
    yy, xx = np.indices((size, size)) - size // 2
    return np.asarray(np.hypot(yy, xx), np.float64)


def ring_index(size: int) -> np.ndarray:
    """``(size, size)`` int: the rounded distance of each pixel from the centre ``size // 2``."""
    return np.asarray(np.rint(centre_distance(size)), np.int64)


def radial_average(image: np.ndarray) -> np.ndarray:
    """The mean of ``image`` ``(n, n)`` over each ring of :func:`ring_index`, ``(rings,)``."""
    rings = ring_index(image.shape[-1]).ravel()
    counts = np.bincount(rings)
    return np.bincount(rings, weights=image.ravel()) / np.maximum(counts, 1)


def radial_template(mean_image: np.ndarray) -> np.ndarray:
    """The rotational average of ``mean_image`` ``(n, n)``, zero mean and unit norm
    (all zeros when the average is flat)."""
    t = radial_average(mean_image)[ring_index(mean_image.shape[-1])]
    t = t - t.mean()
    norm = np.linalg.norm(t)
    return np.asarray(t / norm if norm > 0 else t)


def half_crossing(q: np.ndarray, level: float) -> float | None:
    """Where the radial profile ``q`` ``(R,)`` (ring 0 the centre) first falls below
    ``level``, interpolated linearly between the rings on either side (px); None when it
    never does, or already at the centre."""
    below = np.flatnonzero(q < level)
    if not len(below) or below[0] == 0:
        return None
    i = int(below[0])
    return float(i - 1 + (q[i - 1] - level) / max(q[i - 1] - q[i], 1e-12))


#: Where the rotationally averaged mean particle falls to half its contrast, in particle
#: radii: 0.45-0.51 measured on EMPIAR-10017 boxes (1.25, 1.5 and 2 diameters, CryoPPP's
#: diameter) and on simulated 70S ribosomes (the volume's diameter), at every SNR tried.
HALF_CONTRAST_RADII = 0.5


def estimate_radius(mean_image: np.ndarray) -> float | None:
    """The particle radius (px) a stack's mean standardised image ``(n, n)`` suggests: where
    its rotational average, measured from the background (the outer fifth), falls to half
    of its centre's value, divided by :data:`HALF_CONTRAST_RADII`; None when the centre does
    not stand out of the background's scatter."""
    profile = radial_average(mean_image)
    half = mean_image.shape[-1] // 2
    outer = profile[int(0.8 * half) : half + 1]
    q = profile[: half + 1] - np.median(outer)
    q = q * np.sign(q[:2].mean())
    if q[:2].mean() <= 4 * max(outer.std(), 1e-12):
        return None
    r = half_crossing(q, q[:2].mean() / 2)
    return None if r is None else r / HALF_CONTRAST_RADII


def image_moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image mean and standard deviation ``(B,)`` float64 of ``(B, n, n)`` images (blank
    images get sd 1): two passes, the second on centred values, sums in float64 (twice as
    fast as ``ndarray.std`` on float32 stacks, the same to 1e-9)."""
    flat = np.asarray(images).reshape(len(images), -1)
    mean = flat.sum(axis=1, dtype=np.float64) / flat.shape[1]
    centred = flat - mean[:, None].astype(flat.dtype)
    sd = np.sqrt(np.einsum("ij,ij->i", centred, centred, dtype=np.float64) / flat.shape[1])
    return mean, np.where(sd > 0, sd, 1.0)


def _hermitian_weights(n: int) -> np.ndarray:
    """``(n//2 + 1,)`` weights that turn a sum over an ``rfft2`` half-spectrum into the sum
    over the full spectrum."""
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


@dataclass
class ProfileStats:
    """Accumulates, over a stream of ``(B, n, n)`` chunks, the mean standardised image and
    the mean power spectrum of the standardised images (``rfft2`` half, per pixel:
    ``|FFT|^2 / n^2``), then scores images against them."""

    size: int
    count: int = 0
    _sum: np.ndarray = field(init=False, repr=False)
    _power: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sum = np.zeros((self.size, self.size))
        self._power = np.zeros((self.size, self.size // 2 + 1))

    def add(self, images: np.ndarray, workers: int = -1) -> None:
        x = np.asarray(images, dtype=np.float32)
        mean, sd = image_moments(x)
        w = 1.0 / sd
        self._sum += np.tensordot(w, x, axes=(0, 0)) - float((mean * w).sum())
        power = np.abs(sfft.rfft2(x, workers=workers)) ** 2
        power[:, 0, 0] = 0.0  # the mean is removed by standardising
        self._power += np.tensordot(w**2, power, axes=(0, 0)) / self.size**2
        self.count += len(x)

    @property
    def mean_power(self) -> np.ndarray:
        """``(size, size // 2 + 1)`` mean power spectrum of the standardised images seen
        (``rfft2`` half, ``|FFT|^2 / size^2``, zero at frequency 0)."""
        return self._power / max(self.count, 1)

    @property
    def template(self) -> np.ndarray:
        return radial_template(self._sum / max(self.count, 1))

    def noise_sd(self, template: np.ndarray) -> float:
        """Standard deviation of ``<noise, template>`` for noise with the mean spectrum."""
        t2 = np.abs(sfft.rfft2(template)) ** 2
        var = float((t2 * self.mean_power * _hermitian_weights(self.size)).sum() / self.size**2)
        return float(np.sqrt(var)) if var > 0 else 1.0

    def __add__(self, other: ProfileStats) -> ProfileStats:
        """The statistics of both streams of images together."""
        out = ProfileStats(self.size)
        out.count = self.count + other.count
        out._sum = self._sum + other._sum
        out._power = self._power + other._power
        return out

    def noise_images(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, size, size)`` float32 Gaussian noise images whose expected power spectrum is
        the mean spectrum of the standardised images (zero mean: no power at frequency 0)."""
        white = rng.standard_normal((n, self.size, self.size), dtype=np.float32)
        shaped = sfft.rfft2(white) * np.sqrt(self.mean_power).astype(np.float32)
        return np.asarray(sfft.irfft2(shaped, s=(self.size, self.size)).astype(np.float32))

    def scorer(self) -> ProfileScorer:
        t = self.template
        return ProfileScorer(t, self.noise_sd(t))


@dataclass(frozen=True)
class ProfileScorer:
    """``template`` ``(n, n)`` (zero mean, unit norm) and the noise ``sd`` of a projection on
    it."""

    template: np.ndarray
    sd: float

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Radial-profile z-score of each ``(B, n, n)`` image, ``(B,)`` float64. The template
        has zero mean, so projecting the raw image equals projecting the standardised one
        times its standard deviation."""
        x = np.asarray(images, dtype=np.float32)
        _, sd = image_moments(x)
        proj = np.tensordot(x, self.template.astype(np.float32), axes=((1, 2), (0, 1)))
        return np.asarray(proj.astype(np.float64) / sd / self.sd)
