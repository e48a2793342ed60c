"""Projections obey the physics: symmetry, mass, RELION's angle convention; shifts lose what
leaves the box."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import starfile
from scipy.spatial.transform import Rotation

from conftest import shared_path
from cryosift.simulate.projection import (
    inplane,
    project,
    random_rotations,
    relion_angles,
    shift_images,
)
from cryosift.simulate.volume import phantom_volume


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_spherical_volume_gives_identical_projections():
    n = 40
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    vol = np.exp(-(z**2 + y**2 + x**2) / (2 * 5.0**2)).astype(np.float32)
    proj = project(vol, random_rotations(6, np.random.default_rng(0)))
    spread = np.abs(proj - proj[0]).max()
    assert spread < 1e-2 * proj.max()  # trilinear interpolation of the central slice
    # and the projection of a Gaussian ball is the 2D Gaussian with the same width
    yy, xx = np.mgrid[:n, :n] - n // 2
    expected = np.sqrt(2 * np.pi) * 5.0 * np.exp(-(yy**2 + xx**2) / (2 * 5.0**2))
    assert np.abs(proj[0] - expected).max() < 0.01 * expected.max()


def test_projection_integrates_to_the_mass_of_the_volume():
    vol = phantom_volume(48, seed=3)
    proj = project(vol, random_rotations(10, np.random.default_rng(1)))
    mass = vol.sum(dtype=np.float64)
    np.testing.assert_allclose(proj.sum(axis=(1, 2)), mass, rtol=0.02)


def test_asymmetric_phantom_projections_differ_by_view():
    vol = phantom_volume(48)
    proj = project(vol, random_rotations(2, np.random.default_rng(4)))
    assert _corr(proj[0], proj[1]) < 0.95


def test_inplane_rotation_rotates_the_image():
    vol = phantom_volume(48)
    r = random_rotations(1, np.random.default_rng(2))
    a = project(vol, r)[0]
    b = project(vol, inplane(r, np.array([np.pi / 2])))[0]
    assert max(_corr(np.rot90(a, k), b) for k in (1, 3)) > 0.98
    assert _corr(a, b) < 0.95


def test_relion_angles_round_trip():
    r = random_rotations(20, np.random.default_rng(3))
    back = Rotation.from_euler("ZYZ", relion_angles(r), degrees=True).as_matrix()
    np.testing.assert_allclose(back, r, atol=1e-9)


def test_projections_match_relion_at_the_star_angles():
    """RELION's own projections of the 70S map: our convention must reproduce them."""
    vol = np.load(shared_path("ribosome70s", "vol_65.npy")).astype(np.float32)
    stack = shared_path("particle_stacks", "rln_proj_65.mrcs")
    ref = mrcfile.read(stack)
    table = starfile.read(stack.with_suffix(".star"))
    angles = table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy()
    rot = Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix()
    ours = project(vol, rot)
    wrong = project(vol, np.transpose(rot, (0, 2, 1)))

    def best(a: np.ndarray, b: np.ndarray) -> float:  # allow a 1 px centring difference
        shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        return max(_corr(np.roll(a, s, (0, 1))[2:-2, 2:-2], b[2:-2, 2:-2]) for s in shifts)

    good = [best(o, r) for o, r in zip(ours, ref, strict=True)]
    bad = [best(w, r) for w, r in zip(wrong, ref, strict=True)]
    assert min(good) > 0.93
    assert max(bad) < 0.8


def test_integer_shift_moves_content_and_loses_what_leaves():
    rng = np.random.default_rng(0)
    img = rng.random((1, 32, 32)).astype(np.float32)
    out = shift_images(img, np.array([[5.0, -7.0]]))[0]
    np.testing.assert_allclose(out[5:, :25], img[0, :27, 7:], atol=1e-4)
    assert np.abs(out[:5]).max() < 1e-4  # zeros came in: nothing wrapped around
    assert np.abs(out[:, 25:]).max() < 1e-4


@pytest.mark.parametrize("shift", [(0.5, 0.25), (-3.3, 2.7)])
def test_subpixel_shift_there_and_back(shift):
    vol = phantom_volume(32)
    img = project(vol, random_rotations(1, np.random.default_rng(1)))
    there = shift_images(img, np.array([shift]))
    back = shift_images(there, -np.array([shift]))
    # away from the borders, where content left the box and was lost
    np.testing.assert_allclose(back[:, 5:-5, 5:-5], img[:, 5:-5, 5:-5], atol=5e-3 * img.max())
