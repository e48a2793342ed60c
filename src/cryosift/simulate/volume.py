"""Volumes to project: a built-in asymmetric phantom, or a map read from MRC / ``.npy``.

Volumes are ``(n, n, n)`` float32 arrays indexed ``[z, y, x]`` with their centre at voxel
``n // 2``, as RELION and ``torch-fourier-slice`` expect.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryosift.errors import InputError


def phantom_volume(size: int = 64, seed: int = 0) -> np.ndarray:
    """A procedurally generated asymmetric particle, ``(size, size, size)`` float32, max 1.

    Overlapping Gaussian lobes of different sizes (a body, a head, an arm, a foot and a few
    random knobs), with no symmetry, all inside a sphere of diameter about ``0.6 * size`` and
    centred so that its centre of mass is the box centre.
    """
    rng = np.random.default_rng(seed)
    c = size // 2
    zz, yy, xx = np.mgrid[:size, :size, :size].astype(np.float32) - c
    vol = np.zeros((size,) * 3, np.float32)
    unit = 0.3 * size  # radius of the envelope, px
    # (z, y, x) centre in units, sigma in units, weight: body, head, arm, foot, then knobs
    lobes = [((0.0, -0.15, 0.1), 0.32, 1.0), ((0.3, 0.55, -0.1), 0.24, 0.9)]
    lobes += [((-0.35, -0.4, 0.6), 0.15, 0.8), ((0.15, -0.1, -0.7), 0.13, 0.9)]
    for _ in range(6):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        lobes.append((tuple(direction * rng.uniform(0.4, 0.7)), rng.uniform(0.08, 0.14), 0.7))
    for (dz, dy, dx), sigma, weight in lobes:
        s = sigma * unit
        r2 = (zz - dz * unit) ** 2 + (yy - dy * unit) ** 2 + (xx - dx * unit) ** 2
        vol += weight * np.exp(-r2 / (2 * s * s))
    vol = centre_of_mass_to_centre(vol)
    vol[vol < 1e-4 * vol.max()] = 0
    return (vol / vol.max()).astype(np.float32)


def phantom_size(diameter: float) -> int:
    """The even box side of :func:`phantom_volume` whose particle is about ``diameter`` px
    across (the phantom spans about 0.69 of its box)."""
    if diameter < 8:
        raise InputError(None, f"a phantom of {diameter} px is too small (8 px at least)")
    return 2 * round(diameter / 0.69 / 2)


def centre_of_mass_to_centre(volume: np.ndarray) -> np.ndarray:
    """Translate ``(n, n, n)`` ``volume`` (Fourier shift) so that its centre of mass lies on
    voxel ``n // 2``."""
    from scipy import ndimage

    n = volume.shape[0]
    com = np.asarray(ndimage.center_of_mass(np.clip(volume, 0, None)))
    shifted = ndimage.fourier_shift(np.fft.fftn(volume), n // 2 - com)
    return np.real(np.fft.ifftn(shifted)).astype(np.float32)


def load_volume(path: str | os.PathLike[str]) -> tuple[np.ndarray, float | None]:
    """Read a cubic map from ``.npy`` or MRC. Returns ``(volume, voxel size in Å or None)``.

    Raises :class:`InputError` naming the file when it is not a finite 3D cube.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.suffix == ".npy":
        try:
            vol = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(path, f"not a readable .npy array ({exc})") from None
        angpix = None
    else:
        from cryosift.io.mrc import open_stack

        stack = open_stack(path)
        try:
            vol = np.asarray(stack.data, dtype=np.float32)
            angpix = stack.angpix
        finally:
            stack.close()
    vol = np.asarray(vol, dtype=np.float32)
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise InputError(path, f"a volume must be a cube, this is {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise InputError(path, "the volume contains NaN or infinite values")
    if not vol.max() > 0:
        raise InputError(path, "the volume has no positive density")
    return vol, angpix


def pad_and_scale(volume: np.ndarray, pad: int) -> np.ndarray:
    """Edge-pad ``(n, n, n)`` by ``pad`` voxels on every side and scale to maximum 1
    (the radial-profile paper's preparation of the ribosome map)."""
    vol = np.pad(volume, pad, mode="edge") if pad else np.asarray(volume)
    return (vol / vol.max()).astype(np.float32)


def diameter_px(volume: np.ndarray, level: float = 0.05) -> float:
    """Particle diameter in voxels: twice the largest distance from the box centre of a voxel
    above ``level`` times the maximum density."""
    n = volume.shape[0]
    idx = np.argwhere(volume > level * volume.max()) - n // 2
    return 2.0 * float(np.sqrt((idx**2).sum(axis=1).max())) if len(idx) else 0.0
