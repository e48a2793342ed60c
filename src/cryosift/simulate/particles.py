"""A labelled particle stack simulated from a volume: inliers and the three outlier types.

- **inlier**: a projection at a uniformly random rotation, scaled by a random amplitude and
  offset by ``N(0, offset_sigma^2)`` px per axis;
- **noise**: no particle at all;
- **partial**: a projection rotated in-plane uniformly in (0, 2 pi] and translated by a length
  uniform in ``[box/4, 2 box/3]`` in a random direction, so part of it leaves the box;
- **multiple**: the average of two projections, each translated by a length uniform in
  ``[box/10, 2 box/3]``.

Then, optionally, each image is convolved with a CTF (``torch-ctf``, one defocus per particle);
Gaussian noise (white, or the paper's coloured noise) is added at the projection size; the
images are phase flipped (as a user's pipeline would) and Fourier-cropped to the output size.

SNR follows the radial-profile paper: the mean of the clean inlier projections (before the
CTF) over the region ``[margin:-margin, margin:-margin]``, divided by the noise standard
deviation, both at the projection size. The power SNR (variance of the clean inlier images as
written, i.e. after CTF and phase flip, over the noise variance) is reported beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np

from cryosift.errors import InputError
from cryosift.io.particles import CtfParams
from cryosift.io.star import optics_table
from cryosift.preprocess.fourier import phase_flip_and_crop
from cryosift.simulate.choices import PROTOCOLS
from cryosift.simulate.dataset import OUTLIER_TYPES, TYPES, write_labelled_stack
from cryosift.simulate.noise import gaussian_noise
from cryosift.simulate.projection import (
    apply_ctf,
    inplane,
    project,
    random_rotations,
    random_shifts,
    relion_angles,
    shift_images,
)
from cryosift.simulate.volume import diameter_px


@dataclass(frozen=True)
class ParticleSimConfig:
    """What to simulate. Lengths in px are at the projection size (the volume's box)."""

    n_inliers: int = 1000
    n_outliers: int = 1000
    outlier_mix: tuple[float, float, float] = (1.0, 1.0, 1.0)  # noise : partial : multiple
    snr: float = 0.1  # the paper's mean-based SNR
    noise: str = "white"  # or "coloured"
    size: int | None = None  # output side after Fourier cropping (default: no cropping)
    snr_margin: int = 0  # px excluded at each side of the SNR region
    offset_sigma: float = 0.0  # std of inlier offsets per axis, px
    amplitude: tuple[float, float] = (1.0, 1.0)  # uniform range of the projection scale
    ctf: bool = False
    defocus_um: tuple[float, float] = (1.0, 2.5)
    astigmatism_um: float = 0.05  # largest (U - V) / 2
    voltage: float = 300.0  # kV
    cs: float = 2.7  # mm
    amplitude_contrast: float = 0.1
    shift_model: str = "radial"  # or "per-axis" (the published code's integer rolls)
    seed: int = 0
    chunk: int = 256


def protocol_config(name: str, box: int, **overrides) -> ParticleSimConfig:
    """A named reference protocol for a volume already padded to ``box``.

    ``kapnulin2024`` (the radial-profile paper's synthetic experiment): 1000 inliers and 1000
    outliers split evenly between the three types, amplitudes uniform in [2/3, 3/2], offsets
    ``N(0, (box/16)^2)``, coloured noise added at ``box``, Fourier-cropped to 33 x 33, SNR over
    ``[10:-10, 10:-10]``. The volume is edge-padded by 10 voxels and scaled to max 1 before
    (see :func:`cryosift.simulate.volume.pad_and_scale`).
    """
    if name != "kapnulin2024":
        raise ValueError(f"unknown protocol {name!r}; choose from {PROTOCOLS}")
    base = ParticleSimConfig(
        n_inliers=1000,
        n_outliers=1000,
        noise="coloured",
        size=33,
        snr_margin=10,
        offset_sigma=box / 16,
        amplitude=(2 / 3, 3 / 2),
        ctf=False,
    )
    return replace(base, **overrides)


def split_counts(total: int, weights: tuple[float, ...]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder)."""
    w = np.asarray(weights, float)
    if total and (np.any(w < 0) or w.sum() <= 0):
        raise ValueError("outlier proportions must be non-negative and not all zero")
    exact = total * w / w.sum() if total else np.zeros(len(w))
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def per_axis_shifts(n: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` integer shifts, each axis drawn independently from ``+-[int(low), int(high))``:
    how the radial-profile paper's published code displaces partial and multiple outliers."""
    values = np.arange(int(low), int(high))
    values = np.concatenate([-values[::-1], values])
    return rng.choice(values, (n, 2)).astype(np.float64)


@dataclass
class Plan:
    """Every random draw of a simulation, made up front (``N`` images)."""

    labels: np.ndarray  # (N,) one of TYPES
    rotations: np.ndarray  # (N, 3, 3)
    rotations2: np.ndarray  # (N, 3, 3) the second particle of "multiple" images
    amplitude: np.ndarray  # (N,)
    amplitude2: np.ndarray  # (N,)
    shift: np.ndarray  # (N, 2) (dy, dx) px
    shift2: np.ndarray  # (N, 2)
    ctf: CtfParams | None


def make_plan(cfg: ParticleSimConfig, box: int) -> Plan:
    """Draw labels, rotations, amplitudes, shifts and defoci for ``cfg``; deterministic per
    ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    counts = [cfg.n_inliers, *split_counts(cfg.n_outliers, cfg.outlier_mix)]
    labels = np.repeat(np.array(TYPES), counts)[rng.permutation(sum(counts))]
    n = len(labels)
    rotations = random_rotations(n, rng)
    rotations2 = random_rotations(n, rng)
    psi = rng.uniform(0, 2 * np.pi, n)
    amplitude = rng.uniform(*cfg.amplitude, n)
    amplitude2 = rng.uniform(*cfg.amplitude, n)
    offsets = rng.normal(0, cfg.offset_sigma, (n, 2)) if cfg.offset_sigma else np.zeros((n, 2))
    draw = per_axis_shifts if cfg.shift_model == "per-axis" else random_shifts
    partial = draw(n, box / 4, 2 * box / 3, rng)
    multi1 = draw(n, box / 10, 2 * box / 3, rng)
    multi2 = draw(n, box / 10, 2 * box / 3, rng)
    if cfg.shift_model == "per-axis":  # the published code rolls images that carry offsets
        partial, multi1 = partial + offsets, multi1 + offsets
        multi2 = multi2 + rng.normal(0, cfg.offset_sigma, (n, 2))
    is_partial = (labels == "partial")[:, None]
    is_multiple = (labels == "multiple")[:, None]
    rotations = np.where(is_partial[:, :, None], inplane(rotations, psi), rotations)
    shift = np.where(is_partial, partial, np.where(is_multiple, multi1, offsets))
    ctf = None
    if cfg.ctf:
        mean = rng.uniform(*cfg.defocus_um, n) * 1e4
        astig = rng.uniform(0, cfg.astigmatism_um, n) * 1e4
        ctf = CtfParams(
            defocus_u=mean + astig,
            defocus_v=mean - astig,
            angle=rng.uniform(-180, 180, n),
            voltage=np.full(n, cfg.voltage),
            cs=np.full(n, cfg.cs),
            amplitude_contrast=np.full(n, cfg.amplitude_contrast),
            phase_shift=np.zeros(n),
        )
    return Plan(labels, rotations, rotations2, amplitude, amplitude2, shift, multi2, ctf)


class ParticleSimulator:
    """Simulates the images of a :class:`Plan` chunk by chunk.

    ``volume`` is ``(n, n, n)`` (already padded/scaled as wanted); ``angpix`` its voxel size
    in Å. Clean chunks are cached while the whole clean stack fits in ``cache_bytes``;
    otherwise they are recomputed (deterministically) when needed again.
    """

    def __init__(
        self,
        volume: np.ndarray,
        angpix: float,
        cfg: ParticleSimConfig,
        cache_bytes: int = 1 << 30,
    ) -> None:
        self.volume = np.asarray(volume, np.float32)
        self.box = int(volume.shape[-1])
        self.angpix = float(angpix)
        self.cfg = cfg
        self.size = int(cfg.size or self.box)
        if self.size > self.box:
            raise ValueError(f"output size {self.size} px exceeds the projection box {self.box}")
        self.plan = make_plan(cfg, self.box)
        self._cache: dict[int, np.ndarray] | None = (
            {} if len(self) * self.box**2 * 4 <= cache_bytes else None
        )
        self._region_mean: float | None = None
        self.measured: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.plan.labels)

    @property
    def out_angpix(self) -> float:
        """Pixel size of the written images, Å."""
        return self.angpix * self.box / self.size

    def _bounds(self) -> Iterator[tuple[int, int, int]]:
        step = self.cfg.chunk
        for k, start in enumerate(range(0, len(self), step)):
            yield k, start, min(start + step, len(self))

    def clean_chunk(self, start: int, stop: int) -> np.ndarray:
        """Clean images ``(b, box, box)`` of particles ``start:stop``, before the CTF."""
        if self._cache is not None and start in self._cache:
            return self._cache[start]
        p = self.plan
        labels = p.labels[start:stop]
        out = np.zeros((stop - start, self.box, self.box), np.float32)
        has = np.flatnonzero(labels != "noise")
        if len(has):
            g = start + has
            imgs = project(self.volume, p.rotations[g]) * p.amplitude[g, None, None]
            out[has] = shift_images(imgs, p.shift[g])
        two = np.flatnonzero(labels == "multiple")
        if len(two):
            g = start + two
            imgs = project(self.volume, p.rotations2[g]) * p.amplitude2[g, None, None]
            out[two] = (out[two] + shift_images(imgs, p.shift2[g])) / 2
        if self._cache is not None:
            self._cache[start] = out
        return out

    def region_mean(self) -> float:
        """Mean of the clean inlier images over the SNR region (first pass over the stack)."""
        if self._region_mean is None:
            if self.cfg.n_inliers == 0:
                raise ValueError("the SNR is defined on the inliers: simulate at least one")
            m = self.cfg.snr_margin
            total, count = 0.0, 0
            for _, start, stop in self._bounds():
                inl = self.plan.labels[start:stop] == "inlier"
                if inl.any():
                    region = self.clean_chunk(start, stop)[inl, m : self.box - m, m : self.box - m]
                    total += float(region.sum(dtype=np.float64))
                    count += region.size
            self._region_mean = total / count
            if not self._region_mean > 0:
                raise InputError(
                    "volume", "clean particle images have no positive mean: SNR undefined"
                )
        return self._region_mean

    def sigma(self, snr: float | None = None) -> float:
        """Noise standard deviation (at the projection size) that gives ``snr``."""
        return self.region_mean() / float(snr or self.cfg.snr)

    def images(self, snr: float | None = None) -> Iterator[np.ndarray]:
        """The finished images ``(b, size, size)``, chunk by chunk; measures the SNRs on the
        noise actually drawn into :attr:`measured`."""
        sigma = self.sigma(snr)
        cfg, p = self.cfg, self.plan
        var_sum, n_inliers = 0.0, 0
        noise_ss, noise_n = 0.0, 0
        for k, start, stop in self._bounds():
            pre = self.clean_chunk(start, stop)
            ctf = p.ctf.take(np.arange(start, stop)) if p.ctf is not None else None
            clean = apply_ctf(pre, ctf, self.angpix) if ctf is not None else pre
            rng = np.random.default_rng([cfg.seed, 1, k])
            noise = gaussian_noise(clean.shape, sigma, cfg.noise, rng)
            noise_ss += float(np.square(noise, dtype=np.float64).sum())
            noise_n += noise.size
            inl = p.labels[start:stop] == "inlier"
            var_sum += float(clean[inl].var(axis=(1, 2), dtype=np.float64).sum())
            n_inliers += int(inl.sum())
            yield phase_flip_and_crop(clean + noise, self.size, ctf, self.angpix)
        noise_var = noise_ss / noise_n
        self.measured = {
            "noise_sigma": sigma,
            "snr_mean": self.region_mean() / float(np.sqrt(noise_var)),
            "snr_power": var_sum / max(n_inliers, 1) / noise_var,
        }

    def star_columns(self) -> dict[str, np.ndarray]:
        """Per-particle RELION columns: angles, origins (inliers), CTF."""
        p = self.plan
        angles = relion_angles(p.rotations)
        inl = p.labels == "inlier"
        # RELION: the particle centre is at the box centre minus the origin.
        cols = {
            "rlnAngleRot": angles[:, 0],
            "rlnAngleTilt": angles[:, 1],
            "rlnAnglePsi": angles[:, 2],
            "rlnOriginXAngst": np.where(inl, -p.shift[:, 1], 0.0) * self.angpix,
            "rlnOriginYAngst": np.where(inl, -p.shift[:, 0], 0.0) * self.angpix,
        }
        if p.ctf is not None:
            cols |= {
                "rlnDefocusU": p.ctf.defocus_u,
                "rlnDefocusV": p.ctf.defocus_v,
                "rlnDefocusAngle": p.ctf.angle,
                "rlnPhaseShift": p.ctf.phase_shift,
            }
        return cols

    def truth_columns(self) -> dict[str, np.ndarray]:
        """Extra ``truth.csv`` columns: shifts in px of the output images, amplitudes."""
        p, scale = self.plan, self.size / self.box
        return {
            "shift_x_px": np.round(p.shift[:, 1] * scale, 3),
            "shift_y_px": np.round(p.shift[:, 0] * scale, 3),
            "amplitude": np.round(p.amplitude, 4),
        }

    def summary(self) -> dict:
        """What was simulated and measured, for ``simulation.json``."""
        counts = {t: int((self.plan.labels == t).sum()) for t in TYPES}
        d = diameter_px(self.volume)
        return {
            "config": asdict(self.cfg),
            "counts": counts,
            "box_px": self.box,
            "size_px": self.size,
            "angpix_volume": self.angpix,
            "angpix_output": self.out_angpix,
            "particle_diameter_A": round(d * self.angpix, 1),
            "particle_diameter_px_output": round(d * self.size / self.box, 2),
            "snr_requested": self.cfg.snr,
            **self.measured,
            "phase_flipped": self.cfg.ctf,
            "outlier_types": list(OUTLIER_TYPES),
        }


def write_simulated_particles(sim: ParticleSimulator, outdir) -> object:
    """Write ``sim``'s stack into ``outdir`` (``particles.mrcs``, ``particles.star``,
    ``truth.csv``, ``simulation.json``), all or nothing. Returns the STAR path."""
    cfg = sim.cfg
    optics = optics_table(
        sim.out_angpix,
        sim.size,
        cfg.voltage,
        cfg.cs,
        cfg.amplitude_contrast,
        phase_flipped=cfg.ctf,
    )
    return write_labelled_stack(
        outdir,
        sim.images,
        sim.plan.labels,
        sim.size,
        optics,
        columns=sim.star_columns(),
        truth=sim.truth_columns(),
        summary=sim.summary,
    )
