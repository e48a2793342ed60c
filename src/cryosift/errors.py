"""Errors that the command line turns into a one-line message and exit code 2."""

from __future__ import annotations

import os


class InputError(Exception):
    """A problem with a file the user gave us.

    The message always names the file, so that the CLI can print it on one line:
    ``cryosift: error: particles.star: no _rlnImageName column``.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())  # always a single line
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem
