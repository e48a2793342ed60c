"""The grid drawn as one picture: each image in its place, at its own grey range."""

from io import BytesIO

import numpy as np
from PIL import Image

from cryosift.classify.gallery import draw_grid, min_max, mosaic


def test_mosaic_places_each_image_scaled_to_its_own_range_with_nothing_between():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 16, 16)) * np.arange(1, 6)[:, None, None]
    ranges = [min_max(im) for im in images]
    grid, corners = mosaic(images, 3, ranges, band=0.25, shown=np.array([1, 1, 0, 1, 1], bool))
    for i, (x, y) in enumerate(corners):
        tile = grid[y : y + 16, x : x + 16]
        if i == 2:
            assert np.isnan(tile).all()
            continue
        lo, hi = ranges[i]
        np.testing.assert_allclose(tile, (images[i] - lo) / (hi - lo))
        assert tile.min() == 0 and tile.max() == 1
    assert corners[3, 1] > corners[0, 1] + 16 and corners[1, 0] > corners[0, 0] + 16  # 2 rows
    covered = np.zeros(grid.shape, bool)
    for x, y in corners:
        covered[y : y + 16, x : x + 16] = True
    assert np.isnan(grid[~covered]).all()  # titles' bands, gaps, margins and the empty cell


def test_frames_take_their_colours():
    images = np.random.default_rng(1).normal(size=(2, 24, 24))
    fig = draw_grid(images, 2, [min_max(im) for im in images], titles=["a", "b"],
                    frames=["#2ca02c", "#d62728"])  # fmt: skip
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    rgb = np.asarray(Image.open(buf).convert("RGB"), int)
    half = rgb.shape[1] // 2
    green = (rgb[..., 1] > 120) & (rgb[..., 0] < 90) & (rgb[..., 2] < 90)
    red = (rgb[..., 0] > 170) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    assert green[:, :half].sum() > 50 and green[:, half:].sum() == 0
    assert red[:, half:].sum() > 50 and red[:, :half].sum() == 0


def _amber(fig) -> np.ndarray:
    """The figure's pixels ``(H, W)`` of the circle's colour (on black, antialiased), 80 dpi."""
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    rgb = np.asarray(Image.open(buf).convert("RGB"), int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r - b > 80) & (r >= g) & (g - b > 40)


def test_the_diameter_circle_is_drawn_to_scale_on_shown_images_only():
    """The dashed circle is ``circle`` px of the images across, centred on each shown image
    (not on an empty class), and absent unless asked for."""
    images = np.zeros((2, 24, 24))
    ranges = [min_max(im) for im in images]
    empty = np.array([False, True])
    assert not _amber(draw_grid(images, 2, ranges, empty=empty)).any()
    amber = _amber(draw_grid(images, 2, ranges, empty=empty, circle=12))
    grid, corners = mosaic(images, 2, ranges)
    scale = amber.shape[1] / grid.shape[1]  # figure px per image px
    half = amber.shape[1] // 2
    assert amber[:, :half].sum() > 20 and amber[:, half:].sum() == 0
    rows, cols = np.nonzero(amber[:, :half])
    assert abs((cols.max() - cols.min()) - 12 * scale) <= 3
    assert abs((rows.max() - rows.min()) - 12 * scale) <= 3
    centre = (corners[0] + 12) * scale  # pixel n // 2 of the first image, (x, y)
    assert abs((cols.max() + cols.min()) / 2 - centre[0]) <= 3
    assert abs((rows.max() + rows.min()) / 2 - centre[1]) <= 3
