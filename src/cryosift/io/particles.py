"""One image source for particles: RELION STAR (3.0 and 3.1+), bare ``.mrcs``, cryoSPARC ``.cs``.

Whatever the input, it becomes a :class:`ParticleSet`: an ordered list of particles, each an
image (stack file + 0-based index), with CTF parameters in RELION's units (defocus in Å,
angle in degrees, voltage in kV, Cs in mm) and the original metadata table kept so that
subsets can be written back in the user's own format.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryosift.errors import InputError
from cryosift.io.mrc import MrcStack, open_stack
from cryosift.io.star import (
    float_column,
    merge_optics,
    optics_table,
    read_star_blocks,
    write_star,
)

_IMAGE_NAME = re.compile(r"^\s*(\d+)@(.+?)\s*$")


@dataclass
class CtfParams:
    """Per-particle CTF parameters, arrays of shape ``(n,)`` (RELION conventions)."""

    defocus_u: np.ndarray  # Å, positive = underfocus
    defocus_v: np.ndarray  # Å
    angle: np.ndarray  # degrees, from the x axis to defocus U
    voltage: np.ndarray  # kV
    cs: np.ndarray  # mm
    amplitude_contrast: np.ndarray
    phase_shift: np.ndarray  # degrees

    def take(self, idx: np.ndarray) -> CtfParams:
        return CtfParams(**{k: np.asarray(v)[idx] for k, v in self.__dict__.items()})


@dataclass
class ParticleSet:
    """Particles from one input file.

    Attributes
    ----------
    source: the file the user gave.
    kind: ``"star"``, ``"mrcs"`` or ``"cs"``.
    stacks: the open image stacks, in order of first use.
    stack_id: ``(n,)`` index into ``stacks`` for each particle.
    image_index: ``(n,)`` 0-based image index within its stack.
    angpix: pixel size of the images in Å (``None`` if unknown).
    ctf: CTF parameters, or ``None`` if the input has none.
    phase_flipped: the input says its images are already CTF phase flipped.
    particles: the particle rows of the input (STAR columns without the leading underscore).
    optics: the optics table for RELION 3.1+ input, else ``None``.
    block_name: the STAR data block of the particles.
    cs_records: the structured array of a ``.cs`` input, else ``None``.
    """

    source: Path
    kind: str
    stacks: list[MrcStack]
    stack_id: np.ndarray
    image_index: np.ndarray
    angpix: float | None
    ctf: CtfParams | None
    phase_flipped: bool
    particles: pd.DataFrame
    optics: pd.DataFrame | None = None
    block_name: str = "particles"
    cs_records: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.stack_id)

    @property
    def box(self) -> int:
        """Image side in pixels (all stacks are checked to share it)."""
        return self.stacks[0].shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Images of particles ``start:stop`` as float32 ``(stop - start, box, box)``."""
        return self.read_rows(np.arange(start, min(stop, len(self))))

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Images of the particles ``rows`` (0-based, any order) as float32 ``(len, box, box)``."""
        rows = np.asarray(rows, dtype=np.int64)
        sid = self.stack_id[rows]
        idx = self.image_index[rows]
        out = np.empty((len(sid), self.box, self.box), dtype=np.float32)
        for s in np.unique(sid):
            sel = np.flatnonzero(sid == s)
            out[sel] = self.stacks[s].read(idx[sel])
        return out

    def release_pages(self) -> None:
        """Drop the memory-mapped pages read so far from resident memory."""
        for st in self.stacks:
            st.release_pages()

    def stack_of(self, i: int) -> Path:
        return self.stacks[int(self.stack_id[i])].path

    def close(self) -> None:
        for st in self.stacks:
            st.close()


def read_particles(
    path: str | os.PathLike[str],
    *,
    datadir: str | os.PathLike[str] | None = None,
    angpix: float | None = None,
) -> ParticleSet:
    """Read a particles file of any supported kind, checking every stack it points to.

    ``datadir``: where relative stack paths are looked up first (then beside the file, then
    the current directory). ``angpix`` overrides the pixel size found in the metadata.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix == ".star":
        pset = _read_star(path, datadir)
    elif suffix == ".cs":
        pset = _read_cs(path, datadir)
    elif suffix in (".mrcs", ".mrc", ".st"):
        pset = _read_bare_stack(path)
    else:
        raise InputError(path, "unknown particle file type (expected .star, .mrcs, .mrc or .cs)")
    if angpix is not None:
        pset.angpix = float(angpix)
    if len(pset) == 0:
        raise InputError(path, "contains zero particles")
    return pset


def _resolve(name: str, relative_to: Path, datadir: str | os.PathLike[str] | None) -> Path:
    """A stack named in a STAR file in the folder ``relative_to``: under ``datadir`` (also by
    its bare file name), at the :func:`cryosift.io.paths.places` RELION reads it from, then
    by its bare file name beside the STAR."""
    p = Path(name)
    if p.is_absolute():
        return p
    from cryosift.io.paths import places

    candidates = []
    if datadir is not None:
        candidates += [Path(datadir) / p, Path(datadir) / p.name]
    candidates += [*places(p, relative_to), relative_to / p.name]
    for c in candidates:
        if c.exists():
            return c
    return (Path(datadir) if datadir is not None else relative_to) / p


def _open_stacks(
    source: Path,
    names: list[str],
    indices: np.ndarray,
    datadir: str | os.PathLike[str] | None,
) -> tuple[list[MrcStack], np.ndarray]:
    """Open each distinct stack once and check every index against its length."""
    uniq: dict[str, int] = {}
    sid = np.empty(len(names), dtype=np.int64)
    for i, n in enumerate(names):
        sid[i] = uniq.setdefault(n, len(uniq))
    stacks: list[MrcStack] = []
    try:
        for name in uniq:
            resolved = _resolve(name, source.parent, datadir)
            if not resolved.exists():
                raise InputError(source, f"image stack {name!r} not found (looked for {resolved})")
            stacks.append(open_stack(resolved))
        for s, st in enumerate(stacks):
            mine = indices[sid == s]
            if len(mine) and mine.max() >= st.n:
                raise InputError(
                    source,
                    f"image index {int(mine.max()) + 1} is past the end of {st.path.name} "
                    f"({st.n} images)",
                )
            if len(mine) and mine.min() < 0:
                raise InputError(source, f"image index {int(mine.min()) + 1} is not positive")
        shapes = {st.shape for st in stacks}
        if len(shapes) > 1:
            raise InputError(source, f"stacks have different image sizes: {sorted(shapes)}")
        (h, w) = shapes.pop()
        if h != w:
            raise InputError(stacks[0].path, f"images are not square ({w} x {h})")
    except InputError:
        for st in stacks:
            st.close()
        raise
    return stacks, sid


def _parse_image_names(source: Path, names: pd.Series) -> tuple[np.ndarray, list[str]]:
    idx = np.empty(len(names), dtype=np.int64)
    files: list[str] = []
    for row, value in enumerate(names.astype(str)):
        m = _IMAGE_NAME.match(value)
        if not m:
            raise InputError(source, f"row {row + 1}: malformed image name {value[:40]!r}")
        idx[row] = int(m.group(1)) - 1
        files.append(m.group(2))
    return idx, files


def _read_star(path: Path, datadir: str | os.PathLike[str] | None) -> ParticleSet:
    blocks = read_star_blocks(path)
    block_name = next((k for k, v in blocks.items() if "rlnImageName" in v.columns), None)
    if block_name is None:
        raise InputError(path, "no _rlnImageName column: not a particles STAR file")
    particles = blocks[block_name].reset_index(drop=True)
    optics = blocks.get("optics")
    if len(particles) == 0:
        raise InputError(path, "contains zero particles")
    idx, files = _parse_image_names(path, particles["rlnImageName"])

    # Per-particle view with optics-group values merged in (RELION 3.1+).
    merged = merge_optics(particles, optics, path)
    angpix = _star_angpix(merged, path)
    ctf = _star_ctf(merged, path)
    flipped = False
    if "rlnCtfDataArePhaseFlipped" in merged.columns:
        flipped = bool(np.all(pd.to_numeric(merged["rlnCtfDataArePhaseFlipped"]) == 1))

    stacks, sid = _open_stacks(path, files, idx, datadir)
    if angpix is None:
        angpix = stacks[0].angpix
    return ParticleSet(
        source=path,
        kind="star",
        stacks=stacks,
        stack_id=sid,
        image_index=idx,
        angpix=angpix,
        ctf=ctf,
        phase_flipped=flipped,
        particles=particles,
        optics=optics,
        block_name=block_name,
    )


def _star_angpix(merged: pd.DataFrame, path: Path) -> float | None:
    """The particles' one pixel size in Å from ``merged`` (particles with their optics
    group's values), or None when the STAR file does not give it."""
    for col in ("rlnImagePixelSize", "rlnPixelSize"):
        if col in merged.columns:
            values = np.unique(float_column(merged, col, path))
            if len(values) > 1:
                raise InputError(path, f"particles have different pixel sizes {values.tolist()}")
            return float(values[0])
    if {"rlnDetectorPixelSize", "rlnMagnification"} <= set(merged.columns):
        det = float_column(merged, "rlnDetectorPixelSize", path)
        mag = float_column(merged, "rlnMagnification", path)
        return float(np.median(det * 1e4 / mag))
    return None


def _star_ctf(merged: pd.DataFrame, path: Path) -> CtfParams | None:
    """Per-particle CTF parameters from ``merged``, or None without defocus, voltage and
    Cs; other missing columns take RELION's defaults."""
    if not {"rlnDefocusU", "rlnVoltage", "rlnSphericalAberration"} <= set(merged.columns):
        return None
    n = len(merged)

    def col(name: str, default: float) -> np.ndarray:
        if name in merged.columns:
            return float_column(merged, name, path)
        return np.full(n, default)

    du = float_column(merged, "rlnDefocusU", path)
    return CtfParams(
        defocus_u=du,
        defocus_v=col("rlnDefocusV", np.nan) if "rlnDefocusV" in merged.columns else du,
        angle=col("rlnDefocusAngle", 0.0),
        voltage=col("rlnVoltage", 300.0),
        cs=col("rlnSphericalAberration", 2.7),
        amplitude_contrast=col("rlnAmplitudeContrast", 0.1),
        phase_shift=col("rlnPhaseShift", 0.0),
    )


def _read_bare_stack(path: Path) -> ParticleSet:
    st = open_stack(path)
    if st.shape[0] != st.shape[1]:
        st.close()
        raise InputError(path, f"images are not square ({st.shape[1]} x {st.shape[0]})")
    n = st.n
    particles = pd.DataFrame({"rlnImageName": [f"{i + 1:06d}@{path}" for i in range(n)]})
    return ParticleSet(
        source=path,
        kind="mrcs",
        stacks=[st],
        stack_id=np.zeros(n, dtype=np.int64),
        image_index=np.arange(n, dtype=np.int64),
        angpix=st.angpix,
        ctf=None,
        phase_flipped=False,
        particles=particles,
    )


def _cs_field(rec: np.ndarray, name: str, path: Path) -> np.ndarray:
    if name not in (rec.dtype.names or ()):
        raise InputError(path, f"cryoSPARC file has no {name!r} field")
    return rec[name]


def _read_cs(path: Path, datadir: str | os.PathLike[str] | None) -> ParticleSet:
    try:
        with open(path, "rb") as fh:
            rec = np.load(fh, allow_pickle=False)
    except Exception as exc:
        raise InputError(path, f"not a cryoSPARC .cs file ({type(exc).__name__}: {exc})") from None
    if rec.dtype.names is None:
        raise InputError(path, "not a cryoSPARC .cs file (no named fields)")
    if len(rec) == 0:
        raise InputError(path, "contains zero particles")
    files = [
        (p.decode() if isinstance(p, bytes) else str(p)).lstrip(">")
        for p in _cs_field(rec, "blob/path", path)
    ]
    idx = _cs_field(rec, "blob/idx", path).astype(np.int64)
    angpix = float(np.median(_cs_field(rec, "blob/psize_A", path)))
    ctf = None
    if "ctf/df1_A" in rec.dtype.names:
        n = len(rec)

        def f(name: str, default: float) -> np.ndarray:
            return rec[name].astype(np.float64) if name in rec.dtype.names else np.full(n, default)

        ctf = CtfParams(
            defocus_u=f("ctf/df1_A", np.nan),
            defocus_v=f("ctf/df2_A", np.nan),
            angle=np.degrees(f("ctf/df_angle_rad", 0.0)),
            voltage=f("ctf/accel_kv", 300.0),
            cs=f("ctf/cs_mm", 2.7),
            amplitude_contrast=f("ctf/amp_contrast", 0.1),
            phase_shift=np.degrees(f("ctf/phase_shift_rad", 0.0)),
        )
    stacks, sid = _open_stacks(path, files, idx, datadir)
    particles = pd.DataFrame(
        {"rlnImageName": [f"{i + 1:06d}@{p}" for i, p in zip(idx, files, strict=True)]}
    )
    if ctf is not None:
        particles["rlnDefocusU"] = ctf.defocus_u
        particles["rlnDefocusV"] = ctf.defocus_v
        particles["rlnDefocusAngle"] = ctf.angle
        particles["rlnPhaseShift"] = ctf.phase_shift
    particles["rlnOpticsGroup"] = 1
    optics = one_optics_group(angpix, stacks[0].shape[0], ctf)
    return ParticleSet(
        source=path,
        kind="cs",
        stacks=stacks,
        stack_id=sid,
        image_index=idx,
        angpix=angpix,
        ctf=ctf,
        phase_flipped=False,
        particles=particles,
        optics=optics,
        cs_records=rec,
    )


def one_optics_group(
    angpix: float, size: int, ctf: CtfParams | None, phase_flipped: bool = False
) -> pd.DataFrame:
    """A RELION 3.1 optics table of one group for particles of side ``size`` px that came
    without one (a ``.cs`` file, a bare stack): voltage, Cs and amplitude contrast of the
    first particle's ``ctf`` when known, else RELION's defaults."""
    known = {}
    if ctf is not None:
        known = {"voltage": float(ctf.voltage[0]), "cs": float(ctf.cs[0]),
                 "amplitude_contrast": float(ctf.amplitude_contrast[0])}  # fmt: skip
    return optics_table(angpix, size, phase_flipped=phase_flipped, **known)


def check_finite(images: np.ndarray, pset: ParticleSet, rows: np.ndarray) -> None:
    """An :class:`InputError` naming the stack and image numbers of non-finite images among
    ``images``, the particles ``rows``."""
    bad = ~np.isfinite(images).all(axis=(1, 2))
    if bad.any():
        rows = np.asarray(rows)[bad]
        stack = pset.stack_of(int(rows[0]))
        same = [int(pset.image_index[r]) + 1 for r in rows if pset.stack_of(int(r)) == stack]
        shown = ", ".join(map(str, same[:5])) + (", ..." if len(same) > 5 else "")
        raise InputError(stack, f"NaN or Inf pixel values in image(s) {shown}")


def write_particles_star(path: Path, pset: ParticleSet, rows: np.ndarray) -> None:
    """Write the particles ``rows`` (0-based) of ``pset`` as a STAR file RELION reads directly:
    the same optics block and image names as the input (RELION 3.1 format for ``.cs`` input)."""
    subset = pset.particles.iloc[rows].reset_index(drop=True)
    if pset.optics is not None:
        blocks = {"optics": pset.optics, "particles": subset}
    else:
        blocks = {pset.block_name or "particles": subset}
    write_star(blocks, path)


def write_cs_subset(path: Path, pset: ParticleSet, rows: np.ndarray) -> None:
    """Write the ``rows`` of a ``.cs`` input as a ``.cs`` file (numpy structured array)."""
    assert pset.cs_records is not None
    with open(path, "wb") as fh:
        np.save(fh, pset.cs_records[rows])
