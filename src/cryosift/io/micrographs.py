"""Micrographs from MRC, TIFF, PNG and JPEG, read into one convention.

Whatever the file, a micrograph is a float32 array ``(rows, cols)`` indexed ``[row, col]``:
the first row is the top of the image as written in the file, so a pick at ``(x, y)`` in px
is the pixel ``[y, x]`` (origin top-left, x = column, y = row). The pixel size comes from the
MRC header (or, when that says 0, from an FEI/EPU extended header), and can always be
overridden; TIFF/PNG/JPEG carry no trustworthy pixel size, so they need one from the user
when a command works in Å.

:func:`probe_micrograph` reads only the header (shape and pixel size), so a run can check
every input before it writes anything; :func:`read_micrograph` reads the pixels and rejects
NaN or infinite values.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cryosift.errors import InputError, SkipLog
from cryosift.io.mrc import MrcStack, open_stack

if TYPE_CHECKING:
    import mrcfile.mrcfile

MRC_SUFFIXES = (".mrc", ".mrcs", ".map")
TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
SUFFIXES = MRC_SUFFIXES + TIFF_SUFFIXES + PIL_SUFFIXES


@dataclass(frozen=True)
class MicrographInfo:
    """What the header says: ``shape`` is ``(rows, cols)``; ``angpix`` in Å or ``None``."""

    path: Path
    shape: tuple[int, int]
    angpix: float | None


def _fei_angpix(mrc: mrcfile.mrcfile.MrcFile) -> float | None:
    """Pixel size in Å from an FEI1/FEI2 extended header (stored in metres), if any."""
    try:
        ext = mrc.indexed_extended_header
    except Exception:  # mrcfile raises on malformed extended headers; the main header wins
        return None
    if ext is None or ext.dtype.names is None or "Pixel size X" not in ext.dtype.names:
        return None
    value = float(np.ravel(ext["Pixel size X"])[0]) * 1e10
    return value if np.isfinite(value) and value > 0 else None


def _one_image(path: Path, n: int) -> None:
    if n != 1:
        raise InputError(
            path, f"holds {n} images, not one micrograph (motion-correct or sum the movie first)"
        )


def _open_mrc(path: Path) -> tuple[MrcStack, float | None]:
    """The MRC as a checked one-image stack and its pixel size (header, else FEI header)."""
    stack = open_stack(path)
    try:
        _one_image(path, stack.n)
    except InputError:
        stack.close()
        raise
    return stack, stack.angpix or _fei_angpix(stack._mrc)


def _probe_mrc(path: Path) -> MicrographInfo:
    stack, angpix = _open_mrc(path)
    try:
        return MicrographInfo(path, stack.shape, angpix)
    finally:
        stack.close()


def _probe_tiff(path: Path) -> MicrographInfo:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(int(s) for s in series.shape)
    except Exception as exc:  # tifffile raises many kinds on broken files
        raise InputError(path, f"not a readable TIFF file ({exc.__class__.__name__})") from None
    if len(shape) == 3 and shape[0] != 1:
        _one_image(path, shape[0])
    shape = shape[-2:]
    return MicrographInfo(path, (shape[0], shape[1]), None)


def _probe_pil(path: Path) -> MicrographInfo:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            cols, rows = im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"not a readable image ({exc.__class__.__name__})") from None
    return MicrographInfo(path, (rows, cols), None)


def _check_file(path: Path) -> str:
    if not path.exists():
        raise InputError(path, "micrograph not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not a micrograph")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            path, f"unknown micrograph type {suffix!r} (cryosift reads {', '.join(SUFFIXES)})"
        )
    return suffix


def probe_micrograph(path: str | os.PathLike[str]) -> MicrographInfo:
    """Shape and pixel size from the header alone; an :class:`InputError` for a file that
    is missing, empty, not an image, truncated, of an unsupported MRC mode or a movie."""
    path = Path(path)
    suffix = _check_file(path)
    if suffix in MRC_SUFFIXES:
        return _probe_mrc(path)
    if suffix in TIFF_SUFFIXES:
        return _probe_tiff(path)
    return _probe_pil(path)


def _pixels(path: Path, suffix: str) -> tuple[np.ndarray, float | None]:
    """The image of a checked file and the pixel size its header states (MRC only)."""
    if suffix in MRC_SUFFIXES:
        stack, angpix = _open_mrc(path)
        try:
            return stack.read(np.array([0]))[0], angpix
        finally:
            stack.close()
    if suffix in TIFF_SUFFIXES:
        import tifffile

        try:
            data = tifffile.imread(path)
        except Exception as exc:
            raise InputError(path, f"not a readable TIFF file ({exc.__class__.__name__})") from None
        if data.ndim == 3 and data.shape[0] != 1 and data.shape[-1] not in (3, 4):
            _one_image(path, data.shape[0])
        return _to_grey(path, data), None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            data = np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"not a readable image ({exc.__class__.__name__})") from None
    return _to_grey(path, data), None


def _to_grey(path: Path, data: np.ndarray) -> np.ndarray:
    """``(rows, cols)`` float32 from a grey image, a single page, or RGB(A) with equal
    channels (a grey micrograph saved as colour)."""
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        rgb = data[..., :3].astype(np.float32)
        data = rgb.mean(axis=-1)
    if data.ndim != 2:
        raise InputError(path, f"not a 2D image (array of shape {data.shape})")
    return np.asarray(data, dtype=np.float32)


@dataclass
class Micrograph:
    """A micrograph in memory: ``image`` float32 ``(rows, cols)``, ``angpix`` in Å or None."""

    path: Path
    image: np.ndarray
    angpix: float | None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


def read_micrograph(path: str | os.PathLike[str], angpix: float | None = None) -> Micrograph:
    """Read a micrograph as float32 ``(rows, cols)``; ``angpix`` overrides the header.

    MRC modes 0, 1, 2, 6 and 12, FEI extended headers, non-square images; TIFF (one page);
    8- and 16-bit PNG/JPEG. NaN or infinite pixels, or all pixels equal, are an :class:`InputError`.
    """
    path = Path(path)
    image, header_angpix = _pixels(path, _check_file(path))
    bad = ~np.isfinite(image)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(
            path, f"{int(bad.sum())} NaN or infinite pixels (first at row {r}, column {c})"
        )
    if image.size and image.min() == image.max():
        raise InputError(
            path, f"every pixel is {float(image.flat[0]):g}: a blank exposure, nothing to pick"
        )
    return Micrograph(path, image, float(angpix) if angpix else header_angpix)


def screen_micrographs(
    mics: pd.DataFrame, skips: SkipLog | None = None
) -> tuple[pd.DataFrame, list[MicrographInfo]]:
    """The micrographs of ``mics`` (``path``) whose headers can be read, and their
    :class:`MicrographInfo`; each other one is left out through ``skips`` (without it, or
    when strict, its error is raised). An :class:`InputError` when none is left."""
    keep, infos = [], []
    for i, path in enumerate(mics.path):
        try:
            infos.append(probe_micrograph(path))
        except InputError as exc:
            if skips is None:
                raise
            skips.skip(exc, path)
            continue
        keep.append(i)
    if not keep:
        raise (skips or SkipLog()).none_left()
    return mics.iloc[keep].reset_index(drop=True), infos


def unskipped(mics: pd.DataFrame, skips: SkipLog | None) -> pd.DataFrame:
    """``mics`` (``path``) less those ``skips`` has left out."""
    if skips is None or not skips.skipped:
        return mics
    return mics[~mics.path.astype(str).isin(skips.skipped)].reset_index(drop=True)


#: Extensions stripped from a name to make its key: micrographs' and coordinate files'.
KEY_SUFFIXES = frozenset((*SUFFIXES, ".star", ".box", ".cbox", ".csv", ".txt", ".cs", ".coord"))


def micrograph_key(name: str | os.PathLike[str]) -> str:
    """The name a micrograph is matched by: its file name without folders and without its
    extension when that is one cryosift reads (``May08_03.05.02.bin.png`` ->
    ``May08_03.05.02.bin``; ``May08_03.05.02.bin_autopick`` stays whole: its last dot is part
    of the name, not an extension)."""
    path = Path(str(name))
    return path.stem if path.suffix.lower() in KEY_SUFFIXES else path.name


def resolve_key(name: str | os.PathLike[str], keys: Collection[str]) -> str | None:
    """The micrograph key among ``keys`` that ``name`` refers to: its own key, or the longest
    key it extends with an ``_suffix`` (``mic_001_autopick.star`` -> ``mic_001``); None if
    neither."""
    k = micrograph_key(name)
    if k in keys:
        return k
    return max((m for m in keys if k.startswith(m + "_")), key=len, default=None)


#: CTF columns of a micrographs STAR (RELION units) and their defaults when absent.
CTF_COLUMNS = {
    "rlnDefocusU": None,
    "rlnDefocusV": None,
    "rlnDefocusAngle": 0.0,
    "rlnVoltage": 300.0,
    "rlnSphericalAberration": 2.7,
    "rlnAmplitudeContrast": 0.1,
    "rlnPhaseShift": 0.0,
}


def read_micrographs_star(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A RELION micrographs STAR (e.g. ``micrographs_ctf.star``), optics merged in.

    Returns one row per micrograph: ``name`` (as written), ``path`` (resolved beside the
    STAR, from the working folder, then from the folders above the STAR:
    :func:`cryosift.io.paths.resolve_name`), ``key`` (:func:`micrograph_key`), ``angpix`` (Å,
    NaN when the file has none) and, when the file has defoci, the :data:`CTF_COLUMNS`.
    """
    from cryosift.io.star import float_column, merge_optics, read_star_blocks

    path = Path(path)
    blocks = read_star_blocks(path)
    table = next((b for b in blocks.values() if "rlnMicrographName" in b.columns), None)
    if table is None:
        raise InputError(path, "no _rlnMicrographName column: not a micrographs STAR file")
    if len(table) == 0:
        raise InputError(path, "lists zero micrographs")
    table = merge_optics(table, blocks.get("optics"), path)
    names = table["rlnMicrographName"].astype(str)
    out = pd.DataFrame({"name": names, "key": [micrograph_key(n) for n in names]})
    out["path"] = [_resolve_beside(path, n) for n in names]
    angpix = np.full(len(table), np.nan)
    for col in ("rlnMicrographPixelSize", "rlnImagePixelSize", "rlnPixelSize"):
        if col in table.columns:
            angpix = float_column(table, col, path)
            break
    out["angpix"] = angpix
    if "rlnDefocusU" in table.columns:
        for col, default in CTF_COLUMNS.items():
            if col in table.columns:
                out[col] = float_column(table, col, path)
            elif col == "rlnDefocusV":
                out[col] = out["rlnDefocusU"]
            else:
                out[col] = default
    return out


def _resolve_beside(star: Path, name: str) -> Path:
    from cryosift.io.paths import resolve_name

    return resolve_name(name, star)
