"""Pure functions that cut and normalise particle boxes, as RELION's ``relion_preprocess``.

Conventions: a micrograph is ``(rows, cols)``; picks are ``(n, 2)`` arrays of ``(x, y)`` in px
of that micrograph (x = column, y = row, origin top-left). A pick's box is centred on the
pixel RELION takes, the integer part of each coordinate (its ``(long int)`` cast), which sits
at ``[box // 2, box // 2]``: the same centre the Fourier crop keeps, so binning never moves a
particle off centre. The fractional part is returned separately for sub-pixel centring
(an option beyond RELION, by a Fourier shift).
"""

from __future__ import annotations

import numpy as np


def box_centres(picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` int64 ``(x, y)`` pixels RELION centres each box on (the coordinates
    truncated towards zero) and the ``(n, 2)`` float64 remainder, ``picks - centres``."""
    picks = np.asarray(picks, dtype=np.float64).reshape(-1, 2)
    centre = np.trunc(picks).astype(np.int64)
    return centre, picks - centre


def box_origins(picks: np.ndarray, box: int) -> np.ndarray:
    """Top-left ``(row, col)`` of each box, ``(n, 2)`` int64, for ``(n, 2)`` picks ``(x, y)``."""
    centre, _ = box_centres(picks)
    return np.stack([centre[:, 1], centre[:, 0]], axis=1) - box // 2


def boxes_inside(picks: np.ndarray, box: int, shape: tuple[int, int]) -> np.ndarray:
    """``(n,)`` bool: the whole box of each pick lies within a ``(rows, cols)`` micrograph."""
    origin = box_origins(picks, box)
    limit = np.asarray(shape, dtype=np.int64) - box
    return np.all((origin >= 0) & (origin <= limit), axis=1)


def _indices(origin: np.ndarray, box: int, shape: tuple[int, int]):
    """Micrograph rows ``(n, box)`` and columns ``(n, box)`` of each box, and which lie inside."""
    offsets = np.arange(box)
    rows = origin[:, :1] + offsets
    cols = origin[:, 1:] + offsets
    inside_r = (rows >= 0) & (rows < shape[0])
    inside_c = (cols >= 0) & (cols < shape[1])
    return rows, cols, inside_r, inside_c


def crop_boxes(
    image: np.ndarray, picks: np.ndarray, box: int, pad: bool = False, fill: float | None = None
) -> np.ndarray:
    """Cut ``(n, box, box)`` float32 boxes from ``image`` ``(rows, cols)`` centred on ``picks``.

    Boxes that leave the micrograph are an error unless ``pad``. Padded, their missing pixels
    repeat the nearest pixel of the micrograph (RELION's default), or take ``fill`` when it is
    given (RELION fills with the micrograph's mean before phase flipping, then repeats the
    edge: :func:`repeat_edges`).
    """
    image = np.asarray(image)
    origin = box_origins(picks, box)
    rows, cols, inside_r, inside_c = _indices(origin, box, image.shape)
    if not pad and not (inside_r.all() and inside_c.all()):
        raise ValueError("some boxes leave the micrograph; pass pad=True to pad them")
    r = np.clip(rows, 0, image.shape[0] - 1)
    c = np.clip(cols, 0, image.shape[1] - 1)
    out = image[r[:, :, None], c[:, None, :]].astype(np.float32)
    if pad and fill is not None:
        valid = inside_r[:, :, None] & inside_c[:, None, :]
        out = np.where(valid, out, np.float32(fill))
    return out


def repeat_edges(boxes: np.ndarray, picks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(n, box, box)`` boxes whose pixels outside a ``(rows, cols)`` micrograph are replaced
    by the box's own pixel at the nearest place inside it (RELION's boundary rule: lines of
    repeated values, not zeros). Boxes wholly inside are returned unchanged."""
    box = boxes.shape[-1]
    origin = box_origins(picks, box)
    rows, cols, _, _ = _indices(origin, box, shape)
    r = np.clip(rows, 0, shape[0] - 1) - origin[:, :1]
    c = np.clip(cols, 0, shape[1] - 1) - origin[:, 1:]
    n = np.arange(len(boxes))[:, None, None]
    return boxes[n, r[:, :, None], c[:, None, :]]


def background_mask(size: int, radius: float) -> np.ndarray:
    """``(size, size)`` bool: pixels farther than ``radius`` px from the centre ``size // 2``."""
    yy, xx = np.indices((size, size)) - size // 2
    return np.hypot(yy, xx) > radius


def subtract_ramp(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(B, n, n)`` images minus the plane ``a x + b y + c`` fitted by least squares to each
    image's pixels where ``mask`` ``(n, n)`` is true (RELION's background ramp), float64."""
    n = images.shape[-1]
    yy, xx = np.indices((n, n)) - n // 2
    design = np.stack([xx[mask], yy[mask], np.ones(int(mask.sum()))], axis=1).astype(float)
    coef = images[..., mask].astype(np.float64) @ np.linalg.pinv(design).T  # (B, 3)
    plane = coef[:, 0, None, None] * xx + coef[:, 1, None, None] * yy + coef[:, 2, None, None]
    return images.astype(np.float64) - plane


def normalise_background(images: np.ndarray, radius: float, ramp: bool = True) -> np.ndarray:
    """RELION's normalisation: each ``(B, n, n)`` image has the plane fitted to its pixels
    outside the circle of ``radius`` px removed (``ramp``; else only the mean), then is
    shifted and scaled so that those pixels have mean 0 and standard deviation 1. A blank
    background (standard deviation 0) is only shifted."""
    images = np.asarray(images, dtype=np.float32)
    mask = background_mask(images.shape[-1], radius)
    if not mask.any():
        n = images.shape[-1]
        raise ValueError(f"no background: radius {radius:g} px covers the whole {n} px box")
    work = subtract_ramp(images, mask) if ramp and mask.sum() >= 3 else images
    bg = work[..., mask].astype(np.float64)
    mean = bg.mean(axis=-1)
    std = bg.std(axis=-1)
    std[std <= 1e-12 * np.maximum(np.abs(mean), 1)] = 1.0
    return ((work - mean[..., None, None]) / std[..., None, None]).astype(np.float32)
