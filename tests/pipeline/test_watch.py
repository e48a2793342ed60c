"""``cryosift run --watch``: micrographs taken once whole, each processed once, the same
outputs as a batch run; the arrival rules on their own with a fake folder and clock."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DIAMETER_A, assert_same_outputs, run_cli
from cryosift.errors import InputError
from cryosift.pipeline import watch as watching

OPTIONS = ("--diameter-A", DIAMETER_A, "--classes", "0", "--no-report", "-j", "1")
#: A round's line: "round: N micrographs (K new, ...)"; the group is K.
NEW_IN_ROUND = re.compile(r"\((\d+) new")


def _write_slowly(source: Path, target: Path, pieces: int = 3, pause: float = 0.1) -> None:
    """Copy ``source`` to ``target`` in ``pieces`` writes, ``pause`` s apart."""
    data = source.read_bytes()
    step = -(-len(data) // pieces)
    with open(target, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause)


def _watch(command: str, options: tuple, sources: list[Path], incoming: Path, out: Path) -> str:
    """``cryosift COMMAND incoming --watch`` while ``sources`` are written into ``incoming``
    one by one, in name order, each in pieces; what it said. The first round's micrographs
    (:data:`watching.FIRST_ROUND`) are written back to back and the rest only once that round
    is reported, so the first round holds what a batch run's survey sees however slowly the
    writing goes on a loaded machine (a pause of ``SETTLE_POLLS`` looks would start it with
    fewer). Each micrograph must have been worked on once, over at least two rounds, none
    taken half-written."""
    incoming.mkdir()
    cmd = [sys.executable, "-m", "cryosift", command, str(incoming), *options, "-o", str(out),
           "--watch", "--watch-poll", "0.5", "--watch-idle", "0.3"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = [proc.stderr.readline()]  # the watcher is looking: start writing
    assert "watching" in said[0], said[0] + proc.stderr.read()
    first, rest = sources[: watching.FIRST_ROUND], sources[watching.FIRST_ROUND :]
    assert rest, "needs more micrographs than the first round takes"
    for src in first:
        _write_slowly(src, incoming / src.name)
    while said[-1] and not NEW_IN_ROUND.search(said[-1]):
        said.append(proc.stderr.readline())  # until the first round is reported (or the end)
    for src in rest:
        _write_slowly(src, incoming / src.name)
        time.sleep(1.0)
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr
    text = "".join(said) + stdout + stderr
    rounds = [int(n) for n in NEW_IN_ROUND.findall(text)]
    assert rounds[0] == len(first), text  # the first round waited for the survey's number
    assert len(rounds) >= 2 and sum(rounds) == len(sources), text  # each processed once
    assert "stopped watching" in text and "skipped " not in text
    return text


def test_run_watch_processes_each_arrival_once_as_a_batch_would(run_sim, tmp_path):
    sources = sorted((run_sim / "Micrographs").glob("*.mrc"))
    _watch("run", OPTIONS, sources, tmp_path / "incoming", tmp_path / "watch")
    batch = tmp_path / "batch"
    res = run_cli("run", tmp_path / "incoming", *OPTIONS, "-o", batch)
    assert res.returncode == 0, res.stderr
    assert_same_outputs(batch, tmp_path / "watch")
    # watching again continues where the first stopped: nothing is redone
    res = run_cli("run", tmp_path / "incoming", *OPTIONS, "-o", tmp_path / "watch", "--watch",
                  "--watch-poll", "0.2", "--watch-idle", "0.02")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert NEW_IN_ROUND.findall(res.stderr) == ["0"], res.stderr
    assert_same_outputs(batch, tmp_path / "watch")


class FakeFolder:
    """Signatures a test sets by hand, in place of :func:`watching.signatures`."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, int]] = {}

    def __call__(self, spec) -> dict:
        return dict(self.files)


def test_arrivals_wait_for_a_file_to_settle_and_retake_it_when_it_changes(monkeypatch):
    folder = FakeFolder()
    monkeypatch.setattr(watching, "signatures", folder)
    arrivals = watching.Arrivals("incoming")
    folder.files["a.mrc"] = (100, 1)
    assert not arrivals.look()  # seen once: may still be growing
    folder.files["a.mrc"] = (200, 2)
    assert not arrivals.look()  # grew
    assert arrivals.look() and set(arrivals.taken) == {"a.mrc"}  # unchanged: taken
    assert not arrivals.look()  # nothing new
    folder.files["a.mrc"] = (300, 3)  # rewritten (e.g. it was incomplete and skipped)
    assert not arrivals.look() and not arrivals.taken
    assert arrivals.look() and arrivals.taken == {"a.mrc": (300, 3)}
    folder.files["empty.mrc"] = (0, 4)
    arrivals.look()
    assert not arrivals.look() and "empty.mrc" not in arrivals.taken  # empty: never taken


def test_watch_waits_for_the_first_round_and_stops_when_idle(monkeypatch):
    folder = FakeFolder()
    monkeypatch.setattr(watching, "signatures", folder)
    now = [0.0]
    arrivals = iter(range(watching.FIRST_ROUND + 1))
    rounds: list[set] = []

    def sleep(s: float) -> None:
        now[0] += s
        i = next(arrivals, None)  # one new micrograph a second, then none
        if i is not None:
            folder.files[f"m{i}.mrc"] = (10, i)

    def round_(paths: set) -> None:
        rounds.append(paths)
        if len(rounds) == 1:
            raise InputError(None, "nothing usable yet")  # said; watching goes on

    said: list[str] = []
    n = watching.watch("in", round_, 1.0, 10.0, said.append, lambda: now[0], sleep)
    assert n == len(rounds) == 2
    assert len(rounds[0]) == watching.FIRST_ROUND  # the first round waited for the survey
    assert len(rounds[1]) == watching.FIRST_ROUND + 1
    assert any("nothing usable yet" in line for line in said)
    assert now[0] >= 10 and "stopped watching after 2 round(s)" in said[-1]


@pytest.mark.parametrize("quiet", [watching.SETTLE_POLLS])
def test_a_quiet_folder_starts_the_first_round_with_fewer(monkeypatch, quiet):
    folder = FakeFolder()
    monkeypatch.setattr(watching, "signatures", folder)
    folder.files["only.mrc"] = (10, 1)
    now = [0.0]
    rounds: list[set] = []

    def sleep(s: float) -> None:
        now[0] += s

    watching.watch("in", rounds.append, 1.0, 2.0 + quiet, lambda line: None, lambda: now[0], sleep)
    assert rounds == [{"only.mrc"}]
