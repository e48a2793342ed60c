"""Images in a grid, drawn as one picture: class averages, particles.

A grid of ``K`` subplots costs matplotlib an axes each to make and draw (about 1 s for 24
class averages on one core, written five times in a ``cryosift run``); here the images are
laid into one mosaic, drawn by one ``imshow``, with the titles as text and the frames as one
collection of rectangles. Each image keeps its own grey range, as a subplot of its own
would show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Gap between images and the height of a title's band, in images' sides.
GAP = 0.1
TITLE_BAND = 0.3
#: The particle-diameter circle's colour: visible on black and on white.
CIRCLE_COLOUR = "#ffbf00"


def min_max(image: np.ndarray) -> tuple[float, float]:
    """Grey levels shown by default: the image's own minimum to maximum (a flat image gets
    a unit range)."""
    lo, hi = float(np.min(image)), float(np.max(image))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def mosaic(
    images: np.ndarray,
    columns: int,
    ranges: Sequence[tuple[float, float]],
    band: float = 0.0,
    shown: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(K, n, n)`` in rows of ``columns``, each scaled from its ``ranges[k]``
    (lo, hi) to [0, 1] and clipped; NaN between them, above each in a band of ``band * n``
    px (for a title), around them (half a gap, for their frames) and where ``shown``
    ``(K,)`` is False. Returns the mosaic ``(H, W)`` and each image's top-left corner
    ``(K, 2)`` (column, row) in it."""
    k, n = len(images), images.shape[-1]
    gap, top = max(2, round(GAP * n)), round(band * n)
    cols, rows = min(columns, k), -(-k // columns)
    cell_w, cell_h, edge = n + gap, top + n + gap, gap // 2
    grid = np.full((rows * cell_h + edge, cols * cell_w), np.nan)
    corners = np.zeros((k, 2), int)
    for i, img in enumerate(images):
        x, y = (i % cols) * cell_w + edge, (i // cols) * cell_h + top + edge
        corners[i] = x, y
        if shown is None or shown[i]:
            lo, hi = ranges[i]
            grid[y : y + n, x : x + n] = np.clip((img - lo) / (hi - lo), 0, 1)
    return grid, corners


def draw_grid(
    images: np.ndarray,
    columns: int,
    ranges: Sequence[tuple[float, float]],
    cell_inches: float = 1.1,
    titles: Sequence[str] | None = None,
    frames: Sequence[str] | None = None,
    empty: np.ndarray | None = None,
    circle: float | None = None,
) -> Figure:
    """A matplotlib figure (no pyplot state: nothing to close) of the images ``(K, n, n)``
    (:func:`mosaic`), ``cell_inches`` wide each; with ``titles`` above them, ``frames`` (a
    colour per image) around them, the word "empty" where ``empty`` ``(K,)`` is True
    (nothing drawn there) and, with ``circle``, a dashed circle that many px across about
    each shown image's centre pixel ``n // 2``: the particle diameter the work assumed (the
    user's, or a default), beside what the images show."""
    import matplotlib
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, Rectangle

    n = images.shape[-1]
    band = TITLE_BAND if titles is not None else 0.0
    shown = None if empty is None else ~np.asarray(empty, bool)
    grid, corners = mosaic(images, columns, ranges, band, shown)
    cols = min(columns, len(images))
    width = cols * cell_inches
    fig = Figure(figsize=(width, width * grid.shape[0] / grid.shape[1]))
    ax = fig.add_axes((0, 0, 1, 1))
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=1)  # antialiased where the grid is shrunk
    ax.axis("off")
    for i, (x, y) in enumerate(corners):
        if titles is not None:
            ax.text(x + n / 2, y - band * n / 2, titles[i], fontsize=7, ha="center", va="center")
        if empty is not None and empty[i]:
            ax.text(x + n / 2, y + n / 2, "empty", fontsize=8, ha="center", va="center",
                    color="#777777")  # fmt: skip
    if circle is not None:
        shown_at = corners if empty is None else corners[~np.asarray(empty, bool)]
        rings = [Circle((x + n // 2, y + n // 2), circle / 2) for x, y in shown_at]
        ax.add_collection(PatchCollection(rings, facecolor="none", edgecolor=CIRCLE_COLOUR,
                                          linewidth=0.8, linestyle=(0, (3, 2))))  # fmt: skip
    if frames is not None:
        boxes = [Rectangle((x - 0.5, y - 0.5), n, n) for x, y in corners]
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor=list(frames),
                                          linewidth=2))  # fmt: skip
    return fig
