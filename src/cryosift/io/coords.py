"""Particle coordinates in the formats pickers write, read into one table and written back.

The internal table (a ``pandas.DataFrame``) has one row per pick:

| column | meaning |
|---|---|
| ``micrograph`` | micrograph name as the file gives it (or the coordinate file's stem) |
| ``x``, ``y`` | box centre in px of that micrograph, origin top-left, x = column, y = row |
| ``score`` | figure of merit / confidence, NaN when the format has none |
| ``diameter`` | px, NaN when unknown (box formats store their box size here) |

Formats (``FORMATS``): ``relion`` (per-micrograph coordinate STAR), ``relion-list`` (RELION 4/5
``data_coordinate_files``; reading only, it points at per-micrograph files), ``particles``
(RELION particles STAR), ``box`` (EMAN: lower-left corner + size; the corner is the centre
minus half the box, in the same row/column axes), ``topaz`` (tab-separated
``image_name x_coord y_coord score``), ``cbox`` (crYOLO STAR: corner + size, confidence),
``cryoppp`` (CSV ``X-Coordinate,Y-Coordinate,Diameter``), ``cs`` (cryoSPARC picks:
fractional centres times ``location/micrograph_shape`` = (height, width); reading only).
No scaling is ever guessed: :func:`scale_coords` is explicit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from cryosift.errors import InputError
from cryosift.io.formats import COORDINATE_FORMATS
from cryosift.io.star import read_star_blocks, write_star

COLUMNS = ("micrograph", "x", "y", "score", "diameter")


def _table(
    micrograph: object,
    x: ArrayLike,
    y: ArrayLike,
    score: ArrayLike = np.nan,
    diameter: ArrayLike = np.nan,
) -> pd.DataFrame:
    x = np.asarray(x, dtype=np.float64)
    df = pd.DataFrame({"micrograph": micrograph, "x": x, "y": np.asarray(y, np.float64)})
    df["score"] = np.asarray(score, np.float64) if np.ndim(score) else float(np.asarray(score))
    df["diameter"] = (
        np.asarray(diameter, np.float64) if np.ndim(diameter) else float(np.asarray(diameter))
    )
    df["micrograph"] = df["micrograph"].astype(str)
    return df[list(COLUMNS)]


def _column(df: pd.DataFrame, name: str, path: Path) -> np.ndarray:
    """Column ``name`` as float64 (non-numbers become NaN); an error if it is missing."""
    if name not in df.columns:
        raise InputError(path, f"no {name} column")
    return np.asarray(pd.to_numeric(df[name], errors="coerce").to_numpy(np.float64))


def _optional(df: pd.DataFrame, name: str, path: Path) -> np.ndarray | float:
    """Column ``name`` as float64, or NaN when the file does not have it."""
    return _column(df, name, path) if name in df.columns else np.nan


def read_relion(path: Path) -> pd.DataFrame:
    """A RELION per-micrograph coordinate STAR (micrograph = the file's stem)."""
    blocks = read_star_blocks(path)
    df = next((b for b in blocks.values() if "rlnCoordinateX" in b.columns), None)
    if df is None:
        if not blocks or all(len(b) == 0 for b in blocks.values()):
            return _table([], [], [])
        raise InputError(path, "no _rlnCoordinateX/_rlnCoordinateY columns")
    score = _optional(df, "rlnAutopickFigureOfMerit", path)
    name = df["rlnMicrographName"] if "rlnMicrographName" in df else path.stem
    return _table(
        name, _column(df, "rlnCoordinateX", path), _column(df, "rlnCoordinateY", path), score
    )


def write_relion(path: Path, picks: pd.DataFrame) -> None:
    """One micrograph's picks as a RELION coordinate STAR."""
    table = {"rlnCoordinateX": picks.x.to_numpy(), "rlnCoordinateY": picks.y.to_numpy()}
    if picks.score.notna().any():
        table["rlnAutopickFigureOfMerit"] = picks.score.to_numpy()
    write_star({"": pd.DataFrame(table)}, path)


def read_relion_list(path: Path) -> pd.DataFrame:
    """RELION 4/5 ``data_coordinate_files``: each row names a micrograph and its coordinate
    STAR (looked up as given, then beside the list)."""
    blocks = read_star_blocks(path)
    df = blocks.get("coordinate_files")
    if df is None or "rlnMicrographCoordinates" not in df:
        raise InputError(path, "no data_coordinate_files block with _rlnMicrographCoordinates")
    parts = []
    for mic, coords in zip(df["rlnMicrographName"], df["rlnMicrographCoordinates"], strict=True):
        cpath = Path(coords)
        if not cpath.exists() and (path.parent / cpath).exists():
            cpath = path.parent / cpath
        if not cpath.exists():
            raise InputError(path, f"coordinate file {coords} does not exist")
        picks = read_relion(cpath)
        picks["micrograph"] = str(mic)
        parts.append(picks)
    return pd.concat(parts, ignore_index=True) if parts else _table([], [], [])


def read_particles_star(path: Path) -> pd.DataFrame:
    """Picks from a RELION particles STAR (``_rlnMicrographName`` + coordinates)."""
    blocks = read_star_blocks(path)
    df = blocks.get("particles", next(iter(blocks.values()), None))
    if df is None or len(df) == 0:
        return _table([], [], [])
    if "rlnMicrographName" not in df:
        raise InputError(path, "no _rlnMicrographName column")
    score = _optional(df, "rlnAutopickFigureOfMerit", path)
    x, y = _column(df, "rlnCoordinateX", path), _column(df, "rlnCoordinateY", path)
    return _table(df["rlnMicrographName"], x, y, score)


def write_particles_coords(path: Path, picks: pd.DataFrame) -> None:
    """Picks as a RELION particles STAR (coordinates only, no images)."""
    table = {
        "rlnMicrographName": picks.micrograph.to_numpy(),
        "rlnCoordinateX": picks.x.to_numpy(),
        "rlnCoordinateY": picks.y.to_numpy(),
    }
    if picks.score.notna().any():
        table["rlnAutopickFigureOfMerit"] = picks.score.to_numpy()
    write_star({"particles": pd.DataFrame(table)}, path)


def _read_numeric_text(path: Path, ncols: int) -> np.ndarray:
    rows = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        try:
            rows.append([float(v) for v in fields[:ncols]])
        except ValueError:
            raise InputError(
                path, f"line {lineno}: non-numeric value in {line.strip()!r}"
            ) from None
        if len(rows[-1]) < ncols:
            raise InputError(path, f"line {lineno}: expected {ncols} columns")
    return np.asarray(rows, np.float64).reshape(-1, ncols)


def read_box(path: Path) -> pd.DataFrame:
    """EMAN ``.box``: ``x_corner y_corner width height`` per line."""
    a = _read_numeric_text(path, 4)
    return _table(path.stem, a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2, diameter=a[:, 2])


def write_box(path: Path, picks: pd.DataFrame, box: float) -> None:
    """EMAN ``.box`` with square boxes of side ``box`` px."""
    x0, y0 = picks.x - box / 2, picks.y - box / 2
    lines = [f"{a:.2f}\t{b:.2f}\t{box:g}\t{box:g}" for a, b in zip(x0, y0, strict=True)]
    path.write_text("".join(line + "\n" for line in lines))


def read_topaz(path: Path) -> pd.DataFrame:
    """topaz picks: a tab-separated table ``image_name x_coord y_coord score``."""
    try:
        df = pd.read_csv(path, sep="\t")
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(path, f"not a topaz coordinate table ({exc.__class__.__name__})") from None
    for col in ("image_name", "x_coord", "y_coord"):
        if col not in df:
            raise InputError(path, f"no {col} column")
    score = _optional(df, "score", path)
    return _table(
        df["image_name"], _column(df, "x_coord", path), _column(df, "y_coord", path), score
    )


def write_topaz(path: Path, picks: pd.DataFrame) -> None:
    df = pd.DataFrame(
        {"image_name": picks.micrograph, "x_coord": picks.x.round(2), "y_coord": picks.y.round(2)}
    )
    df["score"] = picks.score.fillna(0.0).to_numpy()
    df.to_csv(path, sep="\t", index=False)


def read_cbox(path: Path) -> pd.DataFrame:
    """crYOLO ``.cbox`` (STAR; ``_CoordinateX/Y`` lower-left corner, ``_Width``, ``_Height``,
    ``_Confidence``)."""
    blocks = read_star_blocks(path)
    df = blocks.get("cryolo", next(iter(blocks.values()), None))
    if df is None or len(df) == 0:
        return _table([], [], [])
    w, h = _column(df, "Width", path), _column(df, "Height", path)
    x = _column(df, "CoordinateX", path) + w / 2
    y = _column(df, "CoordinateY", path) + h / 2
    score = _optional(df, "Confidence", path)
    return _table(path.stem, x, y, score, w)


def write_cbox(path: Path, picks: pd.DataFrame, box: float) -> None:
    df = pd.DataFrame(
        {
            "CoordinateX": picks.x - box / 2,
            "CoordinateY": picks.y - box / 2,
            "CoordinateZ": np.nan,
            "Width": float(box),
            "Height": float(box),
            "Depth": np.nan,
            "Confidence": picks.score.fillna(1.0).to_numpy(),
        }
    )
    write_star({"cryolo": df}, path)


def read_cryoppp(path: Path) -> pd.DataFrame:
    """CryoPPP CSV: ``X-Coordinate,Y-Coordinate,Diameter`` (centres)."""
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(path, f"not a CryoPPP CSV ({exc.__class__.__name__})") from None
    for col in ("X-Coordinate", "Y-Coordinate"):
        if col not in df:
            raise InputError(path, f"no {col} column")
        raw = df[col]
        bad = np.flatnonzero((pd.to_numeric(raw, errors="coerce").isna() & raw.notna()).to_numpy())
        if len(bad):
            raise InputError(path, f"row {bad[0] + 1}: non-numeric {col} {raw.iloc[bad[0]]!r}")
    x, y = _column(df, "X-Coordinate", path), _column(df, "Y-Coordinate", path)
    d = _optional(df, "Diameter", path)
    return _table(path.stem, x, y, diameter=d)


def write_cryoppp(path: Path, picks: pd.DataFrame) -> None:
    pd.DataFrame(
        {"X-Coordinate": picks.x, "Y-Coordinate": picks.y, "Diameter": picks.diameter}
    ).to_csv(path, index=False)


def read_cs_picks(path: Path) -> pd.DataFrame:
    """cryoSPARC picks ``.cs``: ``location/center_{x,y}_frac`` times
    ``location/micrograph_shape`` (height, width), ``location/micrograph_path``."""
    try:
        rec = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(path, f"not a cryoSPARC .cs file ({exc.__class__.__name__})") from None
    names = rec.dtype.names or ()
    need = ("location/center_x_frac", "location/center_y_frac", "location/micrograph_shape")
    missing = [n for n in need if n not in names]
    if missing:
        raise InputError(path, f"no {missing[0]} field")
    shape = np.asarray(rec["location/micrograph_shape"], np.float64).reshape(-1, 2)
    x = rec["location/center_x_frac"] * shape[:, 1]
    y = rec["location/center_y_frac"] * shape[:, 0]
    mic = rec["location/micrograph_path"] if "location/micrograph_path" in names else path.stem
    if not isinstance(mic, str):
        mic = [m.decode() if isinstance(m, bytes) else str(m) for m in mic]
    score = rec["pick_stats/ncc_score"] if "pick_stats/ncc_score" in names else np.nan
    return _table(mic, x, y, score)


READERS = {
    "relion": read_relion,
    "relion-list": read_relion_list,
    "particles": read_particles_star,
    "box": read_box,
    "topaz": read_topaz,
    "cbox": read_cbox,
    "cryoppp": read_cryoppp,
    "cs": read_cs_picks,
}
FORMATS = COORDINATE_FORMATS


def guess_format(path: Path) -> str:
    """The format of a coordinate file from its extension and, for STAR, its blocks."""
    suffix = path.suffix.lower()
    by_suffix = {".box": "box", ".cbox": "cbox", ".csv": "cryoppp", ".cs": "cs", ".txt": "topaz"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    if suffix == ".star":
        blocks = read_star_blocks(path)
        if "coordinate_files" in blocks:
            return "relion-list"
        if any("rlnMicrographName" in b.columns for b in blocks.values()):
            return "particles"
        return "relion"
    raise InputError(path, f"unknown coordinate format {suffix!r}; give --format")


def read_coords(path: str | os.PathLike[str], fmt: str | None = None) -> pd.DataFrame:
    """Read picks from ``path`` (format guessed when ``fmt`` is None). Empty files give an
    empty table; NaN or infinite coordinates are an :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    fmt = fmt or guess_format(path)
    if fmt not in READERS:
        raise InputError(path, f"unknown coordinate format {fmt!r} (known: {', '.join(FORMATS)})")
    picks = READERS[fmt](path)
    bad = ~np.isfinite(picks[["x", "y"]].to_numpy()).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"pick {i + 1} has a NaN or infinite coordinate")
    return picks.reset_index(drop=True)


def scale_coords(picks: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Coordinates (and diameters) multiplied by ``factor``: e.g. ``angpix_from / angpix_to``
    to go from a binned micrograph's pixels to the unbinned one's."""
    out = picks.copy()
    out[["x", "y", "diameter"]] = out[["x", "y", "diameter"]] * float(factor)
    return out


def check_inside(picks: pd.DataFrame, shape: tuple[int, int], source: Path) -> None:
    """:class:`InputError` naming ``source`` when a pick lies outside a ``(rows, cols)``
    micrograph."""
    out = (picks.x < 0) | (picks.x >= shape[1]) | (picks.y < 0) | (picks.y >= shape[0])
    if out.any():
        row = picks[out].iloc[0]
        raise InputError(
            source,
            f"{int(out.sum())} picks outside the {shape[1]} x {shape[0]} px micrograph "
            f"(first at x = {row.x:g}, y = {row.y:g})",
        )
