"""Fourier cropping and phase flipping keep the physics right."""

import numpy as np
import pytest
from scipy import fft as sfft
from torch_ctf import calculate_ctf_2d

from conftest import disc_blob
from cryosift.io.particles import CtfParams
from cryosift.preprocess.fourier import ctf_signs, ctf_values, fourier_crop, phase_flip_and_crop


def _ctf(n: int, du: float = 15000.0, dv: float = 14000.0, angle: float = 30.0) -> CtfParams:
    def full(v):
        return np.full(n, v, dtype=float)

    return CtfParams(
        defocus_u=full(du),
        defocus_v=full(dv),
        angle=full(angle),
        voltage=full(300.0),
        cs=full(2.7),
        amplitude_contrast=full(0.1),
        phase_shift=full(0.0),
    )


def test_crop_preserves_mean_and_centre():
    n, d = 128, 55
    img = disc_blob(n, (n // 2, n // 2), 20)[None] + 0.25
    small = fourier_crop(img, d)
    assert small.shape == (1, d, d)
    assert small.mean() == pytest.approx(img.mean(), rel=1e-4)
    peak = np.unravel_index(np.argmax(small[0]), (d, d))
    assert peak == (d // 2, d // 2)


def test_crop_scales_a_shift():
    n, d = 120, 60  # binning by 2: a 20 px shift becomes 10 px
    img = disc_blob(n, (n // 2 + 20, n // 2 - 10), 12)[None]
    small = fourier_crop(img, d)[0]
    assert np.unravel_index(np.argmax(small), (d, d)) == (d // 2 + 10, d // 2 - 5)


def test_crop_same_size_is_identity_and_no_upsampling():
    img = np.random.default_rng(0).normal(size=(2, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(fourier_crop(img, 32), img)
    with pytest.raises(ValueError):
        fourier_crop(img, 40)


def test_ctf_signs_positive_at_zero_and_flip_is_an_involution():
    n = 64
    signs = ctf_signs(_ctf(3), 1.5, n)
    assert signs.shape == (3, n, n // 2 + 1)
    assert set(np.unique(signs)) <= {-1.0, 1.0}
    assert (signs[:, 0, 0] == 1).all()
    # applying the phase flip twice gives back the image below Nyquist (RELION's signs on
    # the Nyquist lines are not Hermitian, so the real transform cannot keep them)
    img = np.random.default_rng(1).normal(size=(3, n, n)).astype(np.float32)
    once = phase_flip_and_crop(img, n, _ctf(3), 1.5)
    twice = phase_flip_and_crop(once, n, _ctf(3), 1.5)
    np.testing.assert_allclose(fourier_crop(twice, n - 2), fourier_crop(img, n - 2), atol=1e-4)


def _relion_ctf(du, dv, angle, angpix, n, kv=300.0, cs=2.7, q0=0.1):
    """RELION's CTF (``ctf.h``: -sin(gamma), astigmatism as a quadratic form; its rows
    0 .. n/2 are positive frequencies), written out here independently of torch-ctf."""
    lam = 12.2643247 / np.sqrt(kv * 1e3 * (1 + kv * 1e3 * 0.978466e-6))
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    quad = rot.T @ np.diag([-du, -dv]) @ rot
    i = np.arange(n)
    y = np.where(i < n // 2 + 1, i, i - n)[:, None] / (n * angpix)
    x = np.arange(n // 2 + 1)[None, :] / (n * angpix)
    u2 = x * x + y * y
    gamma = np.pi * lam * (quad[0, 0] * x * x + 2 * quad[0, 1] * x * y + quad[1, 1] * y * y)
    gamma += np.pi / 2 * cs * 1e7 * lam**3 * u2 * u2 - np.arctan(q0 / np.sqrt(1 - q0 * q0))
    return -np.sin(gamma)


@pytest.mark.parametrize("n", [64, 65])
def test_ctf_equals_relions_formula(n):
    """Values (torch-ctf) and flip signs equal RELION's own formula, the Nyquist row too."""
    du, dv, angle = 21000.0, 18500.0, 37.0
    ours = ctf_values(_ctf(1, du, dv, angle), 1.3, n)[0]
    want = _relion_ctf(du, dv, angle, 1.3, n)
    assert np.abs(ours - want).max() < 5e-3
    clear = np.abs(want) > 0.02  # signs away from the zeros, where rounding cannot decide
    assert (np.sign(ours)[clear] == np.sign(want)[clear]).all()
    assert (ctf_signs(_ctf(1, du, dv, angle), 1.3, n)[0][clear] == np.sign(want)[clear]).all()


def test_phase_flip_undoes_ctf_sign_changes():
    # An image filtered by the CTF, once phase flipped, has been filtered by |CTF| >= 0:
    # it correlates positively with the original, and better than before flipping.
    n = 96
    img = disc_blob(n, (n // 2, n // 2), 10)[None].astype(np.float32)
    img -= img.mean()
    ctf = calculate_ctf_2d(
        defocus=2.0,
        astigmatism=0.0,
        astigmatism_angle=0.0,
        voltage=300.0,
        spherical_aberration=2.7,
        amplitude_contrast=0.1,
        phase_shift=0.0,
        pixel_size=1.0,
        image_shape=(n, n),
        rfft=True,
        fftshift=False,
    ).numpy()
    signs = ctf_signs(_ctf(1, 20000, 20000, 0), 1.0, n)[0]
    assert (ctf * signs >= 0).all()
    filtered = sfft.irfft2(sfft.rfft2(img) * ctf, s=(n, n)).astype(np.float32)
    flipped = phase_flip_and_crop(filtered, n, _ctf(1, 20000, 20000, 0), 1.0)
    before, after = float((filtered * img).sum()), float((flipped * img).sum())
    assert after > 0 and after > before


def test_astigmatism_angle_follows_relion():
    # RELION: the angle goes from the x axis (columns) to defocus U. With angle 0 the CTF
    # oscillates faster along x (higher defocus U) than along y.
    n = 128
    s0 = ctf_signs(_ctf(1, 25000, 10000, 0.0), 3.0, n)[0]
    s90 = ctf_signs(_ctf(1, 25000, 10000, 90.0), 3.0, n)[0]

    def changes(v):
        return int((np.diff(v) != 0).sum())

    assert changes(s0[0, : n // 2]) > changes(s0[: n // 2, 0])  # along x vs along y
    assert changes(s90[: n // 2, 0]) > changes(s90[0, : n // 2])
