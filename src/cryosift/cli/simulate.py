"""``cryosift simulate``: synthetic data with ground truth.

``cryosift simulate particles`` writes a labelled particle stack (inliers and noise, partial
and multiple-particle outliers) projected from a volume, as RELION 3.1 ``particles.star`` +
``particles.mrcs`` with the truth in extra columns, ``truth.csv`` and ``simulation.json``
(requested and measured SNR, power SNR, particle diameter).

``cryosift simulate micrographs`` writes micrographs with particles at known positions, their
ground-truth coordinate STAR files and a CTF STAR.

Without ``--volume`` both use a built-in asymmetric phantom, so they need no data file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from cryosift.cli.common import (
    DIAMETER_A,
    DIAMETER_PX,
    check_choice,
    console,
    guarded,
    one_size,
    progress_bar,
    task_maker,
)
from cryosift.errors import InputError
from cryosift.simulate.choices import NOISE_COLOURS, PROTOCOLS, SHIFT_MODELS

app = typer.Typer(
    help="Simulate labelled particle stacks or micrographs with ground truth.",
    no_args_is_help=True,
)

PHANTOM_ANGPIX = 2.0  # Å/px of the built-in phantom
OUTDIR = typer.Option(..., "-o", "--outdir", help="Output folder")
VOLUME = typer.Option(None, "--volume", help="Map to project (.mrc or .npy)")
ANGPIX = typer.Option(None, "--angpix", help="Voxel size of the map (and images) in Å")
SEED = typer.Option(0, "--seed", help="Random seed")
DEFOCUS = typer.Option("1.0-2.5", "--defocus-um", help="Defocus range, µm")


def _range(text: str, what: str) -> tuple[float, float]:
    """Parse ``"LO-HI"`` or ``"X"`` into a (lo, hi) pair."""
    try:
        parts = [float(t) for t in text.split("-", 1)] if "-" in text[1:] else [float(text)] * 2
    except ValueError:
        raise typer.BadParameter(f"{what}: expected LO-HI or a number, got {text!r}") from None
    return (parts[0], parts[-1])


def _volume(volume: Path | None, angpix: float | None, size: int) -> tuple:
    """The volume to project and its voxel size in Å."""
    from cryosift.simulate.volume import load_volume, phantom_volume

    if volume is None:
        return phantom_volume(size), angpix or PHANTOM_ANGPIX
    vol, header_angpix = load_volume(volume)
    angpix = angpix or header_angpix
    if angpix is None:
        raise InputError(volume, "the voxel size is unknown: give --angpix")
    return vol, angpix


@app.command("particles")
@guarded("simulate particles")
def particles(
    outdir: Path = OUTDIR,
    volume: Path = VOLUME,
    angpix: float = ANGPIX,
    protocol: str = typer.Option(
        None, "--protocol", help=f"Reference protocol ({', '.join(PROTOCOLS)})"
    ),
    inliers: int = typer.Option(None, "--inliers", help="Number of good particles (1000)"),
    outliers: int = typer.Option(None, "--outliers", help="Number of outliers (1000)"),
    mix: str = typer.Option(
        "1:1:1", "--mix", help="Proportions of noise : partial : multiple outliers"
    ),
    snr: float = typer.Option(0.5, "--snr", help="SNR: mean clean signal / noise std"),
    shifts: str = typer.Option(
        None, "--shifts", help="Outlier displacement: radial (default) or per-axis"
    ),
    noise: str = typer.Option(None, "--noise", help=f"Noise colour: {', '.join(NOISE_COLOURS)}"),
    size: int = typer.Option(None, "--size", help="Fourier-crop the images to this side, px"),
    pad: int = typer.Option(0, "--pad", help="Edge-pad the volume by this many voxels"),
    ctf: bool = typer.Option(None, "--ctf/--no-ctf", help="Apply a CTF, then phase flip"),
    defocus: str = DEFOCUS,
    offset_sigma: float = typer.Option(None, "--offset-sigma", help="Inlier offset std, px"),
    seed: int = SEED,
) -> None:
    """Simulate a labelled particle stack with inliers and outliers."""
    from cryosift.simulate.particles import (
        ParticleSimConfig,
        ParticleSimulator,
        protocol_config,
        write_simulated_particles,
    )
    from cryosift.simulate.volume import pad_and_scale

    vol, vol_angpix = _volume(volume, angpix, 64)
    if protocol is not None:
        check_choice("--protocol", protocol, PROTOCOLS)
        vol = pad_and_scale(vol, 10)
        cfg = protocol_config(protocol, vol.shape[0])
    else:
        vol = pad_and_scale(vol, pad)
        cfg = ParticleSimConfig(ctf=True)
    try:
        weights = tuple(float(w) for w in mix.split(":"))
    except ValueError:
        weights = ()
    if len(weights) != 3:
        raise typer.BadParameter(f"--mix wants three numbers like 1:1:1, got {mix!r}")
    overrides: dict[str, Any] = {
        "n_inliers": inliers,
        "n_outliers": outliers,
        "noise": noise,
        "size": size,
        "ctf": ctf,
        "offset_sigma": offset_sigma,
        "shift_model": shifts,
    }
    cfg = replace(
        cfg,
        snr=snr,
        seed=seed,
        outlier_mix=weights,
        defocus_um=_range(defocus, "--defocus-um"),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    check_choice("--noise", cfg.noise, NOISE_COLOURS)
    check_choice("--shifts", cfg.shift_model, SHIFT_MODELS)
    sim = ParticleSimulator(vol, vol_angpix, cfg)
    star = write_simulated_particles(sim, outdir)
    s = sim.summary()
    console.print(
        f"wrote {star}: {s['counts']}, {s['size_px']} px at {s['angpix_output']:.3f} Å/px; "
        f"particle diameter {s['particle_diameter_A']} Å "
        f"({s['particle_diameter_px_output']} px); SNR {s['snr_mean']:.4g} "
        f"(requested {cfg.snr:.4g}), power SNR {s['snr_power']:.4g}",
        highlight=False,
    )


@app.command("micrographs")
@guarded("simulate micrographs")
def micrographs(
    outdir: Path = OUTDIR,
    volume: Path = VOLUME,
    angpix: float = ANGPIX,
    n: int = typer.Option(4, "-n", "--micrographs", help="Number of micrographs"),
    shape: str = typer.Option("1024x1024", "--shape", help="ROWSxCOLS in px"),
    particles_per: int = typer.Option(60, "--particles", help="Isolated particles each"),
    min_spacing: float = typer.Option(1.2, "--min-spacing", help="In particle diameters"),
    pairs: int = typer.Option(4, "--pairs", help="Touching pairs per micrograph"),
    aggregates: int = typer.Option(1, "--aggregates", help="Aggregates per micrograph"),
    contamination: int = typer.Option(1, "--contamination", help="Dark blobs per micrograph"),
    ice: int = typer.Option(0, "--ice", help="Crisp particle-sized ice blobs per micrograph"),
    carbon: bool = typer.Option(True, "--carbon-edge/--no-carbon-edge", help="Carbon edge"),
    carbon_contrast: float = typer.Option(
        1.0, "--carbon-contrast", help="Scale of the carbon film's step and texture"
    ),
    carbon_step: float = typer.Option(
        0.0, "--carbon-step", help="Phase step of the film (edge fringes), particle contrast units"
    ),
    diameter_A: float = DIAMETER_A,
    particle_px: float = DIAMETER_PX,
    bits: int = typer.Option(0, "--bits", help="Store as 8- or 16-bit integers (0: float32)"),
    snr: float = typer.Option(0.5, "--snr", help="Mean particle signal / noise std"),
    ctf: bool = typer.Option(True, "--ctf/--no-ctf", help="Apply a CTF"),
    defocus: str = DEFOCUS,
    seed: int = SEED,
) -> None:
    """Simulate micrographs with ground-truth particle coordinates.

    --diameter-A or --diameter-px sizes the built-in phantom (default about 44 px)."""
    from cryosift.simulate.micrographs import MicrographSimConfig, write_simulated_micrographs
    from cryosift.simulate.volume import phantom_size

    if bits not in (0, 8, 16):
        raise typer.BadParameter(f"--bits takes 0, 8 or 16, not {bits}")
    one_size(diameter_A, particle_px)
    if diameter_A is not None:
        particle_px = diameter_A / (angpix or PHANTOM_ANGPIX)
    if particle_px is not None and volume is not None:
        raise typer.BadParameter(
            "--diameter-A/--diameter-px size the built-in phantom: not with --volume"
        )
    size = 64 if particle_px is None else phantom_size(particle_px)
    vol, vol_angpix = _volume(volume, angpix, size)
    try:
        rows, cols = (int(v) for v in shape.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"--shape wants ROWSxCOLS, got {shape!r}") from None
    if min(rows, cols) < 4 * vol.shape[0]:
        raise typer.BadParameter(f"--shape {shape} is too small for a {vol.shape[0]} px particle")
    cfg = MicrographSimConfig(
        n_micrographs=n,
        shape=(rows, cols),
        angpix=vol_angpix,
        particles=particles_per,
        min_spacing=min_spacing,
        pairs=pairs,
        aggregates=aggregates,
        contamination=contamination,
        ice=ice,
        carbon_edge=carbon,
        carbon_contrast=carbon_contrast,
        carbon_step=carbon_step,
        bits=bits,
        snr=snr,
        ctf=ctf,
        defocus_um=_range(defocus, "--defocus-um"),
        seed=seed,
    )
    with progress_bar() as bar:
        advance = task_maker(bar)("micrographs", n)
        paths = write_simulated_micrographs(vol, cfg, outdir, on_progress=advance)
    console.print(
        f"wrote {len(paths)} micrographs, coordinates and micrographs_ctf.star into {outdir}",
        highlight=False,
    )
