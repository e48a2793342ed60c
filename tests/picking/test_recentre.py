"""Picks moved onto their blob: centred on a dark disc, duplicates merged, neighbours kept."""

import numpy as np
import pytest

from cryosift.picking.recentre import (
    COINCIDENT,
    RECENTRE_RADIUS,
    blob_response,
    place_picks,
    recentre,
    suppress,
)

D = 24.0


def discs(centres, shape=(160, 200), diameter=D, noise=0.0, seed=0) -> np.ndarray:
    """``shape`` image of dark discs (depth 1) at ``centres`` (row, col), plus white noise."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.random.default_rng(seed).normal(0, noise, shape) if noise else np.zeros(shape)
    for r, c in centres:
        image -= np.hypot(yy - r, xx - c) <= diameter / 2
    return image


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_a_pick_off_a_disc_moves_onto_its_centre(noise):
    image = discs([(80, 100)], noise=noise)
    off = np.array([[80 + 4, 100 - 3]])  # 5 px: within RECENTRE_RADIUS * D = 6 px
    moved = recentre(blob_response(image, D), off, RECENTRE_RADIUS * D)
    assert np.hypot(*(moved[0] - [80, 100])) <= 1.5
    assert np.hypot(*(off[0] - [80, 100])) == 5.0


def test_two_picks_on_one_disc_become_one_and_touching_discs_keep_one_each():
    centres = [(80, 60), (80, 60 + D), (80, 150)]  # the first two touch
    image = discs(centres, noise=0.3)
    rc = np.array([[80, 63], [77, 58], [80, 60 + D - 3], [82, 153], [80, 147]])
    keep = np.array([True, True, True, True, False])
    moved, alone = place_picks(image, rc, keep, D, edge=D / 2)
    assert alone.tolist() == [True, False, True, True, False]  # a duplicate of pick 0 goes
    for i, j in [(0, 0), (2, 1), (3, 2)]:
        assert np.hypot(*(moved[i] - centres[j])) <= 2.0
    assert np.hypot(*(moved[0] - moved[2])) > COINCIDENT * D  # neighbours stay apart


def test_a_flat_response_leaves_picks_in_place_and_the_margin_holds():
    rc = np.array([[10, 10], [50, 60], [3, 40]])
    assert np.array_equal(recentre(np.zeros((80, 90)), rc, 6.0), rc)
    image = discs([(2, 40)], shape=(80, 90), diameter=12)  # a blob at the very edge
    moved = recentre(blob_response(image, 12), np.array([[9, 40]]), 6.0, margin=6.0)
    assert moved[0, 0] >= 6  # not pulled closer than the margin to the edge


def test_suppress_is_greedy_strongest_first():
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 100, (300, 2))
    strength = rng.normal(size=300)
    keep = suppress(points, strength, 8.0)
    brute = np.zeros(300, bool)
    for i in np.argsort(-strength, kind="stable"):  # the definition, one point at a time
        near = np.hypot(*(points[brute] - points[i]).T) <= 8.0
        brute[i] = not near.any()
    assert np.array_equal(keep, brute)
    assert 0 < keep.sum() < 300


def test_a_pick_is_not_pulled_to_the_rim_by_a_rising_response():
    """A response still rising at the rim of the disc searched (a neighbour's slope) leaves
    the pick in place; a blob centre lying on the rim (a maximum of its own neighbourhood)
    is moved onto; one inside the disc too."""
    yy, xx = np.mgrid[:60, :60].astype(float)
    pick, radius = np.array([[30, 30]]), 6.0
    slope = xx / 60  # rises to the right, past the rim
    assert np.array_equal(recentre(slope, pick, radius)[0], [30, 30])
    for dx in (6, 3):  # a peak on the rim, then inside the disc
        peak = -np.hypot(yy - 30, xx - 30 - dx)
        assert np.array_equal(recentre(peak, pick, radius)[0], [30, 30 + dx])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recentre_equals_the_whole_image_maximum_filter_rule(seed):
    """The rim rule read at the chosen points only gives what a 3 x 3 maximum filter over the
    whole response (edges repeated) gives: a move onto the rim is kept only at a local peak."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    response = ndimage.gaussian_filter(rng.normal(size=(70, 90)), 2).astype(np.float32)
    rc = np.stack([rng.integers(0, 70, 400), rng.integers(0, 90, 400)], axis=1)
    radius = 5.0
    moved = recentre(response, rc, radius)
    offsets = moved - rc
    on_rim = np.hypot(*offsets.T) > radius - 1
    peak = response == ndimage.maximum_filter(response, 3, mode="nearest")
    assert peak[moved[on_rim, 0], moved[on_rim, 1]].all()  # rim moves land on peaks only
    # and every pick left in place whose best was a rim non-peak: the rule without it
    free = rc + 0
    for i, (r, c) in enumerate(rc):  # the definition, one pick at a time
        best, where = -np.inf, (r, c)
        for dr in range(-5, 6):
            for dc in range(-5, 6):
                if np.hypot(dr, dc) <= radius and 0 <= r + dr < 70 and 0 <= c + dc < 90:
                    v = response[r + dr, c + dc]
                    key = (v, -(abs(dr) + abs(dc)))
                    if best == -np.inf or key > best:
                        best, where = key, (r + dr, c + dc)
        d = np.hypot(where[0] - r, where[1] - c)
        free[i] = where if d <= radius - 1 or peak[where] else (r, c)
    assert np.array_equal(moved, free)
    assert on_rim.any() and (moved != rc).any()
