"""The picker's preprocessing: exact coordinate maps, and each filter doing what it says."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cryosift.preprocess.micrograph import (
    guided_filter,
    normalise_background,
    plan_resize,
    preprocess,
)


@pytest.mark.parametrize("shape", [(4096, 4096), (3710, 3838), (2000, 3000), (800, 600)])
def test_resize_keeps_aspect_and_maps_back_exactly(shape):
    plan = plan_resize(shape)
    assert max(plan.out_shape) == min(1024, max(shape))
    assert plan.out_shape[0] / plan.out_shape[1] == pytest.approx(shape[0] / shape[1], rel=2e-3)
    x = np.array([0.0, 17.25, shape[1] - 1.0])
    y = np.array([0.0, 33.5, shape[0] - 1.0])
    xb, yb = plan.to_original(*plan.to_preprocessed(x, y))
    np.testing.assert_allclose(xb, x, atol=1e-9)
    np.testing.assert_allclose(yb, y, atol=1e-9)
    # the outer pixel edges coincide
    assert plan.to_original(np.array([-0.5]), np.array([-0.5]))[0][0] == pytest.approx(-0.5)


@pytest.mark.parametrize("shape", [(3000, 2000), (2048, 3072)])
def test_blob_at_known_position_stays_there(shape):
    rng = np.random.default_rng(1)
    diameter = 90.0
    y0, x0 = 0.37 * shape[0] + 0.3, 0.61 * shape[1] + 0.7
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * (diameter / 4) ** 2))
    image = 100 - 20 * blob + rng.normal(0, 1, shape)  # dark particle, as in micrographs
    pre, plan = preprocess(image, diameter)
    smooth = ndimage.gaussian_filter(-pre, diameter / plan.scale / 6)
    r, c = np.unravel_index(np.argmax(smooth), smooth.shape)
    x, y = plan.to_original(np.array([c]), np.array([r]))
    # found within one preprocessed pixel of the true centre, in original px
    assert abs(x[0] - x0) <= plan.sx and abs(y[0] - y0) <= plan.sy


def test_output_standardised_and_finite():
    rng = np.random.default_rng(2)
    pre, _ = preprocess(rng.normal(5, 3, (700, 900)).astype(np.float32), 40)
    assert np.isfinite(pre).all() and pre.dtype == np.float32
    assert abs(pre.mean()) < 1e-3 and pre.std() == pytest.approx(1, abs=1e-3)


def test_reference_filters_differ_from_proper():
    rng = np.random.default_rng(3)
    img = rng.normal(size=(512, 512))
    a, _ = preprocess(img, 30, filters="proper")
    b, _ = preprocess(img, 30, filters="reference")
    assert not np.allclose(a, b)
    with pytest.raises(ValueError):
        preprocess(img, 30, filters="blur")


def test_background_normalisation_removes_gradient():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:400, :400]
    img = 0.05 * xx + (1 + yy / 200) * rng.normal(size=(400, 400))  # ramp and varying noise
    z = normalise_background(img, 30)
    inner = z[60:-60, 60:-60]
    left, right = inner[:, :100], inner[:, -100:]
    assert abs(left.mean() - right.mean()) < 0.1
    top, bottom = inner[:100], inner[-100:]
    assert top.std() == pytest.approx(bottom.std(), rel=0.1)


def test_guided_filter_keeps_edges_and_smooths_noise():
    rng = np.random.default_rng(5)
    step = np.zeros((200, 200))
    step[:, 100:] = 1.0
    noisy = step + rng.normal(0, 0.05, step.shape)
    out = guided_filter(noisy, 4, eps=1e-2)  # noise variance 2.5e-3 << eps << edge's 0.25
    assert np.std(out[:, 20:80]) < 0.5 * np.std(noisy[:, 20:80])  # smoother
    assert out[:, 110:].mean() - out[:, :90].mean() > 0.95  # edge kept
    const = np.full((50, 50), 3.0)
    np.testing.assert_allclose(guided_filter(const, 3, 1e-3), const, rtol=1e-6)


def test_area_resize_is_block_mean_and_keeps_the_mean():
    """A whole factor averages blocks; any factor keeps the mean of a constant and of a
    ramp's centre line (each output pixel averages exactly its footprint)."""
    from cryosift.preprocess.micrograph import area_weights, resize

    rng = np.random.default_rng(3)
    image = rng.normal(size=(64, 96)).astype(np.float32)
    plan = plan_resize(image.shape, long_side=24)  # factor 4
    blocks = image.reshape(16, 4, 24, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(resize(image, plan), blocks, atol=1e-6)
    for n_in, n_out, tol in [(96, 24, 1e-4), (100, 37, 0.5), (3838, 1024, 0.5), (7, 7, 1e-6)]:
        w = area_weights(n_in, n_out).toarray()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(w.sum(axis=0).sum(), n_out, rtol=1e-6)
        # a ramp of pixel-centre positions averages to the output pixel centres: exactly for
        # whole factors, within half an input pixel (the staircase) otherwise, no drift
        x = np.arange(n_in, dtype=np.float64)
        centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        err = w @ x - centres
        assert np.abs(err).max() <= tol and abs(err.mean()) < 0.05


@pytest.mark.parametrize(("shape", "diameter"), [((4096, 4096), 108.0), ((3710, 3838), 61.0)])
def test_working_scale_follows_the_particle_and_maps_back(shape, diameter):
    """The particle spans WORK_DIAMETER px at the working scale whatever the micrograph's
    size; a small particle is never enlarged; coordinates map back exactly."""
    from cryosift.preprocess.micrograph import WORK_DIAMETER

    plan = plan_resize(shape, diameter=diameter, diameter_px=WORK_DIAMETER)
    assert diameter / plan.scale == pytest.approx(WORK_DIAMETER, rel=2e-3)
    x = np.array([0.0, 1234.5, shape[1] - 1.0])
    y = np.array([0.0, 77.25, shape[0] - 1.0])
    xb, yb = plan.to_original(*plan.to_preprocessed(x, y))
    np.testing.assert_allclose(xb, x, atol=1e-9)
    np.testing.assert_allclose(yb, y, atol=1e-9)
    small = plan_resize(shape, diameter=WORK_DIAMETER / 2, diameter_px=WORK_DIAMETER)
    assert small.out_shape == shape
    # the same micrograph binned by 2 works at the same scale (the particle halves too)
    binned = plan_resize(
        (shape[0] // 2, shape[1] // 2), diameter=diameter / 2, diameter_px=WORK_DIAMETER
    )
    assert binned.out_shape == pytest.approx(plan.out_shape, abs=1)
