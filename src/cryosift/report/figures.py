"""The report's pictures, each a PNG (bytes) drawn with matplotlib's Agg backend.

Colours are fixed per verdict (:data:`COLOURS`) so the overlays, galleries and histograms read
alike. Images are ``(rows, cols)``; coordinates are px of the micrograph, x = column.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import EllipseCollection

from cryosift.classify.gallery import draw_grid
from cryosift.outliers.rules import VERDICTS

COLOURS = {
    "inlier": "#2ca02c",
    "noise": "#9467bd",
    "partial": "#ff7f0e",
    "multiple": "#d62728",
    "not extracted": "#1f77b4",
}


def png(fig) -> bytes:
    """The figure as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def display_range(image: np.ndarray) -> tuple[float, float]:
    """Grey levels shown: the 1st to 99th percentile (a flat image gets a unit range)."""
    lo, hi = np.percentile(image, [1, 99])
    return (float(lo), float(hi)) if hi > lo else (float(lo), float(lo) + 1.0)


def thumbnail(image: np.ndarray, longest: int = 512) -> tuple[np.ndarray, float]:
    """``image`` block-averaged to at most ``longest`` px on its long side, and the factor
    (original px per thumbnail px)."""
    f = max(1, int(np.ceil(max(image.shape) / longest)))
    rows, cols = (s // f * f for s in image.shape)
    small = image[:rows, :cols].reshape(rows // f, f, cols // f, f).mean(axis=(1, 3))
    return small, float(f)


def micrograph_overlay(image: np.ndarray, picks: pd.DataFrame, radius: float, title: str) -> bytes:
    """The micrograph with a circle of ``radius`` px at each pick, coloured by its
    ``verdict`` column (inlier, outlier reasons, or ``not extracted``)."""
    small, f = thumbnail(image)
    fig, ax = plt.subplots(figsize=(4, 4 * small.shape[0] / small.shape[1]))
    lo, hi = display_range(small)
    ax.imshow(small, cmap="gray", vmin=lo, vmax=hi)
    # one collection of circles, not a patch each: 5x faster to draw at 700 picks
    colours = [COLOURS.get(str(v), "#ffffff") for v in picks.verdict]
    xy = np.stack([picks.x.to_numpy(float), picks.y.to_numpy(float)], axis=1) / f
    side = 2 * radius / f
    circles = EllipseCollection(side, side, 0.0, units="xy", offsets=xy,
                                offset_transform=ax.transData, facecolors="none",
                                edgecolors=colours, linewidths=1.0)  # fmt: skip
    ax.add_collection(circles, autolim=False)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return png(fig)


def gallery(images: np.ndarray, columns: int = 12) -> bytes:
    """Particle images ``(n, d, d)`` in a grid, each scaled to its own grey range."""
    return png(draw_grid(images, columns, [display_range(im) for im in images], 0.7))


def mean_images(means: dict[str, np.ndarray], counts: dict[str, int]) -> bytes:
    """The mean image of each verdict side by side."""
    names = [v for v in VERDICTS if v in means]
    fig, axes = plt.subplots(1, len(names), figsize=(1.8 * len(names), 2.1), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=True):
        lo, hi = display_range(means[name])
        ax.imshow(means[name], cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(f"{name} ({counts[name]:,})", fontsize=8, color=COLOURS[name])
        ax.axis("off")
    return png(fig)


def stacked_counts(
    groups: list[np.ndarray], bins: int | list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of the finite values of each of ``groups`` on shared ``bins`` (a count,
    over the finite values' range, or the edges), stacked: ``(G + 1, B)`` cumulative counts
    (row 0 zero, row ``g + 1`` the top of group ``g``) and the ``(B + 1,)`` edges."""
    finite = [g[np.isfinite(g)] for g in groups]
    pooled = np.concatenate([np.zeros(0), *finite])
    edges = np.histogram_bin_edges(pooled, bins)
    counts = [np.histogram(g, edges)[0] for g in finite]
    return np.cumsum([np.zeros(len(edges) - 1), *counts], axis=0), edges


def histogram_by_verdict(table: pd.DataFrame, column: str, label: str) -> bytes:
    """Histogram of ``column`` with one stacked colour per verdict, each drawn as one filled
    outline (a bar per bin and verdict costs matplotlib an artist each)."""
    values = table[column].to_numpy(float)
    finite = values[np.isfinite(values)]
    bins: int | list[float] = (
        list(np.linspace(finite.min(), finite.max(), 40)) if len(finite) else 10
    )
    if len(finite) and finite.min() == finite.max():
        bins = 10
    fig, ax = plt.subplots(figsize=(5, 2.6))
    names = [v for v in VERDICTS if (table.verdict == v).any()]
    groups = [table.loc[table.verdict == v, column].to_numpy(float) for v in names]
    tops, edges = stacked_counts(groups, bins)
    for i, name in enumerate(names):
        ax.stairs(tops[i + 1], edges, baseline=tops[i], fill=True, color=COLOURS[name],
                  label=name)  # fmt: skip
    ax.set_xlabel(label)
    ax.set_ylabel("particles")
    ax.legend(fontsize=7, frameon=False)
    return png(fig)


def picks_per_micrograph(counts: np.ndarray) -> bytes:
    """Histogram of the number of picks per micrograph."""
    fig, ax = plt.subplots(figsize=(5, 2.6))
    counts = np.asarray(counts)
    top = int(counts.max()) if len(counts) else 1
    heights, edges = np.histogram(counts, bins=min(30, max(1, top + 1)))
    ax.stairs(heights, edges, fill=True, color="#555555")
    ax.set_xlabel("picks per micrograph")
    ax.set_ylabel("micrographs")
    return png(fig)
