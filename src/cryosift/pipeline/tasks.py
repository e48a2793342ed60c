"""The per-micrograph work of ``cryosift run``: pick, then cut the boxes, in one pure task.

:func:`process_micrograph` takes a :class:`MicrographTask` (everything about one micrograph:
where it is, its CTF, how to pick and how to extract) and returns a :class:`MicrographResult`
(the picks in micrograph px and the processed boxes). It reads the micrograph once, writes
nothing, and depends on no state of the driver, so a thread, a local process or a Dask worker
on another machine computes the same result; the driver alone writes files. The picker model
is loaded once per process (:func:`cryosift.picking.model.cached_model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryosift.extract.boxes import boxes_inside
from cryosift.extract.run import ExtractSettings, particle_boxes
from cryosift.io.micrographs import read_micrograph
from cryosift.picking.model import cached_model
from cryosift.picking.run import PickJob, pick_image


@dataclass(frozen=True)
class MicrographTask:
    """One micrograph to pick and extract. ``model``: a model folder (None: the shipped
    one); ``ctf``: RELION CTF columns of this micrograph, or None; ``angpix`` overrides
    the header; ``given``: picks to extract instead of picking (``x``, ``y``, ``score``,
    ``keep``: candidates of which only those kept are extracted, ``excluded``: those the
    darkness filter left out)."""

    key: str
    name: str
    path: Path
    pick: PickJob
    extract: ExtractSettings
    model: str | None = None
    device: str = "cpu"
    ctf: dict[str, float] | None = None
    angpix: float | None = None
    given: pd.DataFrame | None = None


@dataclass
class MicrographResult:
    """What one task found: ``picks`` (``x``, ``y`` px of the micrograph, ``score``, all
    kept picks), ``inside`` (bool per pick: its box lies in the micrograph and was cut),
    ``boxes`` ``(n_inside, size, size)`` float32, ``candidates`` (peaks before the
    threshold), ``shape`` of the micrograph, ``seconds`` of work, ``on_dark_areas`` (picks
    the darkness filter left out)."""

    key: str
    picks: pd.DataFrame
    inside: np.ndarray
    boxes: np.ndarray
    candidates: int
    shape: tuple[int, int]
    seconds: float
    on_dark_areas: int = 0


def process_micrograph(task: MicrographTask) -> MicrographResult:
    """Pick one micrograph (or take its given picks) and cut a box around every kept pick
    whose box lies inside it."""
    t0 = time.perf_counter()
    image = read_micrograph(task.path, task.angpix).image
    if task.given is not None:
        found = task.given
    else:
        found = pick_image(cached_model(task.model, task.device), image, task.pick)
    picks = found.loc[found.keep, ["x", "y", "score"]].reset_index(drop=True)
    xy = picks[["x", "y"]].to_numpy()
    inside = boxes_inside(xy, task.extract.box, image.shape) if len(xy) else np.zeros(0, bool)
    size = task.extract.size
    chunks = list(particle_boxes(image, xy[inside], task.extract, task.ctf)) if inside.any() else []
    boxes = np.concatenate(chunks) if chunks else np.zeros((0, size, size), np.float32)
    return MicrographResult(
        key=task.key,
        picks=picks,
        inside=inside,
        boxes=boxes.astype(np.float32, copy=False),
        candidates=len(found),
        shape=tuple(image.shape),
        seconds=time.perf_counter() - t0,
        on_dark_areas=int(found.excluded.sum()),
    )
