"""``--watch``: process micrographs as a session writes them.

A folder (or glob, or micrographs STAR) is looked at every ``poll`` seconds. A micrograph is
taken once its size and modification time have not changed between two looks (a copy still
under way is left for later), and taken again, once it has settled, when it changes (a
micrograph skipped as incomplete is tried again). Each time the micrographs taken change,
the command runs once more over all of them: it resumes the finished ones (their records in
the output folder), so only the new ones are worked on, and its files that sum up the run
(STAR lists, report) are rewritten. The first round waits for :data:`FIRST_ROUND`
micrographs, so that the survey and adaptation see as many as a batch run's would (or for
the folder to be quiet for :data:`SETTLE_POLLS` looks). Watching stops after ``idle``
seconds without a new micrograph (counted from the end of the last round), or on Ctrl-C
between rounds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryosift.errors import InputError
from cryosift.picking.adapt import SURVEY

#: Micrographs the first round waits for (the survey's number).
FIRST_ROUND = SURVEY
#: Looks without a new micrograph after which the first round starts with fewer.
SETTLE_POLLS = 3

Signature = tuple[int, int]


def signatures(spec) -> dict[str, Signature]:
    """``{path: (size, mtime_ns)}`` of the micrographs ``spec`` names now (none when it
    names none yet, or its STAR is being written)."""
    from cryosift.extract.run import find_micrographs

    try:
        paths = [str(p) for p in find_micrographs(spec).path]
    except InputError:
        return {}
    out = {}
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out[p] = (st.st_size, st.st_mtime_ns)
    return out


@dataclass
class Arrivals:
    """The micrographs of ``spec`` that have arrived whole: ``taken`` maps each to its
    signature when taken; ``last`` is the previous look."""

    spec: object
    last: dict[str, Signature] = field(default_factory=dict)
    taken: dict[str, Signature] = field(default_factory=dict)

    def look(self) -> bool:
        """Look again; True when the micrographs taken changed (a new one settled, or one
        taken before settled with new content)."""
        now = signatures(self.spec)
        changed = False
        for path, sig in now.items():
            if path in self.taken and self.taken[path] != sig:
                del self.taken[path]  # rewritten: wait for it to settle again
            if sig[0] > 0 and self.last.get(path) == sig and path not in self.taken:
                self.taken[path] = sig
                changed = True
        self.last = now
        return changed


def watch(
    spec,
    round_: Callable[[set[str]], None],
    poll: float,
    idle: float,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Call ``round_(paths)`` with the micrographs of ``spec`` taken so far, each time they
    change, until ``idle`` seconds pass without a new one or a round (or Ctrl-C between
    rounds). Returns the
    number of rounds. A round's :class:`InputError` is said and watching goes on; Ctrl-C
    during a round ends the command as usual (finished micrographs kept)."""
    arrivals = Arrivals(spec)
    rounds, pending, quiet_polls = 0, False, 0
    last_new = clock()
    say(f"watching {spec} every {poll:g} s; stops after {idle:g} s without a new micrograph")
    while True:
        if arrivals.look():
            last_new, pending, quiet_polls = clock(), True, 0
        else:
            quiet_polls += 1
        enough = rounds or len(arrivals.taken) >= FIRST_ROUND or quiet_polls >= SETTLE_POLLS
        if pending and enough:
            rounds, pending = rounds + 1, False
            try:
                round_(set(arrivals.taken))
            except InputError as exc:  # e.g. nothing usable yet: said, and watching goes on
                say(f"round {rounds}: {exc.message}")
            last_new = clock()  # idle time counts from the end of the work
        if clock() - last_new >= idle:
            say(f"no new micrograph for {idle:g} s: stopped watching after {rounds} round(s)")
            return rounds
        try:
            sleep(poll)
        except KeyboardInterrupt:
            say(f"stopped watching after {rounds} round(s)")
            return rounds
