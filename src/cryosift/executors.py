"""Where per-micrograph tasks run: in this process, a local process pool, or a Dask cluster.

Every executor yields ``(index, result)`` as tasks finish, in any order; the driver writes each
result under its micrograph's name, so the files do not depend on where or in which order the
work ran. A Dask worker that dies mid-run has its tasks rescheduled by the scheduler on the
others; each task's result still reaches the driver once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from cryosift.errors import InputError


def _init_worker(threads: int) -> None:
    """A pool worker leaves Ctrl-C to the driver and shares the cores with its siblings."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def default_jobs() -> int:
    """``--jobs``'s default: a process per core, at most four."""
    return min(4, os.cpu_count() or 1)


def jobs_for(heavy: int, jobs: int | None) -> int:
    """Processes for per-micrograph tasks of which ``heavy`` must be picked (the others
    only extract or read back what the survey found): ``jobs`` when the user chose it; left
    at its default (None), :func:`default_jobs`, or this one process when no more than that
    many must be picked. A spawned worker first imports torch and the picker, seconds on a
    CPU, which one micrograph's picking does not repay."""
    if jobs is not None:
        return jobs
    n = default_jobs()
    return n if heavy > n else 1


def run_serial(fn: Callable, tasks: Sequence) -> Iterator[tuple[int, Any]]:
    """Each task in turn, in this process."""
    for i, task in enumerate(tasks):
        yield i, fn(task)


def run_pool(fn: Callable, tasks: Sequence, jobs: int) -> Iterator[tuple[int, Any]]:
    """Tasks in ``jobs`` fresh processes (spawned: torch's thread pools do not survive a
    fork), at most ``2 * jobs`` queued at once so results stream back as they finish."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads,),
    )
    try:
        pending: dict = {}
        queue = iter(enumerate(tasks))
        for i, task in queue:
            pending[pool.submit(fn, task)] = i
            if len(pending) >= 2 * jobs:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                yield i, fut.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(fn, nxt[1])] = nxt[0]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def run_dask(fn: Callable, tasks: Sequence, scheduler: str) -> Iterator[tuple[int, Any]]:
    """Tasks on the Dask cluster whose scheduler listens at ``scheduler``
    (``tcp://HOST:PORT``); results are gathered here as they finish."""
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise InputError(None, f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        run_id = uuid.uuid4().hex[:12]
        futures = [
            client.submit(fn, task, key=f"cryosift-{run_id}-{i}", pure=False)
            for i, task in enumerate(tasks)
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        for fut, result in as_completed(futures, with_results=True):
            yield index[fut.key], result
            fut.release()
    finally:
        client.close()


class Failed:
    """What a :class:`Guarded` task returns instead of raising: its input error."""

    def __init__(self, error: InputError):
        self.error = error


class Guarded:
    """``fn`` whose :class:`InputError` (and ``OSError``: a file that went away or cannot
    be read) is returned as :class:`Failed` rather than raised, so that one bad micrograph
    does not end the others' work in a pool or on Dask. Picklable when ``fn`` is."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, task: Any) -> Any:
        try:
            return self.fn(task)
        except InputError as exc:
            return Failed(exc)
        except OSError as exc:
            where = getattr(task, "path", None)
            return Failed(InputError(where, f"cannot be read ({exc.__class__.__name__}: {exc})"))


def _execute(
    fn: Callable, tasks: Sequence, jobs: int, scheduler: str | None
) -> Iterator[tuple[int, Any]]:
    if scheduler:
        return run_dask(fn, tasks, scheduler)
    if jobs <= 1 or len(tasks) <= 1:
        return run_serial(fn, tasks)
    return run_pool(fn, tasks, min(jobs, len(tasks)))


def run_tasks(
    fn: Callable,
    tasks: Sequence,
    jobs: int = 1,
    scheduler: str | None = None,
    on_error: Callable[[int, InputError], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """``fn(task)`` for every task: on Dask when ``scheduler`` is given, else in a pool of
    ``jobs`` processes (``jobs`` <= 1 or a single task: in this process). With
    ``on_error``, a task that fails on its input is handed to it (its index and error) and
    the others go on; without, the error is raised."""
    if on_error is None:
        yield from _execute(fn, tasks, jobs, scheduler)
        return
    for i, result in _execute(Guarded(fn), tasks, jobs, scheduler):
        if isinstance(result, Failed):
            on_error(i, result.error)
        else:
            yield i, result
