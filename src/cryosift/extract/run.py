"""Extraction over many micrographs: find the inputs, check them all, then cut, write and resume.

A run is planned before anything is written: every micrograph header is read, every pick is
matched to its micrograph and checked to lie inside it, pixel sizes are compared. Only then
does work start, one micrograph at a time (in parallel threads; the heavy work is in numpy and
``scipy.fft``, which release the GIL). Each micrograph gives ``Particles/<key>.mrcs`` and
``Particles/<key>.star`` (its particle rows), written together or not at all, so a rerun
skips micrographs whose stack is complete and whose picks have not changed. The run ends by
writing ``particles.star`` (RELION 3.1: optics + particles) and ``extract_summary.csv``.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryosift.errors import InputError, SkipLog, skipped_writer
from cryosift.executors import Failed, Guarded
from cryosift.extract.boxes import (
    box_centres,
    boxes_inside,
    crop_boxes,
    normalise_background,
    repeat_edges,
)
from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.coords import check_inside, guess_format, read_coords, scale_coords
from cryosift.io.micrographs import (
    CTF_COLUMNS,
    SUFFIXES,
    micrograph_key,
    read_micrograph,
    read_micrographs_star,
    resolve_key,
    screen_micrographs,
)
from cryosift.io.mrc import open_stack, write_stack_chunks
from cryosift.io.particles import CtfParams
from cryosift.io.paths import folder_prefix, project_relative
from cryosift.io.star import optics_table, read_star_blocks, write_star
from cryosift.preprocess.fourier import phase_flip_and_crop

COORD_SUFFIXES = (".star", ".box", ".cbox", ".csv", ".txt", ".cs")
#: Formats that hold the picks of one micrograph, named by the file.
PER_MICROGRAPH_FORMATS = ("relion", "box", "cbox", "cryoppp")
#: Boxes processed together (bounds memory for large boxes).
CHUNK = 256


@dataclass(frozen=True)
class ExtractSettings:
    """How boxes are cut. Sizes in px: ``box`` of the micrograph, ``size`` of the output,
    ``bg_radius`` of the output; ``angpix`` is the micrograph pixel size in Å. ``pad``: boxes
    that leave the micrograph are cut with its edge pixels repeated (RELION's default), else
    skipped; ``ramp``: the background plane is removed before normalising (RELION's
    default); ``subpixel``: each box is shifted by the fractional part of its pick so the
    pick lands exactly on the centre pixel (RELION truncates it)."""

    box: int
    size: int
    angpix: float | None
    bg_radius: float
    invert: bool = False
    normalise: bool = True
    phase_flip: bool = False
    pad: bool = False
    ramp: bool = True
    subpixel: bool = False
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.1

    @property
    def out_angpix(self) -> float | None:
        return None if self.angpix is None else self.angpix * self.box / self.size

    def describe(self) -> dict:
        return dataclasses.asdict(self)

    def optics(self) -> pd.DataFrame:
        """The RELION 3.1 optics table of the particles these settings cut."""
        return optics_table(
            self.out_angpix or 1.0,
            self.size,
            self.voltage,
            self.cs,
            self.amplitude_contrast,
            phase_flipped=self.phase_flip,
            original_angpix=self.angpix,
        )


@dataclass
class MicrographJob:
    """One micrograph to extract: its picks (px of the micrograph) and CTF (or None)."""

    key: str
    name: str
    path: Path
    shape: tuple[int, int]
    picks: pd.DataFrame
    ctf: dict[str, float] | None = None


# --------------------------------------------------------------------------- inputs


def _expand(spec: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """A folder (its files with ``suffixes``), a glob pattern, or one file."""
    text = str(spec)
    if any(ch in text for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
    if spec.is_dir():
        return sorted(p for p in spec.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    return [spec]


Specs = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def spec_list(spec: Specs) -> list[Path]:
    """One path or several (a shell-expanded glob) as a list of paths."""
    if isinstance(spec, (str, os.PathLike)):
        return [Path(spec)]
    return [Path(s) for s in spec]


def spec_label(spec: Specs) -> Path:
    """The path an error about the micrographs ``spec`` names: the one given, or the first
    of several."""
    paths = spec_list(spec)
    if not paths:
        raise InputError(None, "no micrographs given")
    return paths[0]


def _find_one(spec: Path) -> pd.DataFrame:
    if spec.suffix.lower() == ".star" and spec.is_file():
        return read_micrographs_star(spec)
    paths = _expand(spec, SUFFIXES)
    if not paths:
        raise InputError(spec, "no micrographs found (.mrc, .tif, .png, .jpg)")
    return pd.DataFrame(
        {
            "name": [str(p) for p in paths],
            "key": [micrograph_key(p) for p in paths],
            "path": paths,
            "angpix": np.nan,
        }
    )


def find_micrographs(spec: Specs) -> pd.DataFrame:
    """Micrographs from one or several folders, glob patterns, files or micrographs STARs
    (several: as the shell expands ``Micrographs/*.mrc``), in the order given.

    Returns ``name``, ``key``, ``path``, ``angpix`` (NaN unless a STAR gives it) and, for a
    STAR with defoci, the CTF columns. Keys must be unique (they name the output stacks).
    """
    first = spec_label(spec)  # none given: an error
    table = pd.concat([_find_one(p) for p in spec_list(spec)], ignore_index=True)
    dup = table.key[table.key.duplicated()]
    if len(dup):
        raise InputError(first, f"two micrographs share the name {dup.iloc[0]!r}")
    return table.reset_index(drop=True)


def in_project(mics: pd.DataFrame, project: str | os.PathLike[str] | None) -> pd.DataFrame:
    """``mics`` with each ``name`` as RELION reads it from the project directory ``project``
    (:func:`cryosift.io.paths.project_relative` of its path); unchanged when None."""
    if project is None:
        return mics
    return mics.assign(name=[project_relative(p, project) for p in mics.path])


def _coords_suffix_files(spec: Path) -> list[Path]:
    """RELION 3.1's ``coords_suffix<SUFFIX>`` file (e.g. ``AutoPick/job006/coords_suffix_
    autopick.star``): the per-micrograph files ``*<SUFFIX>`` in the folders below it; an
    empty list for any other path."""
    if not (spec.is_file() and spec.name.startswith("coords_suffix")):
        return []
    suffix = spec.name[len("coords_suffix") :]
    return sorted(p for p in spec.parent.rglob(f"*{suffix}") if p != spec and p.is_file())


def read_all_picks(spec: str | os.PathLike[str], fmt: str | None = None) -> pd.DataFrame:
    """Picks from one coordinate file, a folder of them or a glob, with a ``source`` column
    (the file each pick came from) and ``per_file`` (the format names the micrograph by
    the file, so the file's stem is the micrograph)."""
    spec = Path(spec)
    files = _coords_suffix_files(spec) or _expand(spec, COORD_SUFFIXES)
    if not files:
        raise InputError(spec, "no coordinate files found")
    parts = []
    for f in files:
        if not f.exists():
            raise InputError(f, "coordinate file not found")
        kind = fmt or guess_format(f)
        picks = read_coords(f, kind)
        picks["source"] = str(f)
        # A per-micrograph file names its micrograph by its own stem, unless (RELION STAR
        # with _rlnMicrographName) the picks carry the name themselves.
        named_by_file = bool((picks.micrograph == f.stem).all())
        picks["per_file"] = kind in PER_MICROGRAPH_FORMATS and named_by_file
        parts.append(picks)
    return pd.concat(parts, ignore_index=True)


def match_picks(
    mics: pd.DataFrame, picks: pd.DataFrame, skipped: SkipLog | None = None, drop: bool = False
) -> dict[str, pd.DataFrame]:
    """Each micrograph's picks, ``{key: picks}``. A pick names its micrograph by file stem;
    per-micrograph files may add a suffix (``mic_001_autopick.star``). With one micrograph
    and one per-micrograph coordinate file, the two belong together whatever their names.
    A pick whose micrograph is not among ``mics`` is an :class:`InputError` naming its file,
    unless ``skipped`` left that micrograph out or ``drop`` is set (``--watch``: it has not
    arrived yet); those picks are dropped."""
    gone = {micrograph_key(n) for n in (skipped.skipped if skipped is not None else ())}
    keys = set(mics.key) | gone
    single = len(mics) == 1 and picks.source.nunique() == 1 and bool(picks.per_file.all())

    out: dict[str, list[pd.DataFrame]] = {k: [] for k in mics.key}
    for (source, name), group in picks.groupby(["source", "micrograph"], sort=False):
        key = mics.key.iloc[0] if single else resolve_key(str(name), keys)
        if key is None and drop:
            continue
        if key is None:
            raise InputError(
                source,
                f"micrograph {name!r} named in the coordinates is not among the "
                f"{len(mics)} micrograph(s) given",
            )
        if key in out:
            out[key].append(group)
    return {
        k: (pd.concat(v, ignore_index=True) if v else picks.iloc[:0]).reset_index(drop=True)
        for k, v in out.items()
    }


def micrograph_angpix(mics: pd.DataFrame, infos: list, override: float | None) -> float | None:
    """The one pixel size of all micrographs (Å): ``override``, else the headers (or the
    STAR), which must agree within 1%; ``None`` when nothing states one."""
    if override is not None:
        return float(override)
    sizes = _stated_angpix(mics, infos)
    stated = [(i.path, float(a)) for i, a in zip(infos, sizes, strict=True) if np.isfinite(a) and a]
    if not stated:
        return None
    first_path, first = stated[0]
    for path, a in stated[1:]:
        if abs(a - first) > 0.01 * first:
            raise InputError(
                path,
                f"pixel size {a:.4g} Å differs from {first:.4g} Å of {Path(first_path).name}; "
                "give --angpix to set one",
            )
    return float(first)


def _stated_angpix(mics: pd.DataFrame, infos: list) -> np.ndarray:
    """``(N,)`` each micrograph's pixel size from the STAR, else its header (NaN: none)."""
    return np.array(
        [
            star_a if np.isfinite(star_a) else (info.angpix or np.nan)
            for info, star_a in zip(infos, mics.angpix, strict=True)
        ],
        dtype=float,
    )


def screen_pixel_sizes(
    mics: pd.DataFrame, infos: list, override: float | None, skips: SkipLog
) -> tuple[pd.DataFrame, list]:
    """Leave out (through ``skips``) the micrographs whose stated pixel size differs by more
    than 1% from the one most of them state; none without ``--angpix`` (``override``)."""
    stated = _stated_angpix(mics, infos)
    known = np.isfinite(stated)
    if override is not None or not known.any():
        return mics, infos
    agree = np.abs(stated[known][:, None] - stated[known][None, :]) <= 0.01 * stated[known]
    common = stated[known][int(np.argmax(agree.sum(axis=1)))]
    off = known & (np.abs(stated - common) > 0.01 * common)
    for i in np.flatnonzero(off):
        problem = f"pixel size {stated[i]:.4g} Å differs from {common:.4g} Å of the others"
        skips.skip(InputError(mics.path.iloc[i], problem + "; give --angpix to set one"))
    keep = np.flatnonzero(~off)
    return mics.iloc[keep].reset_index(drop=True), [infos[i] for i in keep]


def usable_micrographs(
    mics: pd.DataFrame, angpix: float | None, skips: SkipLog | None, single_strict: bool = True
) -> tuple[pd.DataFrame, list]:
    """The micrographs of ``mics`` whose headers can be read and their infos; with
    ``skips``, the others, and those whose pixel size differs from the rest's (unless
    ``angpix`` overrides it), are left out through it, the log made strict when ``mics`` holds
    one micrograph and ``single_strict`` (its problem is then the command's error);
    without, each is an error."""
    if skips is not None and len(mics) == 1 and single_strict:
        skips.strict = True
    mics, infos = screen_micrographs(mics, skips)
    if skips is not None:
        mics, infos = screen_pixel_sizes(mics, infos, angpix, skips)
    return mics, infos


def fitting_a_box(paths: Sequence, shapes: Sequence, side: float, skips: SkipLog) -> list[int]:
    """The indices of the micrographs (``paths``, ``shapes`` ``(rows, cols)``) at least
    ``side`` px (a box) wide and high; each other one is left out through ``skips``. An
    :class:`InputError` when none is left."""
    keep = []
    for i, (path, (rows, cols)) in enumerate(zip(paths, shapes, strict=True)):
        if min(rows, cols) >= side:
            keep.append(i)
        else:
            problem = f"{rows} x {cols} px is smaller than a box of {side:.0f} px"
            skips.skip(InputError(path, problem))
    if not keep:
        raise skips.none_left()
    return keep


def diameter_pixels(diameter_A: float | None, diameter_px: float | None, angpix) -> float:
    """The particle diameter in micrograph px from ``--diameter-A`` or ``--diameter-px``."""
    if (diameter_A is None) == (diameter_px is None):
        raise InputError(None, "give exactly one of --diameter-A and --diameter-px")
    if diameter_px is not None:
        if diameter_px <= 2:
            raise InputError(None, f"--diameter-px {diameter_px} is too small (at least 3 px)")
        return float(diameter_px)
    if not angpix:
        raise InputError(
            None, "--diameter-A needs a pixel size: the micrographs state none, give --angpix"
        )
    d = diameter_A / angpix
    if d <= 2:
        raise InputError(
            None, f"particle diameter {diameter_A} Å is {d:.2f} px at {angpix} Å/px: too small"
        )
    return float(d)


def find_with_diameter(
    spec: Path | list[Path],
    diameter_A: float | None,
    diameter_px: float | None,
    angpix: float | None,
    skips: SkipLog | None = None,
    only: set[str] | None = None,
) -> tuple[pd.DataFrame, float | None, float]:
    """Micrographs from ``spec``, one path or several (every header checked), their one
    pixel size (Å, or None) and the particle diameter in micrograph px. With ``skips``,
    micrographs whose header cannot be read, whose pixel size differs from the others' or
    smaller than two diameters are left out through it (made strict when ``spec`` holds one
    micrograph); without, each is an error. ``only``: the paths to take (``--watch``: those
    arrived whole), the rest ignored."""
    mics = find_micrographs(spec)
    if only is not None:
        mics = mics[mics.path.astype(str).isin(only)].reset_index(drop=True)
    mics, infos = usable_micrographs(mics, angpix, skips, single_strict=only is None)
    mic_angpix = micrograph_angpix(mics, infos, angpix)
    diameter = diameter_pixels(diameter_A, diameter_px, mic_angpix)
    if skips is not None:
        keep = fitting_a_box(mics.path, [i.shape for i in infos], 2 * diameter, skips)
        mics = mics.iloc[keep].reset_index(drop=True)
    return mics, mic_angpix, diameter


def check_ctf_angpix(ctf_star: Path, table: pd.DataFrame, angpix: float | None) -> None:
    """A CTF STAR whose pixel size disagrees with the micrographs' is an error."""
    stated = table.angpix[np.isfinite(table.angpix)]
    if angpix and len(stated) and np.any(np.abs(stated - angpix) > 0.01 * angpix):
        raise InputError(
            ctf_star,
            f"pixel size {float(stated.iloc[0]):.4g} Å differs from the micrographs' "
            f"{angpix:.4g} Å; give --angpix to set one",
        )


def ctf_by_micrograph(
    mics: pd.DataFrame,
    ctf_star: str | os.PathLike[str] | None,
    angpix: float | None,
    source: Specs,
) -> dict[str, dict[str, float]] | None:
    """The :data:`CTF_COLUMNS` of each micrograph of ``mics`` by key: from ``ctf_star``
    (whose pixel size must agree with ``angpix``), else from ``mics`` itself (a micrographs
    STAR with defoci); None when neither has defoci. A micrograph without a CTF is an
    :class:`InputError` naming ``ctf_star`` (or ``source``, the micrographs given)."""
    table = mics
    if ctf_star is not None:
        table = read_micrographs_star(ctf_star)
        check_ctf_angpix(Path(ctf_star), table, angpix)
    if "rlnDefocusU" not in table.columns:
        return None
    by_key = table.set_index("key")
    missing = [k for k in mics.key if k not in by_key.index]
    if missing:
        where = Path(ctf_star) if ctf_star else spec_label(source)
        raise InputError(where, f"no CTF for micrograph {missing[0]}")
    return {k: by_key.loc[k, list(CTF_COLUMNS)].astype(float).to_dict() for k in mics.key}


def plan_extraction(
    micrographs: Specs,
    coords: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    ctf_star: str | os.PathLike[str] | None = None,
    angpix: float | None = None,
    scale: float | None = None,
    coords_angpix: float | None = None,
    project: str | os.PathLike[str] | None = None,
    skips: SkipLog | None = None,
) -> tuple[list[MicrographJob], float | None]:
    """Check every input and return the jobs and the micrograph pixel size (Å or None).

    Coordinates are multiplied by ``scale``, or by ``coords_angpix / angpix`` when the picks
    were made on micrographs of another pixel size; nothing is scaled otherwise. Micrograph
    names are made relative to the RELION project directory ``project`` when given. With
    ``skips``, micrographs whose header cannot be read, whose pixel size differs from the
    others' or whose picks fall outside them are left out through it (their picks
    dropped); without, each is an error.
    """
    mics, infos = usable_micrographs(
        in_project(find_micrographs(micrographs), project), angpix, skips
    )
    mic_angpix = micrograph_angpix(mics, infos, angpix)
    ctf = ctf_by_micrograph(mics, ctf_star, mic_angpix, micrographs)

    picks = read_all_picks(coords, fmt)
    if coords_angpix is not None:
        if mic_angpix is None:
            raise InputError(spec_label(micrographs), "no pixel size to scale coordinates to")
        scale = coords_angpix / mic_angpix
    if scale is not None:
        picks = scale_coords(picks, scale)
    by_key = match_picks(mics, picks, skips)

    jobs = []
    for row, info in zip(mics.itertuples(), infos, strict=True):
        mine = by_key[row.key]
        try:
            for source, group in mine.groupby("source", sort=False):
                check_inside(group, info.shape, Path(source))
        except InputError as exc:
            if skips is None:
                raise
            skips.skip(InputError(row.path, exc.message))
            continue
        jobs.append(
            MicrographJob(
                row.key,
                str(row.name),
                Path(row.path),
                info.shape,
                mine,
                None if ctf is None else ctf[row.key],
            )
        )
    return jobs, mic_angpix


# --------------------------------------------------------------------------- one micrograph


def _ctf_params(ctf: dict[str, float]) -> CtfParams:
    def a(col: str) -> np.ndarray:
        return np.array([ctf[col]], dtype=np.float64)

    return CtfParams(
        defocus_u=a("rlnDefocusU"),
        defocus_v=a("rlnDefocusV"),
        angle=a("rlnDefocusAngle"),
        voltage=a("rlnVoltage"),
        cs=a("rlnSphericalAberration"),
        amplitude_contrast=a("rlnAmplitudeContrast"),
        phase_shift=a("rlnPhaseShift"),
    )


def selected_picks(job: MicrographJob, settings: ExtractSettings) -> tuple[np.ndarray, int]:
    """Indices of the picks that will be extracted, and how many boxes leave the micrograph
    (dropped, or padded when ``settings.pad``)."""
    xy = job.picks[["x", "y"]].to_numpy()
    inside = boxes_inside(xy, settings.box, job.shape) if len(xy) else np.ones(0, bool)
    n_off = int((~inside).sum())
    keep = np.arange(len(xy)) if settings.pad else np.flatnonzero(inside)
    return keep, n_off


def particle_boxes(
    image: np.ndarray,
    xy: np.ndarray,
    settings: ExtractSettings,
    ctf: dict[str, float] | None,
    workers: int = 1,
) -> Iterator[np.ndarray]:
    """Yield the processed boxes for picks ``xy`` ``(n, 2)`` in chunks ``(b, size, size)``,
    in RELION's order: cut (the micrograph's mean outside it), phase flipped (with ``ctf``
    when ``settings.phase_flip``) at the box size, edges repeated, Fourier-cropped,
    normalised, inverted as the settings say."""
    params = _ctf_params(ctf) if settings.phase_flip and ctf is not None else None
    fill = float(np.mean(image)) if params is not None else None
    for start in range(0, len(xy), CHUNK):
        pts = xy[start : start + CHUNK]
        boxes = crop_boxes(image, pts, settings.box, pad=settings.pad, fill=fill)
        shifts = -box_centres(pts)[1][:, ::-1] if settings.subpixel else None
        if fill is not None and not boxes_inside(pts, settings.box, image.shape).all():
            boxes = phase_flip_and_crop(boxes, settings.box, params, settings.angpix, workers)
            boxes = repeat_edges(boxes, pts, image.shape)
            params_now = None
        else:
            params_now = params
        boxes = phase_flip_and_crop(
            boxes, settings.size, params_now, settings.angpix, workers, shifts
        )
        if settings.normalise:
            boxes = normalise_background(boxes, settings.bg_radius, settings.ramp)
        if settings.invert:
            boxes = -boxes
        yield boxes


def particle_rows(job: MicrographJob, keep: np.ndarray, stack_name: str) -> pd.DataFrame:
    """The STAR rows of one micrograph's particles (RELION 3.1 particles block)."""
    picks = job.picks.iloc[keep]
    rows = pd.DataFrame(
        {
            "rlnCoordinateX": picks.x.to_numpy().round(2),
            "rlnCoordinateY": picks.y.to_numpy().round(2),
            "rlnImageName": [f"{i + 1:06d}@{stack_name}" for i in range(len(picks))],
            "rlnMicrographName": job.name,
            "rlnOpticsGroup": 1,
        }
    )
    if picks.score.notna().any():
        rows["rlnAutopickFigureOfMerit"] = picks.score.to_numpy()
    if job.ctf is not None:
        for col in ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle"):
            rows[col] = job.ctf[col]
        if job.ctf["rlnPhaseShift"]:
            rows["rlnPhaseShift"] = job.ctf["rlnPhaseShift"]
    return rows


def _is_complete(stack: Path, sidecar: Path, rows: pd.DataFrame, size: int) -> bool:
    """A previous run's output for this micrograph holds exactly these picks at this size."""
    if not (stack.exists() and sidecar.exists()):
        return False
    try:
        old = read_star_blocks(sidecar).get("particles")
        st = open_stack(stack)
    except InputError:
        return False
    try:
        ok = st.n == len(rows) and st.shape == (size, size)
    finally:
        st.close()
    if old is None or len(old) != len(rows) or not ok:
        return False
    cols = ["rlnCoordinateX", "rlnCoordinateY"]
    return bool(np.allclose(old[cols].to_numpy(float), rows[cols].to_numpy(float), atol=0.01))


def extract_micrograph(
    job: MicrographJob,
    settings: ExtractSettings,
    outdir: Path,
    resume: bool = True,
    workers: int = 1,
    prefix: str = "",
) -> dict:
    """Extract one micrograph into ``outdir/Particles``; returns its summary row (with the
    particle rows under ``"rows"`` and the files it wrote under ``"written"``). Image names
    are ``prefix`` + ``Particles/<key>.mrcs`` (``prefix``: ``outdir`` seen from the
    project directory)."""
    keep, n_off = selected_picks(job, settings)
    stack_rel = f"Particles/{job.key}.mrcs"
    stack, sidecar = outdir / stack_rel, outdir / "Particles" / f"{job.key}.star"
    rows = particle_rows(job, keep, prefix + stack_rel)
    summary = {
        "micrograph": job.name,
        "picks": len(job.picks),
        "extracted": len(keep),
        "off_edge": n_off,
        "off_edge_action": "edges repeated" if settings.pad else "skipped",
        "rows": rows,
        "written": [],
    }
    if len(keep) == 0:
        summary["status"] = "no picks" if len(job.picks) == 0 else "all off edge"
        return summary
    if resume and _is_complete(stack, sidecar, rows, settings.size):
        summary["status"] = "resumed"
        return summary
    mic = read_micrograph(job.path, angpix=settings.angpix)
    xy = job.picks[["x", "y"]].to_numpy()[keep]

    def write_images(path: Path) -> None:
        chunks = particle_boxes(mic.image, xy, settings, job.ctf, workers)
        shape = (settings.size, settings.size)
        write_stack_chunks(path, chunks, len(keep), shape, settings.out_angpix)

    write_all_or_nothing(
        {
            stack: write_images,
            sidecar: lambda p: write_star({"particles": rows}, p),
        }
    )
    summary["status"] = "extracted"
    summary["written"] = [stack, sidecar]
    return summary


# --------------------------------------------------------------------------- the run


def _settings_file(outdir: Path, settings: ExtractSettings, overwrite: bool) -> Path | None:
    """Check (or record) the settings of the extraction in ``outdir``; returns the file when
    this run created it."""
    path = outdir / "extract.json"
    wanted = settings.describe()
    if path.exists() and not overwrite:
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old != wanted:
            diff = [k for k in wanted if old is None or old.get(k) != wanted[k]]
            raise InputError(
                path,
                f"holds an extraction with other settings ({', '.join(diff)}); "
                "choose another --outdir or pass --overwrite",
            )
        return None
    write_all_or_nothing({path: lambda p: p.write_text(json.dumps(wanted, indent=2))})
    return path


def run_extraction(
    jobs: list[MicrographJob],
    settings: ExtractSettings,
    outdir: str | os.PathLike[str],
    *,
    n_jobs: int = 1,
    overwrite: bool = False,
    on_progress: Callable[[int], None] | None = None,
    project: str | os.PathLike[str] | None = None,
    skips: SkipLog | None = None,
) -> pd.DataFrame:
    """Extract every job into ``outdir`` and write ``particles.star`` and
    ``extract_summary.csv``; returns the summary (one row per micrograph). Image names in
    the STAR files are relative to the RELION project directory ``project`` (None: to
    ``outdir``).

    Bad input met during the run (e.g. NaN pixels) leaves that micrograph out through
    ``skips``; without it (or when strict, or when no micrograph is left) it removes what
    this run wrote and raises :class:`InputError`. An interrupted run leaves its finished
    micrographs for a rerun.
    """
    outdir = Path(outdir)
    created_dir = not outdir.exists()
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        settings_path = _settings_file(outdir, settings, overwrite)
        if settings_path is not None:
            written.append(settings_path)
        workers = 1 if n_jobs > 1 else -1
        prefix = folder_prefix(outdir, project)

        def work(job: MicrographJob) -> dict:
            return extract_micrograph(job, settings, outdir, not overwrite, workers, prefix)

        results = []
        with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
            for job, res in zip(jobs, pool.map(Guarded(work), jobs), strict=True):
                if isinstance(res, Failed):
                    if skips is None:
                        raise res.error
                    skips.skip(res.error, job.path)
                else:
                    written += res["written"]
                    results.append(res)
                if on_progress:
                    on_progress(1)
        if not results:
            raise (skips or SkipLog()).none_left()
        rows = [r["rows"] for r in results if len(r["rows"])]
        # With no particle at all, the first micrograph's empty table gives the columns.
        particles = pd.concat(rows, ignore_index=True) if rows else results[0]["rows"]
        optics = settings.optics()
        summary = pd.DataFrame(
            [{k: v for k, v in r.items() if k not in ("rows", "written")} for r in results]
        )
        write_all_or_nothing(
            {
                outdir / "particles.star": lambda p: write_star(
                    {"optics": optics, "particles": particles}, p
                ),
                outdir / "extract_summary.csv": lambda p: summary.to_csv(p, index=False),
                **skipped_writer(outdir, skips),
            }
        )
    except InputError:
        for p in written:
            p.unlink(missing_ok=True)
        if created_dir:
            for d in (outdir / "Particles", outdir):
                if d.exists() and not any(d.iterdir()):
                    d.rmdir()
        raise
    return summary
