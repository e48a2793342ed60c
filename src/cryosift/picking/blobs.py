"""Blob responses of the micrograph at each candidate: ranking features the MAE does not see.

The MAE's token embeddings say what a candidate's neighbourhood looks like; how strongly the
micrograph itself holds a dark, particle-sized blob there is said more directly by a
scale-normalised Laplacian of Gaussian (LoG) at the particle's scale. For every candidate,
on the resized micrograph (before the picker's filters), with ``d`` the particle diameter:

- the LoG response at sigma ``f d / (2 sqrt 2)`` for ``f`` in :data:`LOG_SCALES` (a disc of
  diameter ``d`` has its strongest response at ``f = 1``), each standardised over the
  micrograph (mean 0, sd 1), so the features carry between micrographs and datasets;
- the micrograph low-passed at ``d / 6`` (particles are dark), and that minus the
  surroundings (low-passed at ``d / 2``), both in units of the micrograph's sd;
- the square of each of those: a linear ranker on them can learn that a candidate far
  darker or far stronger than a particle (a crisp ice crystal) is not one, which the values
  alone, ranked linearly, cannot say (on faint fields with ice, the survey's ranking AUC
  0.60-0.68 without the squares, 0.71-0.78 with them; docs/picking.md).

All maps are computed on the micrograph binned so that the particle spans about
:data:`BINNED_DIAMETER` to twice that px (the finest scale is ``d / 6``), which keeps the
cost to a few tens of ms per micrograph whatever the detector.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Particle diameters of the LoG scales.
LOG_SCALES = (0.7, 1.0, 1.4)
#: Names of the blob maps ...
MAPS = ("log_0.7", "log_1.0", "log_1.4", "lowpass", "centre_surround")
#: ... and of the :func:`blob_features` columns: the maps, then their squares.
NAMES = MAPS + tuple(f"{m}^2" for m in MAPS)
#: The particle's diameter in px of the binned micrograph the maps are computed on.
BINNED_DIAMETER = 8.0


def bin_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """``(rows // factor, cols // factor)`` means of ``factor x factor`` blocks (the ragged
    edge dropped); ``factor`` 1 returns ``image`` as float32."""
    image = np.asarray(image, np.float32)
    if factor <= 1:
        return image
    r, c = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:r, :c].reshape(r // factor, factor, c // factor, factor)
    return blocks.mean(axis=(1, 3))


def blob_maps(image: np.ndarray, diameter: float) -> tuple[np.ndarray, int]:
    """``(len(MAPS), rows', cols')`` feature maps of ``image`` ``(rows, cols)`` (particle
    ``diameter`` px) and the binning factor they were computed at."""
    factor = max(1, int(diameter // BINNED_DIAMETER))
    z = bin_mean(image, factor)
    z = (z - z.mean()) / (z.std() + 1e-12)
    d = diameter / factor
    maps = []
    for f in LOG_SCALES:
        sigma = f * d / (2 * np.sqrt(2))
        response = ndimage.gaussian_laplace(z, sigma) * sigma**2
        maps.append((response - response.mean()) / (response.std() + 1e-12))
    low = ndimage.gaussian_filter(z, d / 6)
    maps.append(low)
    maps.append(low - ndimage.gaussian_filter(z, d / 2))
    return np.stack(maps).astype(np.float32), factor


def blob_features(image: np.ndarray, rc: np.ndarray, diameter: float) -> np.ndarray:
    """``(N, len(NAMES))`` blob features of candidates at px ``rc`` ``(N, 2)`` (row, col) of
    ``image`` ``(rows, cols)`` whose particles are ``diameter`` px across."""
    rc = np.asarray(rc, np.float64).reshape(-1, 2)
    if not len(rc):
        return np.zeros((0, len(NAMES)), np.float32)
    maps, factor = blob_maps(image, diameter)
    # pixel centres: binned px (i + 0.5) * factor - 0.5 in the image
    r = np.clip(np.floor((rc[:, 0] + 0.5) / factor).astype(np.int64), 0, maps.shape[1] - 1)
    c = np.clip(np.floor((rc[:, 1] + 0.5) / factor).astype(np.int64), 0, maps.shape[2] - 1)
    values = maps[:, r, c].T
    return np.concatenate([values, values**2], axis=1)
