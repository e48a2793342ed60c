"""Reading and writing STAR files with ``starfile``: one-line errors on broken files, and
reproducible output (no time stamp in the header)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile

from cryosift.errors import InputError


def read_star_blocks(path: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """The table blocks of a STAR file, ``{name: DataFrame}``; an :class:`InputError` naming
    the file when it holds binary junk or ``starfile`` cannot parse it."""
    path = Path(path)
    raw = path.read_bytes()
    if b"\x00" in raw:
        bad = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise InputError(path, f"garbled STAR file (binary data on line {bad})")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many kinds of errors on broken files
        raise InputError(path, f"unreadable STAR file ({type(exc).__name__}: {exc})") from None
    return {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}


def float_column(df: pd.DataFrame, col: str, path: str | os.PathLike[str]) -> np.ndarray:
    """Column ``col`` as float64; an :class:`InputError` naming ``path`` when it is not
    numeric or not finite."""
    try:
        values: np.ndarray = pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise InputError(path, f"column _{col} holds non-numeric values") from None
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0]) + 1
        raise InputError(path, f"column _{col} is missing or not finite in row {row}")
    return values


def merge_optics(
    table: pd.DataFrame, optics: pd.DataFrame | None, path: str | os.PathLike[str]
) -> pd.DataFrame:
    """``table`` (particles or micrographs) with its optics group's values merged into every
    row (RELION 3.1+); columns the table already has win. Unchanged when there is no optics
    block or no ``_rlnOpticsGroup``. An :class:`InputError` naming ``path`` when optics groups
    repeat."""
    if optics is None or "rlnOpticsGroup" not in table.columns:
        return table
    extra = [c for c in optics.columns if c not in table.columns or c == "rlnOpticsGroup"]
    merged = table.merge(optics[extra], on="rlnOpticsGroup", how="left")
    if len(merged) != len(table):
        raise InputError(path, "optics groups are not unique")
    return merged


def optics_table(
    angpix: float,
    size: int | None,
    voltage: float = 300.0,
    cs: float = 2.7,
    amplitude_contrast: float = 0.1,
    phase_flipped: bool = False,
    original_angpix: float | None = None,
) -> pd.DataFrame:
    """A one-group RELION 3.1 optics table: for particle images of side ``size`` px, or for
    micrographs when ``size`` is None (``rlnMicrographPixelSize`` instead of image fields).
    ``original_angpix`` is the pixel size of the micrographs the particles were cut from."""
    table: dict[str, list[object]] = {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"]}
    if original_angpix is not None:
        table["rlnMicrographOriginalPixelSize"] = [float(original_angpix)]
    if size is None:
        table["rlnMicrographPixelSize"] = [float(angpix)]
    else:
        table["rlnImagePixelSize"] = [float(angpix)]
        table["rlnImageSize"] = [int(size)]
        table["rlnImageDimensionality"] = [2]
    table["rlnVoltage"] = [float(voltage)]
    table["rlnSphericalAberration"] = [float(cs)]
    table["rlnAmplitudeContrast"] = [float(amplitude_contrast)]
    if phase_flipped:
        table["rlnCtfDataArePhaseFlipped"] = [1]
    return pd.DataFrame(table)


def write_star(blocks: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``{block name: DataFrame or dict}`` to ``path`` with ``starfile``, replacing its
    time-stamped first line so that the same data always gives the same bytes."""
    from cryosift import __version__

    path = Path(path)
    starfile.write(blocks, path, overwrite=True)
    text = path.read_text()
    first, _, rest = text.partition("\n")
    if first.startswith("# Created by the starfile"):
        path.write_text(f"# Created by cryosift {__version__} with starfile\n{rest}")
