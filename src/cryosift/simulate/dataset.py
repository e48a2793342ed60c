"""Writing a labelled particle stack: ``particles.mrcs``, a RELION 3.1 ``particles.star`` with
the ground truth in two extra columns, and ``truth.csv``.

The truth columns are ``rlnCryosiftIsInlier`` (1 or 0) and ``rlnCryosiftType`` (one of
:data:`TYPES`); RELION ignores labels it does not know. ``truth.csv`` has one row per particle
(``particle`` 1-based, ``truth`` the type, then any further per-particle truth).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.mrc import write_stack_chunks
from cryosift.io.star import write_star

TYPES = ("inlier", "noise", "partial", "multiple")
OUTLIER_TYPES = TYPES[1:]


def write_labelled_stack(
    outdir: Path,
    chunks: Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]],
    labels: np.ndarray,
    size: int,
    optics: pd.DataFrame,
    columns: dict[str, np.ndarray] | None = None,
    truth: dict[str, np.ndarray] | None = None,
    summary: Callable[[], dict] | None = None,
) -> Path:
    """Write ``particles.mrcs`` (from ``chunks``, image order = ``labels`` order),
    ``particles.star``, ``truth.csv`` and, if ``summary`` is given, ``simulation.json``
    (called after the images are written, so it can report what was measured on them),
    all or nothing. ``columns`` are extra STAR particle columns, ``truth`` extra
    ``truth.csv`` columns. Returns the STAR path."""
    outdir = Path(outdir)
    labels = np.asarray(labels)
    n = len(labels)
    angpix = float(optics["rlnImagePixelSize"].iloc[0])
    particles = pd.DataFrame(
        {"rlnImageName": [f"{i + 1:06d}@particles.mrcs" for i in range(n)], "rlnOpticsGroup": 1}
    )
    for name, values in (columns or {}).items():
        particles[name] = values
    particles["rlnCryosiftIsInlier"] = (labels == "inlier").astype(int)
    particles["rlnCryosiftType"] = labels
    truth_table = pd.DataFrame({"particle": np.arange(1, n + 1), "truth": labels, **(truth or {})})
    star = outdir / "particles.star"

    def images(path: Path) -> None:
        source = chunks() if callable(chunks) else chunks
        write_stack_chunks(path, source, n, (size, size), angpix)

    writers = {
        outdir / "particles.mrcs": images,
        star: lambda p: write_star({"optics": optics, "particles": particles}, p),
        outdir / "truth.csv": lambda p: truth_table.to_csv(p, index=False),
    }
    if summary is not None:
        writers[outdir / "simulation.json"] = lambda p: p.write_text(
            json.dumps(summary(), indent=2) + "\n"
        )
    write_all_or_nothing(writers)
    return star
