"""Write several output files so that either all of them appear or none does."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_all_or_nothing(writers: dict[Path, Callable[[Path], object]]) -> None:
    """Call each ``writer(tmp_path)``; rename every temporary file into place only when all
    writers have succeeded. On any failure no target file is created or modified."""
    staged: list[tuple[Path, Path]] = []
    try:
        for target, writer in writers.items():
            target = Path(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".part", dir=target.parent
            )
            os.close(fd)
            staged.append((Path(name), target))
            writer(Path(name))
        for tmp, target in staged:
            os.replace(tmp, target)
        staged.clear()
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
