"""Pure functions that cut and normalise particle boxes.

Conventions: a micrograph is ``(rows, cols)``; picks are ``(n, 2)`` arrays of ``(x, y)`` in px
of that micrograph (x = column, y = row, origin top-left). A box of side ``box`` centred on a
pick holds the pick's nearest pixel at ``[box // 2, box // 2]``, the same centre the Fourier
crop keeps, so binning never moves a particle off centre.
"""

from __future__ import annotations

import numpy as np


def box_origins(picks: np.ndarray, box: int) -> np.ndarray:
    """Top-left ``(row, col)`` of each box, ``(n, 2)`` int64, for ``(n, 2)`` picks ``(x, y)``."""
    picks = np.asarray(picks, dtype=np.float64).reshape(-1, 2)
    centre = np.floor(picks + 0.5).astype(np.int64)  # round half up, like RELION's ROUND
    return np.stack([centre[:, 1], centre[:, 0]], axis=1) - box // 2


def boxes_inside(picks: np.ndarray, box: int, shape: tuple[int, int]) -> np.ndarray:
    """``(n,)`` bool: the whole box of each pick lies within a ``(rows, cols)`` micrograph."""
    origin = box_origins(picks, box)
    limit = np.asarray(shape, dtype=np.int64) - box
    return np.all((origin >= 0) & (origin <= limit), axis=1)


def crop_boxes(image: np.ndarray, picks: np.ndarray, box: int, pad: bool = False) -> np.ndarray:
    """Cut ``(n, box, box)`` float32 boxes from ``image`` ``(rows, cols)`` centred on ``picks``.

    Boxes that leave the micrograph are an error unless ``pad``: their missing pixels then
    take the mean of the part of the box that lies inside, so that the background statistics
    of the box are not disturbed.
    """
    image = np.asarray(image)
    origin = box_origins(picks, box)
    offsets = np.arange(box)
    rows = origin[:, :1] + offsets  # (n, box)
    cols = origin[:, 1:] + offsets
    inside_r = (rows >= 0) & (rows < image.shape[0])
    inside_c = (cols >= 0) & (cols < image.shape[1])
    if not pad and not (inside_r.all() and inside_c.all()):
        raise ValueError("some boxes leave the micrograph; pass pad=True to pad them")
    r = np.clip(rows, 0, image.shape[0] - 1)
    c = np.clip(cols, 0, image.shape[1] - 1)
    out = image[r[:, :, None], c[:, None, :]].astype(np.float32)
    if pad:
        valid = inside_r[:, :, None] & inside_c[:, None, :]
        partial = ~valid.all(axis=(1, 2))
        if partial.any():
            sub, ok = out[partial], valid[partial]
            fill = (sub * ok).sum(axis=(1, 2)) / np.maximum(ok.sum(axis=(1, 2)), 1)
            out[partial] = np.where(ok, sub, fill[:, None, None])
    return out


def background_mask(size: int, radius: float) -> np.ndarray:
    """``(size, size)`` bool: pixels farther than ``radius`` px from the centre ``size // 2``."""
    yy, xx = np.indices((size, size)) - size // 2
    return np.hypot(yy, xx) > radius


def normalise_background(images: np.ndarray, radius: float) -> np.ndarray:
    """RELION's normalisation: each ``(B, n, n)`` image shifted and scaled so that its pixels
    outside the circle of ``radius`` px have mean 0 and standard deviation 1. A blank
    background (standard deviation 0) is only shifted."""
    images = np.asarray(images, dtype=np.float32)
    mask = background_mask(images.shape[-1], radius)
    if not mask.any():
        n = images.shape[-1]
        raise ValueError(f"no background: radius {radius:g} px covers the whole {n} px box")
    bg = images[..., mask].astype(np.float64)
    mean = bg.mean(axis=-1)
    std = bg.std(axis=-1)
    std[std <= 1e-12 * np.maximum(np.abs(mean), 1)] = 1.0
    return ((images - mean[..., None, None]) / std[..., None, None]).astype(np.float32)
