"""Fourier-space operations on batches of square images: cropping (downsampling) and phase flips.

Images are ``(B, n, n)`` real arrays; transforms use ``scipy.fft`` real FFTs with threads.
Fourier cropping keeps the frequencies a ``d x d`` image can hold and preserves the mean; a
sub-pixel phase ramp makes the box centre (pixel ``n // 2``) map exactly to pixel ``d // 2``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from cryosift.io.particles import CtfParams


def _crop_rfft(ft: np.ndarray, n: int, d: int) -> np.ndarray:
    """Crop an ``rfft2`` spectrum ``(B, n, n//2+1)`` to that of a ``d x d`` image, shifted by a
    phase ramp so that the box centre ``n // 2`` lands exactly on pixel ``d // 2``."""
    if d == n:
        return ft
    # RELION's window: rows 0 .. d // 2 and -(d - d // 2 - 1) .. -1 (for even d the Nyquist
    # row is taken from +d/2), columns 0 .. d // 2.
    lo = d // 2 + 1
    hi = d - lo
    rows = np.concatenate([ft[:, :lo], ft[:, n - hi :]], axis=1) if hi else ft[:, :lo]
    small = rows[:, :, : d // 2 + 1]
    delta = d // 2 - (n // 2) * d / n  # px; 0 when both sizes are even
    if delta:
        ky = sfft.fftfreq(d)[:, None]
        kx = sfft.rfftfreq(d)[None, :]
        small = small * np.exp(-2j * np.pi * (ky + kx) * delta).astype(small.dtype)
    return small


def fourier_crop(images: np.ndarray, size: int, workers: int = -1) -> np.ndarray:
    """Downsample ``(B, n, n)`` images to ``(B, size, size)`` by cropping their spectra.

    ``size`` must not exceed ``n``. Pixel values keep their scale (the mean is preserved).
    """
    return phase_flip_and_crop(images, size, None, None, workers)


def ctf_values(ctf: CtfParams, angpix: float, n: int) -> np.ndarray:
    """The CTF of each particle, ``(B, n, n//2+1)`` float64 in ``rfft2`` layout (not shifted),
    with RELION's frequencies: for even ``n`` the row ``n // 2`` is the frequency ``+n/2``
    (``numpy.fft.fftfreq`` says ``-n/2``; with astigmatism the two differ).

    Computed with ``torch-ctf``; defoci are in Å (positive = underfocus), the astigmatism angle
    in degrees from the x axis (column direction) to defocus U, as RELION writes them.
    """
    import torch
    from torch_ctf import calculate_ctf_2d

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64))

    du, dv = t(ctf.defocus_u), t(ctf.defocus_v)
    with torch.no_grad():
        full = calculate_ctf_2d(
            defocus=(du + dv) / 2 / 1e4,
            astigmatism=(du - dv) / 2 / 1e4,
            astigmatism_angle=t(ctf.angle),
            voltage=t(ctf.voltage),
            spherical_aberration=t(ctf.cs),
            amplitude_contrast=t(ctf.amplitude_contrast),
            phase_shift=t(ctf.phase_shift),
            pixel_size=float(angpix),
            image_shape=(n, n),
            rfft=False,
            fftshift=False,
        ).numpy()
    full = full.reshape(-1, n, n)  # frequencies of numpy.fft.fftfreq on both axes
    i = np.arange(n)
    ky = np.where(i < n // 2 + 1, i, i - n)[:, None]  # RELION's rows
    kx = np.arange(n // 2 + 1)[None, :]
    # +n/2 (even n) is not on the fftfreq grid; the CTF is even, so take it at -k.
    outside = (ky >= (n + 1) // 2) | (kx >= (n + 1) // 2)
    sign = np.where(outside, -1, 1)
    return full[:, (sign * ky) % n, (sign * kx) % n]


def ctf_signs(ctf: CtfParams, angpix: float, n: int) -> np.ndarray:
    """Sign of the CTF, ``(B, n, n//2+1)`` in ``rfft2`` layout, for each particle's parameters,
    as RELION's ``--phase_flip`` multiplies it (:func:`ctf_values`).

    Oriented so that the zero frequency is positive: phase flipping keeps the image's
    low-frequency contrast.
    """
    values = ctf_values(ctf, angpix, n)
    signs = np.sign(values).astype(np.float32)
    signs[signs == 0] = 1
    dc = np.sign(values[:, :1, :1]).astype(np.float32)
    dc[dc == 0] = 1
    return signs * dc


def phase_flip_and_crop(
    images: np.ndarray,
    size: int,
    ctf: CtfParams | None,
    angpix: float | None,
    workers: int = -1,
    shifts: np.ndarray | None = None,
) -> np.ndarray:
    """Phase flip ``(B, n, n)`` images with their CTFs (if ``ctf`` is given), shift them by
    ``shifts`` ``(B, 2)`` (``(dy, dx)`` px; the content moves by that much) and Fourier-crop
    them to ``(B, size, size)``, in one pass through Fourier space."""
    images = np.asarray(images, dtype=np.float32)
    n = images.shape[-1]
    if size > n:
        raise ValueError(f"cannot Fourier-crop {n} px images up to {size} px")
    if ctf is None and size == n and shifts is None:
        return images
    ft = sfft.rfft2(images, workers=workers)
    if ctf is not None:
        if angpix is None:
            raise ValueError("phase flipping needs the pixel size")
        ft *= ctf_signs(ctf, angpix, n)
    if shifts is not None:
        ft *= shift_ramp(np.asarray(shifts, dtype=np.float64).reshape(-1, 2), n)
    small = _crop_rfft(ft, n, size)
    out = sfft.irfft2(small, s=(size, size), workers=workers)
    return (out * (size * size) / (n * n)).astype(np.float32)


def shift_ramp(shifts: np.ndarray, n: int) -> np.ndarray:
    """``(B, n, n//2+1)`` complex64 factors that move ``n x n`` images by ``shifts``
    ``(B, 2)`` (``(dy, dx)`` px) when multiplied into their ``rfft2`` spectra."""
    ky = sfft.fftfreq(n)[None, :, None]
    kx = sfft.rfftfreq(n)[None, None, :]
    phase = ky * shifts[:, 0, None, None] + kx * shifts[:, 1, None, None]
    return np.exp(-2j * np.pi * phase).astype(np.complex64)
