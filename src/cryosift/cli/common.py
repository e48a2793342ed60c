"""What every command shares: one-line errors with exit code 2, option checks, progress bars."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cryosift.errors import InputError, SkipLog
from cryosift.progress import Advance
from cryosift.progress import Progress as TaskProgress

console = Console(stderr=True)


def guarded(command: str, interrupted: str = "interrupted, nothing written") -> Callable:
    """Decorate a command's ``main``: bad input (a file, or an option value the command checks
    itself) ends in one line on stderr and exit code 2; Ctrl-C in the line ``interrupted``
    and exit code 130."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (InputError, typer.BadParameter) as exc:
                print(f"cryosift {command}: error: {exc.message}", file=sys.stderr)
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                print(f"cryosift {command}: {interrupted}", file=sys.stderr)
                raise typer.Exit(130) from None

        return inner

    return wrap


def skip_log(command: str, strict: bool, warned: set | None = None) -> SkipLog:
    """The log of micrographs ``command`` leaves out, each named on stderr in one line as
    it is met (``strict``: the first one is an error instead; ``warned``: what earlier
    rounds of ``--watch`` said already, not said again)."""

    def warn(line: str) -> None:
        print(f"cryosift {command}: {line}", file=sys.stderr)

    return SkipLog(strict, warn, warned)


def print_skipped(skips: SkipLog) -> None:
    """The micrographs left out and why, after a command's summary (nothing when none)."""
    if not skips.skipped:
        return
    console.print(f"{len(skips.skipped)} micrograph(s) skipped:", style="bold yellow")
    for name, why in skips.skipped.items():
        console.print(f"  {name}: {why}", highlight=False, soft_wrap=True)


def watch_rounds(
    micrographs: list, one_round: Callable, line: Callable, poll: float, idle_min: float
):
    """``--watch``: :func:`cryosift.pipeline.watch.watch` calling ``one_round(paths, fresh)``
    (``fresh``: the first round) with the micrographs arrived whole, saying ``line(result)``
    after each. Returns the last round's result (None when there was none)."""
    from cryosift.pipeline.watch import watch

    last: list = []

    def round_(paths: set[str]) -> None:
        result = one_round(paths, not last)
        last[:] = [result]
        console.print(line(result), highlight=False)

    def say(text: str) -> None:
        console.print(text, highlight=False)

    spec = micrographs[0] if len(micrographs) == 1 else micrographs
    watch(spec, round_, poll, idle_min * 60, say)
    return last[0] if last else None


def check_choice(flag: str, value: str, choices) -> None:
    """The value of the option ``flag`` must be one of ``choices``."""
    if value not in choices:
        raise typer.BadParameter(f"{flag} must be one of {', '.join(choices)} (got {value!r})")


#: ``--jobs`` of ``pick`` and ``run``: None lets :func:`cryosift.executors.jobs_for` choose.
JOBS = typer.Option(
    None,
    "--jobs",
    "-j",
    help="Micrographs processed in parallel [default: a process per core, at most 4; one "
    "process when no more micrographs than that are left to pick]",
    show_default=False,
)


def check_pick_options(
    threshold: float | None, area_fraction: float | None, jobs: int | None
) -> None:
    """The picking options ``pick`` and ``run`` share: a score threshold in [0, 1], an area
    fraction in (0, 1), not both, and at least one job."""
    if threshold is not None and not 0 <= threshold <= 1:
        raise typer.BadParameter("--threshold is a score in [0, 1]")
    if area_fraction is not None and not 0 < area_fraction < 1:
        raise typer.BadParameter("--area-fraction must lie in (0, 1)")
    if area_fraction is not None and threshold is not None:
        raise typer.BadParameter("give --threshold or --area-fraction, not both")
    if jobs is not None and jobs < 1:
        raise typer.BadParameter("--jobs must be at least 1")


def one_size(diameter_A: float | None, diameter_px: float | None) -> None:
    """``--diameter-A`` and ``--diameter-px`` say the same thing: one of them at most."""
    if diameter_A is not None and diameter_px is not None:
        raise typer.BadParameter("give --diameter-A or --diameter-px, not both")


def progress_bar() -> Progress:
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def task_maker(bar: Progress) -> TaskProgress:
    """Tasks of ``bar`` made on demand, as the stages of the work ask for them (a
    :data:`cryosift.progress.Progress`)."""

    def make(name: str, total: int) -> Advance:
        task = bar.add_task(name, total=total, rate="")
        return lambda n: bar.advance(task, n)

    return make


#: Options shared by the commands that read micrographs and need the particle size.
MICROGRAPHS = typer.Argument(
    ...,
    metavar="MICROGRAPHS...",
    help="Micrographs: files (Micrographs/*.mrc), a folder, a quoted glob or a micrographs STAR",
    show_default=False,
)
OUTDIR = typer.Option(..., "-o", "--outdir", help="Output folder")
#: The particle's size: every command that needs it takes it in Å or in px of its input (the
#: micrographs, or the particle images), under these two names (tests/cli/test_vocabulary.py).
DIAMETER_A = typer.Option(None, "--diameter-A", help="Particle diameter in Å")
DIAMETER_PX = typer.Option(
    None, "--diameter-px", help="Particle diameter in px of the input (instead of Å)"
)
ANGPIX = typer.Option(None, "--angpix", help="Pixel size of the input in Å (overrides its headers)")
DEVICE = typer.Option(None, "--device", help="cpu or cuda (default: cuda if present)")
PROJECT_DIR = typer.Option(
    None,
    "--project-dir",
    help="RELION project directory: every file name written in a STAR file is relative to "
    "it, as RELION reads them (default: the working directory)",
)
#: Cleaning keeps its usual threshold (``cryosift clean`` and ``cryosift run``).
STRICT_THRESHOLD = typer.Option(
    False,
    "--strict-threshold",
    help="Cleaning keeps its usual threshold (10% of noise let through) even where the particles "
    "stand out of noise only moderately (default: loosen it to 30% there)",
)
KEEP_DARK_AREAS = typer.Option(
    False,
    "--keep-dark-areas",
    help="Pick on areas far darker than the rest of the micrograph too (carbon film, thick ice, "
    "contamination; default: picks there are dropped)",
)
STRICT = typer.Option(
    False,
    "--strict",
    help="Stop at the first micrograph that cannot be used (default: skip it, name it, go on)",
)
WATCH_IDLE = typer.Option(
    10.0, "--watch-idle", help="With --watch: stop after this many minutes without a new micrograph"
)
WATCH_POLL = typer.Option(
    10.0, "--watch-poll", help="With --watch: look for new micrographs every this many seconds"
)
