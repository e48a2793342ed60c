"""Cutting and normalising boxes: centring, padding, RELION's background normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryosift.extract.boxes import (
    background_mask,
    box_centres,
    box_origins,
    boxes_inside,
    crop_boxes,
    normalise_background,
    repeat_edges,
    subtract_ramp,
)


def _gaussians(shape, picks, sigma):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.float32)
    for x, y in picks:
        out += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return out


@pytest.mark.parametrize("box", [16, 17])
def test_boxes_are_centred_on_picks(box):
    picks = np.array([[30.0, 20.0], [100.0, 45.0], [61.0, 70.0]])  # (x, y): x = column
    image = _gaussians((90, 130), picks, 2.0)  # not square: a swapped axis would show
    boxes = crop_boxes(image, picks, box)
    assert boxes.shape == (3, box, box)
    for b in boxes:
        assert np.unravel_index(np.argmax(b), b.shape) == (box // 2, box // 2)


def test_origins_truncate_like_relion():
    """RELION casts a coordinate to ``long int``: 10.99 -> 10, never rounded up."""
    np.testing.assert_array_equal(box_origins(np.array([[10.5, 3.99]]), 4), [[1, 8]])
    centre, frac = box_centres(np.array([[7.75, 2.25]]))
    np.testing.assert_array_equal(centre, [[7, 2]])
    np.testing.assert_allclose(frac, [[0.75, 0.25]])


def test_padding_repeats_the_edge_or_fills():
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    picks = np.array([[1.0, 10.0], [15.0, 10.0]])
    assert boxes_inside(picks, 8, image.shape).tolist() == [False, True]
    with pytest.raises(ValueError, match="leave the micrograph"):
        crop_boxes(image, picks, 8)
    boxes = crop_boxes(image, picks, 8, pad=True)
    inside = image[6:14, 0:5]  # columns -3..4 of which 0..4 exist
    np.testing.assert_array_equal(boxes[0][:, 3:], inside)
    # RELION: the missing columns repeat micrograph column 0
    np.testing.assert_array_equal(boxes[0][:, :3], np.repeat(inside[:, :1], 3, axis=1))
    np.testing.assert_array_equal(boxes[1], image[6:14, 11:19])
    filled = crop_boxes(image, picks, 8, pad=True, fill=-5.0)
    assert (filled[0][:, :3] == -5).all() and (filled[0][:, 3:] == inside).all()
    # repeating the edge of a filled box gives the padded box back
    np.testing.assert_array_equal(repeat_edges(filled, picks, image.shape), boxes)


def test_ramp_is_removed_exactly():
    n = 24
    yy, xx = np.indices((n, n)) - n // 2
    plane = 0.3 * xx - 0.7 * yy + 5.0
    blob = np.exp(-(xx**2 + yy**2) / 8.0)
    images = np.stack([plane + blob, 2 * plane]).astype(np.float32)
    mask = background_mask(n, 6)
    flat = subtract_ramp(images, mask)
    assert np.abs(flat[1]).max() < 1e-4  # a pure plane leaves nothing
    np.testing.assert_allclose(flat[0], blob - blob[mask].mean(), atol=2e-3)
    out = normalise_background(images[:1], 6)
    assert abs(out[0][mask].mean()) < 1e-5 and out[0][mask].std() == pytest.approx(1, rel=1e-4)
    # without the ramp, only the mean is removed: the background keeps the plane's spread
    kept = normalise_background(images[:1], 6, ramp=False)
    assert np.corrcoef(kept[0][mask], plane[mask])[0, 1] > 0.99


@settings(max_examples=25, deadline=None)
@given(
    st.integers(8, 40),
    st.floats(0.0, 0.45),
    st.floats(-100, 100),
    st.floats(0.01, 100),
    st.integers(0, 2**32 - 1),
)
def test_background_is_mean_zero_std_one(n, radius_fraction, offset, scale, seed):
    rng = np.random.default_rng(seed)
    images = (rng.normal(size=(3, n, n)) * scale + offset).astype(np.float32)
    radius = radius_fraction * n
    out = normalise_background(images, radius)
    bg = out[:, background_mask(n, radius)]
    np.testing.assert_allclose(bg.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(bg.std(axis=1), 1, rtol=1e-3)


def test_blank_images_do_not_divide_by_zero():
    out = normalise_background(np.full((2, 12, 12), 7.0, np.float32), 4)
    assert np.isfinite(out).all() and np.allclose(out, 0)
    with pytest.raises(ValueError, match="no background"):
        normalise_background(np.zeros((1, 8, 8), np.float32), 10)
