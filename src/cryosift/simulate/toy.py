"""A labelled toy particle stack, made of Gaussian blobs: for the demo and the tests.

Each particle is an asymmetric cluster of Gaussian blobs of total radius ``radius`` px.
Outliers follow the radial-profile paper's types: *noise* (no particle), *partial*
(the particle shifted by ``[d/4, 2d/3]`` in a random direction, so part of it leaves the box)
and *multiple* (two particles, each shifted by ``[d/10, 2d/3]``, averaged).

``python -m cryosift.simulate.toy OUTDIR`` writes ``particles.mrcs``, a RELION 3.1
``particles.star`` and ``truth.csv`` (one row per particle: ``particle``, ``truth``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cryosift.io.star import optics_table
from cryosift.simulate.dataset import TYPES, write_labelled_stack


def blob_particle(
    d: int, centre: tuple[float, float], radius: float, rng: np.random.Generator
) -> np.ndarray:
    """A ``(d, d)`` image of one particle: 4 Gaussian blobs inside a disc of ``radius`` px
    centred at ``centre`` (row, col), peak value about 1."""
    yy, xx = np.mgrid[:d, :d].astype(np.float64)
    img = np.zeros((d, d))
    for j in range(4):
        rho = radius * (0.0 if j == 0 else rng.uniform(0.25, 0.5))
        phi = rng.uniform(0, 2 * np.pi)
        cy, cx = centre[0] + rho * np.sin(phi), centre[1] + rho * np.cos(phi)
        s = radius * (0.45 if j == 0 else rng.uniform(0.2, 0.35))
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return img / img.max()


def _shifted_centre(d: int, lo: float, hi: float, rng: np.random.Generator) -> tuple[float, float]:
    length = rng.uniform(lo, hi)
    phi = rng.uniform(0, 2 * np.pi)
    c = d // 2
    return c + length * np.sin(phi), c + length * np.cos(phi)


def toy_stack(
    n_inliers: int = 300,
    n_per_outlier_type: int = 100,
    d: int = 64,
    radius: float = 12.0,
    noise_sigma: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, d, d)`` float32 and truth labels ``(N,)`` (one of :data:`TYPES`),
    shuffled. Deterministic per ``seed``."""
    rng = np.random.default_rng(seed)
    c = d // 2
    images, labels = [], []
    for kind, count in zip(TYPES, (n_inliers, *(n_per_outlier_type,) * 3), strict=True):
        for _ in range(count):
            if kind == "inlier":
                img = blob_particle(d, (c + rng.normal(0, 1), c + rng.normal(0, 1)), radius, rng)
            elif kind == "noise":
                img = np.zeros((d, d))
            elif kind == "partial":
                img = blob_particle(d, _shifted_centre(d, d / 4, 2 * d / 3, rng), radius, rng)
            else:
                a = blob_particle(d, _shifted_centre(d, d / 10, 2 * d / 3, rng), radius, rng)
                b = blob_particle(d, _shifted_centre(d, d / 10, 2 * d / 3, rng), radius, rng)
                img = (a + b) / 2
            images.append(img + rng.normal(0, noise_sigma, (d, d)))
            labels.append(kind)
    order = rng.permutation(len(images))
    return np.asarray(images, dtype=np.float32)[order], np.asarray(labels)[order]


def write_toy_dataset(outdir: Path, angpix: float = 2.0, **kwargs) -> Path:
    """Write the toy stack, its RELION 3.1 STAR and ``truth.csv`` into ``outdir``.
    Returns the STAR path."""
    images, labels = toy_stack(**kwargs)
    d = images.shape[-1]
    return write_labelled_stack(outdir, [images], labels, d, optics_table(angpix, d))


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inliers", type=int, default=300)
    parser.add_argument("--per-type", type=int, default=100)
    parser.add_argument("--noise-sigma", type=float, default=0.5)
    args = parser.parse_args()
    star = write_toy_dataset(
        args.outdir,
        seed=args.seed,
        n_inliers=args.inliers,
        n_per_outlier_type=args.per_type,
        noise_sigma=args.noise_sigma,
    )
    print(f"wrote {star} (particle radius 12 px, box 64 px, 2.0 A/px)")


if __name__ == "__main__":
    _main()
