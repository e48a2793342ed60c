"""Writing STAR files with ``starfile``, reproducibly (no time stamp in the header)."""

from __future__ import annotations

import os
from pathlib import Path

import starfile


def write_star(blocks: dict, path: str | os.PathLike) -> None:
    """Write ``{block name: DataFrame or dict}`` to ``path`` with ``starfile``, replacing its
    time-stamped first line so that the same data always gives the same bytes."""
    from cryosift import __version__

    path = Path(path)
    starfile.write(blocks, path, overwrite=True)
    text = path.read_text()
    first, _, rest = text.partition("\n")
    if first.startswith("# Created by the starfile"):
        path.write_text(f"# Created by cryosift {__version__} with starfile\n{rest}")
