"""DBSCAN for many tiny point sets at once.

The detector clusters the A (about 10) strongest correlation peaks of every particle image.
Calling scikit-learn once per image costs far more in overhead than in arithmetic, so this
module runs DBSCAN on a whole batch with array operations. The labels are identical to
``sklearn.cluster.DBSCAN(eps, min_samples).fit_predict`` for each set, including its
tie-breaking: a border point reachable from two clusters joins the one found first, and
clusters are numbered in order of their lowest-index core point
(``tests/outliers/test_dbscan.py`` checks this with hypothesis).
"""

from __future__ import annotations

import numpy as np


def dbscan_batch(points: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Label each point set of a batch as scikit-learn's DBSCAN would.

    Parameters
    ----------
    points: ``(..., n, dim)`` coordinates; every leading index is an independent point set.
    eps: neighbourhood radius (inclusive, Euclidean distance).
    min_samples: neighbours (the point itself included) that make a point a core point.

    Returns
    -------
    ``(..., n)`` int64 labels: ``-1`` for noise, else clusters ``0, 1, ...``.
    """
    points = np.asarray(points, dtype=np.float64)
    *batch, n, _ = points.shape
    pts = points.reshape(-1, n, points.shape[-1])
    diff = pts[:, :, None, :] - pts[:, None, :, :]
    dist = np.sqrt(np.einsum("bijk,bijk->bij", diff, diff))
    neighbours = dist <= eps  # (B, n, n), the point itself included
    core = neighbours.sum(axis=-1) >= min_samples  # (B, n)

    sentinel = n
    index = np.arange(n)
    core_link = neighbours & core[:, :, None] & core[:, None, :]
    # Each core point takes the smallest index of any core point it is connected to.
    comp = np.where(core, index[None, :], sentinel)
    for _ in range(n):
        reached = np.where(core_link, comp[:, None, :], sentinel).min(axis=-1)
        new = np.where(core, np.minimum(reached, comp), sentinel)
        if np.array_equal(new, comp):
            break
        comp = new
    # Border points join the earliest-found cluster among their core neighbours.
    border = np.where(neighbours & core[:, None, :], comp[:, None, :], sentinel).min(axis=-1)
    root = np.where(core, comp, border)  # smallest core index of the cluster, or sentinel

    is_first = core & (comp == index[None, :])
    rank = np.cumsum(is_first, axis=1) - 1  # cluster number of each first core point
    labels = np.where(
        root < sentinel, np.take_along_axis(rank, np.minimum(root, n - 1), axis=1), -1
    )
    return labels.reshape(*batch, n).astype(np.int64)
