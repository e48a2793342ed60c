"""Particle images as the detectors and the classification see them."""

from __future__ import annotations

import numpy as np

from cryosift.io.particles import ParticleSet, check_finite
from cryosift.preprocess.fourier import phase_flip_and_crop


def prepared_rows(
    pset: ParticleSet, rows: np.ndarray, size: int, flip: bool, workers: int = -1
) -> np.ndarray:
    """The particles ``rows`` of ``pset``, ``(len(rows), size, size)`` float32: read (the
    memory map's read-ahead pages released), checked for NaN/Inf (a one-line error naming
    them), phase flipped with their CTFs when ``flip``, Fourier-cropped to ``size``."""
    raw = pset.read_rows(rows)
    pset.release_pages()  # read-ahead pages of the memory map would otherwise stay
    check_finite(raw, pset, rows)
    ctf = None
    if flip:
        if pset.ctf is None:
            raise ValueError("phase flipping needs the particles' CTF parameters")
        ctf = pset.ctf.take(rows)
    return phase_flip_and_crop(raw, size, ctf, pset.angpix, workers)
