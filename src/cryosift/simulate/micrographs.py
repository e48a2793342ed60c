"""Synthetic micrographs with particles at known coordinates, for the picker and the demo.

Each micrograph is built as a user would meet it:

- particles: projections of the volume at uniformly random rotations, placed at random
  positions at least ``min_spacing`` particle diameters apart, plus a few touching pairs
  (centres about one diameter apart) and small aggregates (3-6 particles packed together);
- a smooth ice-thickness gradient (a random plane plus a broad Gaussian bump);
- contamination: a few large dark blobs (ice crystals, ethane) several particle diameters wide;
- optionally ``ice``: crisp round blobs about a particle's size, much darker than a particle
  and sharp-edged (small ice crystals): rare, high-contrast junk a picker must not prefer;
- a carbon edge: on one side of a random line the support film adds thickness and texture
  (``carbon_contrast`` scales both); ``carbon_step`` adds a phase step over the film, which
  the CTF turns into strong fringes along the edge (the strongest feature of a faint field);
- the CTF (``torch-ctf``; one defocus per micrograph, astigmatic) and Gaussian noise at the
  requested SNR (mean particle signal over the noise standard deviation);
- optionally stored as integers (``bits`` 8 or 16: MRC modes 0 and 6, as 8-bit exports and
  16-bit counting detectors write them), the 16-bit ones at low contrast (a large offset, a
  noise standard deviation of :data:`COUNTS_SD` counts).

Particles appear dark on a bright background, as in real micrographs. Ground truth lists every
placed particle with its context (``isolated``, ``pair``, ``aggregate``, ``on_carbon``,
``under_contamination``). Deterministic per ``seed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy import ndimage, special

from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.mrc import write_micrograph
from cryosift.io.particles import CtfParams
from cryosift.io.star import optics_table, write_star
from cryosift.preprocess.fourier import ctf_values
from cryosift.simulate.projection import project, random_rotations
from cryosift.simulate.volume import diameter_px

CONTEXTS = ("isolated", "pair", "aggregate", "on_carbon", "under_contamination")
#: Integer micrographs: the offset and the noise standard deviation, in counts, of 16-bit ones.
COUNTS_OFFSET, COUNTS_SD = 8000.0, 12.0


@dataclass(frozen=True)
class MicrographSimConfig:
    """What to simulate. Lengths in px of the micrograph unless stated."""

    n_micrographs: int = 4
    shape: tuple[int, int] = (1024, 1024)  # (rows, cols)
    angpix: float = 2.0
    particles: int = 60  # isolated particles per micrograph (before pairs/aggregates)
    min_spacing: float = 1.2  # minimum centre distance of isolated particles, in diameters
    pairs: int = 4  # touching pairs per micrograph
    aggregates: int = 1  # aggregates per micrograph
    contamination: int = 1  # dark blobs per micrograph
    ice: int = 0  # crisp particle-sized dark blobs per micrograph
    carbon_edge: bool = True
    carbon_contrast: float = 1.0  # scales the carbon film's thickness and texture
    carbon_step: float = 0.0  # phase step of the film, in particle contrast units (edge fringes)
    ice_gradient: float = 0.3  # peak-to-peak background variation, in units of particle contrast
    snr: float = 0.5  # mean particle signal over noise std
    ctf: bool = True
    defocus_um: tuple[float, float] = (1.0, 2.5)
    astigmatism_um: float = 0.05
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.1
    bits: int = 0  # 0: float32; 8 or 16: stored as unsigned integers
    seed: int = 0


@dataclass
class Micrograph:
    """One simulated micrograph: ``image`` ``(rows, cols)`` float32, ground truth ``coords``
    (DataFrame: ``x``, ``y`` px, x = column, origin top-left; ``context``), the defocus, and
    ``clean`` (the particle layer alone, before CTF and noise, positive = density)."""

    name: str
    image: np.ndarray
    clean: np.ndarray
    coords: pd.DataFrame
    defocus_u: float
    defocus_v: float
    defocus_angle: float


def _place_isolated(
    n: int, shape: tuple[int, int], margin: float, spacing: float, taken: list, rng
) -> list[tuple[float, float]]:
    """Up to ``n`` random (y, x) at least ``spacing`` from each other and from ``taken``."""
    out: list[tuple[float, float]] = []
    if 2 * margin >= min(shape):
        return out  # no room
    for _ in range(n * 50):
        if len(out) == n:
            break
        y = rng.uniform(margin, shape[0] - margin)
        x = rng.uniform(margin, shape[1] - margin)
        others = np.array(taken + out) if (taken or out) else np.empty((0, 2))
        if len(others) == 0 or np.min(np.hypot(others[:, 0] - y, others[:, 1] - x)) >= spacing:
            out.append((y, x))
    return out


def plan_positions(cfg: MicrographSimConfig, diameter: float, rng) -> pd.DataFrame:
    """Particle centres ``(y, x)`` with their context for one micrograph."""
    margin = diameter  # keep whole particles (and their extraction boxes) inside
    rows: list[tuple[float, float, str]] = []
    taken: list[tuple[float, float]] = []
    # aggregates and pairs first, each needing a free area around it
    for kind, count, size in (("aggregate", cfg.aggregates, (3, 6)), ("pair", cfg.pairs, (2, 2))):
        seeds = _place_isolated(
            count, cfg.shape, 3 * diameter, 4 * diameter * (1 + cfg.min_spacing), taken, rng
        )
        for cy, cx in seeds:
            members = [(cy, cx)]
            k = int(rng.integers(size[0], size[1] + 1))
            while len(members) < k:
                base = members[int(rng.integers(len(members)))]
                phi = rng.uniform(0, 2 * np.pi)
                dist = diameter * rng.uniform(0.85, 1.0)
                cand = (base[0] + dist * np.sin(phi), base[1] + dist * np.cos(phi))
                arr = np.array(members)
                if np.min(np.hypot(arr[:, 0] - cand[0], arr[:, 1] - cand[1])) >= 0.8 * diameter:
                    members.append(cand)
            taken += members
            rows += [(y, x, kind) for y, x in members]
    spacing = cfg.min_spacing * diameter
    for y, x in _place_isolated(cfg.particles, cfg.shape, margin, spacing, taken, rng):
        rows.append((y, x, "isolated"))
    df = pd.DataFrame(rows, columns=["y", "x", "context"])
    inside = (
        (df.y >= margin / 2)
        & (df.y < cfg.shape[0] - margin / 2)
        & (df.x >= margin / 2)
        & (df.x < cfg.shape[1] - margin / 2)
    )
    return df[inside].reset_index(drop=True)


def render_particles(
    shape: tuple[int, int], projections: np.ndarray, centres: np.ndarray
) -> np.ndarray:
    """Add ``(N, b, b)`` projections into a ``shape`` canvas with projection pixel ``b // 2``
    at each sub-pixel centre ``(N, 2)`` (y, x). Returns float32 ``shape``."""
    canvas = np.zeros(shape, np.float32)
    b = projections.shape[-1]
    for img, (y, x) in zip(projections, centres, strict=True):
        iy, ix = int(np.floor(y)), int(np.floor(x))
        moved = ndimage.shift(img, (y - iy, x - ix), order=3, mode="constant")
        y0, x0 = iy - b // 2, ix - b // 2
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + b, shape[0]), min(x0 + b, shape[1])
        if ye > ys and xe > xs:
            canvas[ys:ye, xs:xe] += moved[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return canvas


def _smooth_field(yy: np.ndarray, xx: np.ndarray, scale: float, rng) -> np.ndarray:
    """A smooth random field in [0, 1] on the pixel grid ``yy, xx`` ``(rows, cols)``: a random
    plane plus a broad Gaussian bump."""
    shape = yy.shape
    a, b = rng.normal(size=2)
    plane = a * yy / shape[0] + b * xx / shape[1]
    cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (scale * max(shape)) ** 2))
    field = plane + rng.uniform(0.5, 1.5) * bump
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def simulate_micrograph(
    volume: np.ndarray, cfg: MicrographSimConfig, index: int, name: str
) -> Micrograph:
    """Simulate micrograph number ``index`` of a run (its own random stream)."""
    rng = np.random.default_rng([cfg.seed, 2, index])
    diameter = max(diameter_px(volume), 4.0)
    pos = plan_positions(cfg, diameter, rng)
    shape = cfg.shape
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)

    # carbon edge: a random line; one side carries the support film
    carbon = np.zeros(shape, bool)
    if cfg.carbon_edge:
        phi = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(0.3, 0.45) * min(shape)
        cy, cx = shape[0] / 2, shape[1] / 2
        carbon = (yy - cy) * np.sin(phi) + (xx - cx) * np.cos(phi) > offset
    # contamination blobs
    contam = np.zeros(shape, np.float32)
    for _ in range(cfg.contamination):
        r = diameter * rng.uniform(1.5, 3.0)
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        rr = np.hypot(yy - cy, xx - cx)
        contam = np.maximum(contam, special.expit((r - rr) / 2).astype(np.float32))

    ice = ice_blobs(shape, cfg.ice, diameter, rng)

    iy = np.clip(pos.y.round().astype(int), 0, shape[0] - 1)
    ix = np.clip(pos.x.round().astype(int), 0, shape[1] - 1)
    ctx = pos.context.to_numpy(dtype=object)
    ctx[carbon[iy, ix] & (ctx == "isolated")] = "on_carbon"
    ctx[contam[iy, ix] > 0.5] = "under_contamination"
    pos["context"] = ctx

    projections = project(volume, random_rotations(len(pos), rng)) if len(pos) else None
    clean = (
        render_particles(shape, projections, pos[["y", "x"]].to_numpy())
        if projections is not None
        else np.zeros(shape, np.float32)
    )
    # particle contrast unit: the mean projection value over the particle disc
    disc = np.hypot(*(np.mgrid[: volume.shape[0], : volume.shape[0]] - volume.shape[0] // 2))
    unit = float(project(volume, random_rotations(8, rng))[:, disc <= diameter / 2].mean())

    # phase contrast (through the CTF): particles and the carbon film's texture
    texture = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2)
    grain = 3.0 * cfg.carbon_contrast * texture / max(float(texture.std()), 1e-6)
    film = carbon * unit * (grain + cfg.carbon_step)
    phase = clean + film + ice * unit * 4.0
    du = dv = angle = 0.0
    if cfg.ctf:
        mean = rng.uniform(*cfg.defocus_um) * 1e4
        astig = rng.uniform(0, cfg.astigmatism_um) * 1e4
        du, dv, angle = mean + astig, mean - astig, rng.uniform(-180, 180)
        phase = _apply_micrograph_ctf(phase, du, dv, angle, cfg)
    # amplitude contrast from thickness: ice gradient, carbon film, contamination
    thickness = cfg.ice_gradient * unit * _smooth_field(yy, xx, 0.4, rng)
    thickness += carbon * unit * 1.5 * cfg.carbon_contrast + contam * unit * 6.0 + ice * unit * 4.0
    noise = rng.standard_normal(shape, dtype=np.float32) * (unit / cfg.snr)
    image = 1.0 - (phase + thickness + noise) / (10 * unit)
    coords = pd.DataFrame({"x": pos.x, "y": pos.y, "context": pos.context})
    return Micrograph(name, image.astype(np.float32), clean, coords, du, dv, angle)


def ice_blobs(shape: tuple[int, int], n: int, diameter: float, rng) -> np.ndarray:
    """``(rows, cols)`` float32 in [0, 1]: ``n`` sharp-edged discs of 0.5-1.1 ``diameter``
    at random positions (small ice crystals)."""
    out = np.zeros(shape, np.float32)
    for _ in range(n):
        r = diameter * rng.uniform(0.25, 0.55)
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        y0, y1 = max(0, int(cy - r - 4)), min(shape[0], int(cy + r + 5))
        x0, x1 = max(0, int(cx - r - 4)), min(shape[1], int(cx + r + 5))
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = special.expit((r - np.hypot(yy - cy, xx - cx)) / 0.7).astype(np.float32)
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], disc)
    return out


def as_integers(image: np.ndarray, bits: int) -> np.ndarray:
    """``image`` ``(rows, cols)`` stored as unsigned integers of ``bits`` (8: its 0.1-99.9
    percentile range spread over 0-255; 16: :data:`COUNTS_OFFSET` plus the image in units of
    its standard deviation times :data:`COUNTS_SD`, low contrast as counting detectors give);
    ``bits`` 0 returns it unchanged."""
    if bits == 0:
        return image
    if bits == 8:
        lo, hi = np.percentile(image, [0.1, 99.9])
        scaled = (image - lo) / max(float(hi - lo), 1e-12) * 255
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if bits == 16:
        z = (image - image.mean()) / max(float(image.std()), 1e-12)
        return np.clip(np.rint(COUNTS_OFFSET + COUNTS_SD * z), 0, 65535).astype(np.uint16)
    raise ValueError(f"bits must be 0, 8 or 16, not {bits}")


def _apply_micrograph_ctf(
    density: np.ndarray, du: float, dv: float, angle: float, cfg: MicrographSimConfig
) -> np.ndarray:
    """Convolve a micrograph (any shape) with one CTF, computed on a square grid and
    sampled at the micrograph's frequencies."""
    rows, cols = density.shape
    n = max(rows, cols)
    one = lambda v: np.array([v], float)  # noqa: E731
    params = CtfParams(
        defocus_u=one(du),
        defocus_v=one(dv),
        angle=one(angle),
        voltage=one(cfg.voltage),
        cs=one(cfg.cs),
        amplitude_contrast=one(cfg.amplitude_contrast),
        phase_shift=np.zeros(1),
    )
    ctf = ctf_values(params, cfg.angpix, n)[0]  # (n, n//2+1)
    ry = np.round(sfft.fftfreq(rows) * n).astype(int) % n
    rx = np.round(sfft.rfftfreq(cols) * n).astype(int)
    ft = sfft.rfft2(density, workers=-1) * ctf[np.ix_(ry, rx)]
    return sfft.irfft2(ft, s=(rows, cols), workers=-1).astype(np.float32)


def coordinate_star(coords: pd.DataFrame) -> pd.DataFrame:
    """RELION coordinate table (``rlnCoordinateX/Y`` px, x = column) with the context."""
    return pd.DataFrame(
        {
            "rlnCoordinateX": coords.x.round(2),
            "rlnCoordinateY": coords.y.round(2),
            "rlnCryosiftContext": coords.context,
        }
    )


def write_simulated_micrographs(
    volume: np.ndarray, cfg: MicrographSimConfig, outdir: Path, on_progress=None
) -> list[Path]:
    """Simulate ``cfg.n_micrographs`` micrographs into ``outdir``: ``Micrographs/mic_NNN.mrc``,
    ``Coordinates/mic_NNN.star`` (ground truth), ``micrographs_ctf.star`` (RELION 3.1 optics +
    micrographs with defoci) and ``simulation.json``. Each micrograph and its coordinates are
    written together (all or nothing); returns the micrograph paths."""
    import json

    outdir = Path(outdir)
    rows, paths = [], []
    diameter = diameter_px(volume)
    for i in range(cfg.n_micrographs):
        name = f"mic_{i + 1:03d}"
        mic = simulate_micrograph(volume, cfg, i, name)
        mrc = outdir / "Micrographs" / f"{name}.mrc"
        star = outdir / "Coordinates" / f"{name}.star"
        table = coordinate_star(mic.coords)
        write_all_or_nothing(
            {
                mrc: partial(
                    write_micrograph, image=as_integers(mic.image, cfg.bits), angpix=cfg.angpix
                ),
                star: partial(write_star, {"coordinates": table}),
            }
        )
        rows.append(
            {
                "rlnMicrographName": f"Micrographs/{name}.mrc",
                "rlnOpticsGroup": 1,
                "rlnDefocusU": mic.defocus_u,
                "rlnDefocusV": mic.defocus_v,
                "rlnDefocusAngle": mic.defocus_angle,
                "rlnCtfAstigmatism": abs(mic.defocus_u - mic.defocus_v),
            }
        )
        paths.append(mrc)
        if on_progress:
            on_progress(1)
    optics = optics_table(cfg.angpix, None, cfg.voltage, cfg.cs, cfg.amplitude_contrast)
    summary = {
        "config": asdict(cfg),
        "particle_diameter_px": round(diameter, 2),
        "particle_diameter_A": round(diameter * cfg.angpix, 1),
    }
    write_all_or_nothing(
        {
            outdir / "micrographs_ctf.star": lambda p: write_star(
                {"optics": optics, "micrographs": pd.DataFrame(rows)}, p
            ),
            outdir / "simulation.json": lambda p: p.write_text(json.dumps(summary, indent=2)),
        }
    )
    return paths
