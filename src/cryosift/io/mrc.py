"""Validated, memory-mapped access to MRC images and stacks.

Convention: a stack is ``(n, height, width)`` float32 when read, indexed ``[image, row, col]``.
"""

from __future__ import annotations

import mmap
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.dtypes import HEADER_DTYPE

from cryosift.errors import InputError

#: MRC modes we read, with their numpy dtypes (little endian; byte order is fixed up on read).
SUPPORTED_MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}


@dataclass
class MrcStack:
    """An open MRC file seen as a stack of 2D images.

    Attributes
    ----------
    path: the file.
    data: memory map of shape ``(n, height, width)`` in the file's dtype.
    angpix: pixel size in Å from the header, or ``None`` when the header says 0.
    """

    path: Path
    data: np.ndarray
    angpix: float | None
    _mrc: mrcfile.mrcmemmap.MrcMemmap

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Images at 0-based ``indices`` as float32, shape ``(len(indices), h, w)``."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.n):
            bad = int(indices[(indices < 0) | (indices >= self.n)][0])
            raise InputError(
                self.path, f"image index {bad + 1} is past the end of the stack ({self.n} images)"
            )
        if len(indices) > 1 and np.all(np.diff(indices) == 1):
            out = np.asarray(self.data[indices[0] : indices[-1] + 1], dtype=np.float32)
        else:
            out = np.asarray(self.data[indices], dtype=np.float32)
        return out

    def release_pages(self) -> None:
        """Drop the pages already read from this process's resident memory (Linux).

        Streaming a 2 GB stack through a memory map would otherwise leave every page
        resident; calling this after each chunk keeps peak memory bounded."""
        mm = getattr(self.data, "_mmap", None)
        if mm is None and isinstance(self.data.base, mmap.mmap):
            mm = self.data.base
        if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        self._mrc.close()


def _problem_from_warnings(caught: list[warnings.WarningMessage]) -> str:
    msgs = [str(w.message) for w in caught]
    return msgs[0] if msgs else "unreadable MRC header"


def _raw_header(path: Path) -> np.ndarray:
    """The file's 1024-byte header as mrcfile's header record, in the byte order its
    machine stamp states (little endian when the stamp is not a valid one)."""
    header = np.fromfile(path, dtype=HEADER_DTYPE, count=1)
    if bytes(header["machst"][0][:2]) == b"\x11\x11":  # big endian, MRC2014's stamp
        header = header.view(header.dtype.newbyteorder(">"))
    return np.asarray(header[0])


def _check_header(path: Path, header: np.ndarray, size: int) -> None:
    """A header that is not MRC, of an unsupported mode or promising more data than the
    file's ``size`` (bytes) is an error. Arithmetic only, before mrcfile reads anything: a
    garbage header would otherwise have it allocate what its extended-header size says."""
    mode = int(header["mode"])
    if mode not in SUPPORTED_MODES:
        if bytes(header["map"]) != b"MAP ":
            raise InputError(path, "not an MRC file (no 'MAP ' id and no valid header)")
        raise InputError(
            path, f"unsupported MRC mode {mode} (cryosift reads modes 0, 1, 2, 6 and 12)"
        )
    nx, ny, nz = (int(header[k]) for k in ("nx", "ny", "nz"))
    if min(nx, ny, nz) <= 0:
        raise InputError(path, f"invalid MRC dimensions {nx} x {ny} x {nz} in header")
    itemsize = np.dtype(SUPPORTED_MODES[mode]).itemsize
    expected = 1024 + int(header["nsymbt"]) + nx * ny * nz * itemsize
    if expected > size:
        raise InputError(
            path,
            f"truncated or corrupt header: header promises {nz} image(s) of {nx} x {ny} "
            f"(mode {mode}, {expected:,} bytes) but the file holds {size:,} bytes",
        )


def open_stack(path: str | os.PathLike[str]) -> MrcStack:
    """Open an MRC/MRCS file as an image stack, checking it before touching the data.

    A 2D image is a stack of one; a 3D file (volume or stack space group) is a stack of its
    sections. Fails with :class:`InputError` naming the file for: a missing or empty file,
    a file that is not MRC, an unsupported mode, or a header promising more data than
    the file holds (this check is arithmetic on the header, so a header claiming
    10^12 pixels fails at once without allocating anything).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not an MRC file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    if size < 1024:
        raise InputError(path, f"not an MRC file (only {size} bytes, shorter than an MRC header)")

    _check_header(path, _raw_header(path), size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        except (ValueError, OSError) as exc:
            raise InputError(path, f"not a readable MRC file ({exc})") from None
    if mrc.data is None:
        mrc.close()
        raise InputError(path, _problem_from_warnings(caught))
    data = mrc.data
    if data.ndim == 2:
        data = data[np.newaxis]
    vx = float(mrc.voxel_size.x)
    angpix = vx if np.isfinite(vx) and vx > 0 else None
    return MrcStack(path=path, data=data, angpix=angpix, _mrc=mrc)


def write_stack(path: str | os.PathLike[str], images: np.ndarray, angpix: float | None) -> None:
    """Write ``images`` (``(n, h, w)`` or ``(h, w)``) as a float32 MRC flagged as an image stack."""
    images = np.asarray(images, dtype=np.float32)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(images)
        if images.ndim == 3:
            mrc.set_image_stack()
        if angpix:
            mrc.voxel_size = angpix
        _label(mrc)


def write_micrograph(path: str | os.PathLike[str], image: np.ndarray, angpix: float | None) -> None:
    """Write one micrograph ``(rows, cols)`` as MRC in its own type: uint8 as mode 0, uint16
    as mode 6, anything else as float32 (mode 2)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        image = image.astype(np.float32)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(image)
        if angpix:
            mrc.voxel_size = angpix
        _label(mrc)


def write_stack_chunks(
    path: str | os.PathLike[str],
    chunks: Iterable[np.ndarray],
    n: int,
    shape: tuple[int, int],
    angpix: float | None,
) -> None:
    """Write a float32 MRC image stack of ``n`` images of ``shape`` from an iterable of
    ``(b, h, w)`` chunks, memory-mapped, so the stack never has to fit in memory."""
    with mrcfile.new_mmap(path, shape=(n, *shape), mrc_mode=2, overwrite=True) as mrc:
        start = 0
        for chunk in chunks:
            mrc.data[start : start + len(chunk)] = chunk
            start += len(chunk)
        if start != n:
            raise ValueError(f"expected {n} images, got {start}")
        mrc.set_image_stack()
        if angpix:
            mrc.voxel_size = angpix
        mrc.update_header_stats()
        _label(mrc)


def _label(mrc: mrcfile.mrcfile.MrcFile) -> None:
    """Replace mrcfile's time-stamped label, so that the same data gives the same bytes."""
    from cryosift import __version__

    mrc.header.label[0] = f"Created by cryosift {__version__}".encode()
    mrc.header.nlabl = 1
