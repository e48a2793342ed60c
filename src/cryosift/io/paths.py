"""File names inside STAR files, as RELION reads and writes them.

RELION runs every program from its project directory and reads every file name written in a
STAR file relative to it. cryosift writes names relative to one stated project directory
(:func:`project_relative`), and reads names by trying, in order, the places such a name may
be relative to (:func:`resolve_name`).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_relative(path: str | os.PathLike[str], project: str | os.PathLike[str]) -> str:
    """``path`` as written in a STAR file of the RELION project ``project``: relative to the
    project when it lies inside it, else absolute (``"."`` for the project itself)."""
    p = Path(os.path.abspath(path))
    root = Path(os.path.abspath(project))
    try:
        return p.relative_to(root).as_posix() or "."
    except ValueError:
        return p.as_posix()


def folder_prefix(folder: str | os.PathLike[str], project: str | os.PathLike[str] | None) -> str:
    """What goes before names relative to ``folder`` so they become relative to ``project``
    (``""`` when ``project`` is None or is ``folder`` itself)."""
    if project is None:
        return ""
    rel = project_relative(folder, project)
    return "" if rel == "." else rel.rstrip("/") + "/"


def places(name: Path, folder: Path) -> list[Path]:
    """Where a relative ``name`` from a STAR file in ``folder`` may be, as RELION means it:
    beside the STAR, in the working directory (RELION's project directory), then in each
    folder above the STAR (the project that holds it)."""
    ups = [a / name for a in Path(os.path.abspath(folder)).parents]
    return [folder / name, Path.cwd() / name, *ups]


def resolve_name(name: str, star: Path, first: str | os.PathLike[str] | None = None) -> Path:
    """The file a name in the STAR file ``star`` stands for: tried under ``first`` (when
    given), then at the :func:`places` of RELION's reading; the first that exists, else the
    name beside the STAR (or under ``first``)."""
    p = Path(name)
    if p.is_absolute():
        return p
    base = star.parent
    tries = [Path(first) / p] if first is not None else []
    for candidate in tries + places(p, base):
        if candidate.exists():
            return candidate
    return (Path(first) if first is not None else base) / p
