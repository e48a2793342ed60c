"""Projections of a volume at given rotations, and the image operations the simulator needs.

Rotations are ``(B, 3, 3)`` matrices acting on ``xyz`` column vectors, RELION's convention:
``Rotation.from_euler("ZYZ", [rot, tilt, psi], degrees=True)`` gives the matrix of a particle
with RELION angles ``rot, tilt, psi`` (checked against RELION's own projections of the 70S
ribosome in the tests). Images are ``(B, n, n)`` float32 with the centre at pixel ``n // 2``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy.spatial.transform import Rotation

from cryosift.io.particles import CtfParams
from cryosift.preprocess.fourier import ctf_values


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3, 3)`` rotations uniform on SO(3) (``scipy`` ``Rotation.random``)."""
    return Rotation.random(n, random_state=rng).as_matrix().reshape(n, 3, 3)


def relion_angles(rotations: np.ndarray) -> np.ndarray:
    """RELION Euler angles ``(B, 3)`` (rot, tilt, psi in degrees) of ``(B, 3, 3)`` matrices."""
    return Rotation.from_matrix(rotations).as_euler("ZYZ", degrees=True).reshape(-1, 3)


def inplane(rotations: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Compose ``(B, 3, 3)`` rotations with in-plane rotations by ``angles`` ``(B,)`` radians
    (about the viewing axis), which rotates each projection image in its plane."""
    rz = Rotation.from_euler("z", np.asarray(angles)[:, None]).as_matrix().reshape(-1, 3, 3)
    return rotations @ rz


def project(
    volume: np.ndarray, rotations: np.ndarray, batch: int = 256, device: str | None = None
) -> np.ndarray:
    """Projections ``(B, n, n)`` float32 of a ``(n, n, n)`` volume at ``(B, 3, 3)`` rotations.

    Central slices of the volume's Fourier transform (``torch-fourier-slice``, padded twice):
    line integrals along z of the rotated volume, so each projection integrates to the
    volume's mass when the density lies inside the inscribed sphere. Runs on CUDA if present.
    """
    import torch
    from torch_fourier_slice import project_3d_to_2d

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    vol = torch.as_tensor(np.asarray(volume, dtype=np.float32), device=dev)
    n = volume.shape[-1]
    out = np.empty((len(rotations), n, n), np.float32)
    with torch.no_grad():
        for start in range(0, len(rotations), batch):
            r = torch.as_tensor(
                np.asarray(rotations[start : start + batch], np.float32), device=dev
            )
            out[start : start + batch] = project_3d_to_2d(vol, r).cpu().numpy()
    return out


def shift_images(images: np.ndarray, shifts: np.ndarray, workers: int = -1) -> np.ndarray:
    """Translate ``(B, n, n)`` images by ``(B, 2)`` shifts ``(dy, dx)`` px, sub-pixel, with
    zeros coming in from outside: what leaves the box is lost, nothing wraps around.

    The images are zero-padded to at least ``2n`` before the Fourier shift: content that wraps
    around the padded box lands outside the cropped window as long as each shift component is
    at most ``n``.
    """
    images = np.asarray(images, np.float32)
    b, n, _ = images.shape
    m = sfft.next_fast_len(2 * n, real=True)
    lo = (m - n) // 2
    big = np.zeros((b, m, m), np.float32)
    big[:, lo : lo + n, lo : lo + n] = images
    ky = sfft.fftfreq(m)[None, :, None]
    kx = sfft.rfftfreq(m)[None, None, :]
    dy = np.asarray(shifts, np.float64)[:, 0, None, None]
    dx = np.asarray(shifts, np.float64)[:, 1, None, None]
    ft = sfft.rfft2(big, workers=workers)
    ft *= np.exp(-2j * np.pi * (ky * dy + kx * dx)).astype(np.complex64)
    moved = sfft.irfft2(ft, s=(m, m), workers=workers)
    return np.ascontiguousarray(moved[:, lo : lo + n, lo : lo + n], dtype=np.float32)


def random_shifts(n: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` shifts ``(dy, dx)`` of length uniform in ``[low, high]`` px in uniformly random
    directions."""
    length = rng.uniform(low, high, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.stack([length * np.sin(phi), length * np.cos(phi)], axis=1)


def apply_ctf(images: np.ndarray, ctf: CtfParams, angpix: float, workers: int = -1) -> np.ndarray:
    """Convolve ``(B, n, n)`` images with their CTFs (one parameter set per image).

    The images are zero-padded to ``2n`` first, so the CTF's point spread does not wrap
    around the box; what spreads outside the box is lost, as when a particle is extracted.
    """
    images = np.asarray(images, np.float32)
    b, n, _ = images.shape
    m = 2 * n
    big = np.zeros((b, m, m), np.float32)
    lo = m // 2 - n // 2
    big[:, lo : lo + n, lo : lo + n] = images
    ft = sfft.rfft2(big, workers=workers) * ctf_values(ctf, angpix, m)
    out = sfft.irfft2(ft, s=(m, m), workers=workers)
    return np.ascontiguousarray(out[:, lo : lo + n, lo : lo + n], dtype=np.float32)
