"""Pick positions moved onto the particle: the strongest dark blob nearby, duplicates merged.

Candidates are local maxima of the particle map, which is built from 4-px tokens and smoothed
at a sixth of the diameter: where particles are faint its maxima sit off the particle's
centre, and two maxima half a diameter apart can mark one particle. The micrograph itself
says more precisely where a particle-sized dark blob lies: its Laplacian of Gaussian (LoG)
at the particle's scale (sigma ``d / (2 sqrt 2)``, strongest at the centre of a dark disc of
diameter ``d``; :mod:`cryosift.picking.blobs` ranks with the same response). So each
written pick:

1. moves to the maximum of that response within :data:`RECENTRE_RADIUS` diameters of where
   the map put it (a small step: the map already found the particle, the micrograph only
   centres it; a larger one lets touching neighbours pull picks together), unless that
   maximum lies on the rim of the disc searched without being a maximum of its own
   neighbourhood: the response still rises there, towards a neighbour's blob, and the pick
   stays (on EMPIAR-10017 such moves took 2 % of the picks off their particle, whose radial
   profile the cleaner then rejected);
2. is dropped when it lands within :data:`COINCIDENT` diameters of a kept pick with a
   stronger response (both found the same blob); picks further apart stay, so touching
   particles (a diameter apart) keep one pick each.

Measured on the sets of ``benchmarks/picking_carry.py`` and ``clean_on_picks.py``
(``picking_carry.md``, "Picks moved onto the blob" and after). The ranker's features and the
survey's boxes are taken at the map's positions, as they were learned; only the written
positions move.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from cryosift.picking.rank import disc_offsets

#: Largest move onto the blob, in particle diameters.
RECENTRE_RADIUS = 0.25
#: Picks landing closer than this many diameters to a stronger one mark the same particle.
COINCIDENT = 0.25


def blob_response(image: np.ndarray, diameter: float) -> np.ndarray:
    """``(rows, cols)`` float32 LoG response of ``image`` ``(rows, cols)`` at the scale of a
    particle ``diameter`` px across, positive (largest) at the centre of a dark disc."""
    z = np.asarray(image, np.float32)
    z = (z - z.mean()) / (z.std() + 1e-12)
    sigma = diameter / (2 * np.sqrt(2))
    return ndimage.gaussian_laplace(z, sigma).astype(np.float32)


def recentre(
    response: np.ndarray, rc: np.ndarray, radius: float, margin: float = 0.0
) -> np.ndarray:
    """``(N, 2)`` int64 positions: each of ``rc`` ``(N, 2)`` (row, col) moved to the largest
    value of ``response`` ``(rows, cols)`` within ``radius`` px, never closer than ``margin``
    px to the edge (staying put is always allowed; ties go to the nearest offset, so a flat
    response leaves a pick in place), and left in place when that value lies on the disc's
    rim (its last pixel) and is not a maximum of its 3 x 3 neighbourhood."""
    rc = np.asarray(rc, np.int64).reshape(-1, 2)
    if not len(rc) or radius < 1:
        return rc.copy()
    rows, cols = response.shape
    lo = np.ceil(margin)
    hi_r, hi_c = np.floor(rows - 1 - margin), np.floor(cols - 1 - margin)
    offsets = disc_offsets(radius)
    offsets = offsets[np.argsort(np.abs(offsets).sum(axis=1), kind="stable")]  # (0, 0) first
    at = rc[:, None, :] + offsets[None]  # (N, K, 2)
    ok = (at[..., 0] >= lo) & (at[..., 0] <= hi_r) & (at[..., 1] >= lo) & (at[..., 1] <= hi_c)
    r = np.clip(at[..., 0], 0, rows - 1)
    c = np.clip(at[..., 1], 0, cols - 1)
    ok[:, 0] = True
    values = np.where(ok, response[r, c], -np.inf)
    best = np.argmax(values, axis=1)
    rim = np.hypot(offsets[:, 0], offsets[:, 1]) > radius - 1
    n = np.flatnonzero(rim[best])  # only the moves onto the rim need their neighbourhood
    pr, pc = r[n, best[n]], c[n, best[n]]
    step = np.arange(-1, 2)
    nr = np.clip(pr[:, None, None] + step[None, :, None], 0, rows - 1)
    nc = np.clip(pc[:, None, None] + step[None, None, :], 0, cols - 1)
    peak = response[pr, pc] >= response[nr, nc].max(axis=(1, 2))  # 3 x 3, edges repeated
    best[n[~peak]] = 0
    return at[np.arange(len(rc)), best]


def suppress(points: np.ndarray, strength: np.ndarray, distance: float) -> np.ndarray:
    """``(N,)`` bool: the points ``(N, 2)`` kept by greedy non-maximum suppression, strongest
    first (``strength`` ``(N,)``; ties by order), each removing the weaker ones closer than or
    at ``distance``."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    keep = np.ones(len(points), bool)
    if len(points) < 2:
        return keep
    order = np.argsort(-np.asarray(strength, np.float64), kind="stable")
    tree = cKDTree(points)
    rank = np.empty(len(points), np.int64)
    rank[order] = np.arange(len(points))
    for i in order:
        if keep[i]:
            near = np.asarray(tree.query_ball_point(points[i], distance), np.int64)
            keep[near[rank[near] > rank[i]]] = False
    return keep


def place_picks(
    image: np.ndarray, rc: np.ndarray, keep: np.ndarray, diameter: float, edge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where to write picks found at ``rc`` ``(N, 2)`` (row, col) of ``image`` ``(rows,
    cols)`` (particles ``diameter`` px across, none closer than ``edge`` px to the border):
    ``(N, 2)`` int64 positions moved onto their blob (:func:`recentre`) and ``(N,)`` bool,
    the picks of ``keep`` ``(N,)`` that do not coincide with a stronger kept one."""
    response = blob_response(image, diameter)
    moved = recentre(response, rc, RECENTRE_RADIUS * diameter, margin=edge)
    kept = np.flatnonzero(keep)
    strength = response[moved[kept, 0], moved[kept, 1]]
    alone = np.asarray(keep, bool).copy()
    alone[kept] = suppress(moved[kept], strength, COINCIDENT * diameter)
    return moved, alone
