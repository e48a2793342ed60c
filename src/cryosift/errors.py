"""Errors that the command line turns into a one-line message and exit code 2."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


class InputError(Exception):
    """A problem with a file the user gave us.

    The message always names the file, so that the CLI can print it on one line:
    ``cryosift: error: particles.star: no _rlnImageName column``.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())  # always a single line
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem

    def __reduce__(self):
        """Pickled as its two arguments, so that an error raised in a pool or Dask worker
        reaches the driver whole (the default pickles ``args``, the message alone)."""
        return (type(self), (self.path, self.problem))


#: The micrographs a command left out and why (written only when it left some out).
SKIPPED_FILE = "skipped.csv"


def skipped_writer(outdir: str | os.PathLike[str], skips: SkipLog | None) -> dict:
    """``{outdir/skipped.csv: writer}`` for :func:`cryosift.io.atomic.write_all_or_nothing`
    when ``skips`` holds any; else ``{}``, and a previous run's file is removed."""
    path = Path(outdir) / SKIPPED_FILE
    if skips is None or not skips.skipped:
        path.unlink(missing_ok=True)
        return {}
    return {path: skips.write_csv}


class SkipLog:
    """The micrographs a run leaves out, and why: a run over many micrographs goes on past
    one it cannot use, says so in one line (``warn``) and lists them all at the end.
    ``strict``: the first bad micrograph stops the run instead (its error is raised)."""

    def __init__(
        self,
        strict: bool = False,
        warn: Callable[[str], None] | None = None,
        warned: set | None = None,
    ):
        self.strict = strict
        self.warn = warn
        self.skipped: dict[str, str] = {}
        #: (name, reason) already said: a log shared by the rounds of ``--watch`` is quiet
        #: about a micrograph it has named before for the same reason.
        self.warned = warned if warned is not None else set()

    def skip(self, exc: InputError, name: str | os.PathLike[str] | None = None) -> None:
        """Leave out the micrograph ``name`` (default: the error's file) for ``exc``;
        raise ``exc`` when strict."""
        if self.strict:
            raise exc
        label = os.fspath(name) if name is not None else (exc.path or "?")
        self.skipped[label] = exc.problem
        if self.warn is not None and (label, exc.problem) not in self.warned:
            self.warn(f"skipped {label}: {exc.problem}")
        self.warned.add((label, exc.problem))

    def records(self) -> list[dict]:
        """``[{"micrograph": name, "reason": why}, ...]`` in the order they were skipped."""
        return [{"micrograph": k, "reason": v} for k, v in self.skipped.items()]

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """``micrograph,reason`` per skipped micrograph into ``path``."""
        import csv

        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.DictWriter(f, fieldnames=["micrograph", "reason"])
            out.writeheader()
            out.writerows(self.records())

    def none_left(self) -> InputError:
        """The error for a run that could use none of its micrographs (all skipped)."""
        first = next(iter(self.skipped.items()), ("?", "?"))
        return InputError(
            None,
            f"none of the {len(self.skipped)} micrograph(s) could be used "
            f"(first: {first[0]}: {first[1]})",
        )
