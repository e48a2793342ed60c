"""How long work reports its progress: a stage opens a task by its name and number of steps,
and advances it as steps finish. The command line shows each task as a bar
(:func:`cryosift.cli.common.task_maker`); library callers may pass nothing."""

from __future__ import annotations

from collections.abc import Callable

#: Advances one task by the number of steps just finished.
Advance = Callable[[int], None]
#: Opens a task of ``total`` steps named ``name`` and returns its :data:`Advance`.
Progress = Callable[[str, int], Advance]


def no_progress(name: str, total: int) -> Advance:
    """A :data:`Progress` that shows nothing."""
    return lambda n: None
