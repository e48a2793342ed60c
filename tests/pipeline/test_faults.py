"""A run-level fault corpus: one broken micrograph of each kind among good ones is skipped,
named (one line each, ``skipped.csv``, ``run.json``, the report) and the rest finish, with
``run`` (local pool and Dask), ``pick`` and ``extract``; ``--strict`` stops at the first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import DIAMETER_A, FAULTS, fault_corpus, run_cli
from cryosift.errors import InputError, SkipLog
from cryosift.executors import run_tasks
from cryosift.io.coords import read_coords

GOOD = ["mic_001", "mic_002", "mic_003"]
#: Usable, with nothing to pick: goes through every stage with zero picks.
EMPTY = "ramp"


@pytest.fixture(scope="module")
def corpus(run_sim, tmp_path_factory) -> Path:
    """Three good simulated micrographs (the last a PNG), the broken ones of FAULTS, and the
    true coordinates of the good ones alone."""
    root = tmp_path_factory.mktemp("faults")
    good = [run_sim / "Micrographs" / f"{k}.mrc" for k in GOOD]
    fault_corpus(good, root / "mics")
    (root / "truth").mkdir()
    for k in GOOD:
        for f in (run_sim / "Coordinates").glob(f"{k}*"):
            shutil.copy(f, root / "truth" / f.name)
    return root


def _mics(corpus: Path) -> list[Path]:
    return sorted((corpus / "mics").iterdir())


def assert_skipped_and_named(res, out: Path, command: str) -> None:
    """Exit 0; each broken micrograph in one stderr line with its reason, and in
    ``skipped.csv``; no traceback."""
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith(f"cryosift {command}: skip")]
    for name, words in FAULTS.items():
        mine = [ln for ln in lines if name in ln]
        assert len(mine) == 1 and words in mine[0], (name, lines)
    table = pd.read_csv(out / "skipped.csv")
    assert sorted(Path(m).name for m in table.micrograph) == sorted(FAULTS)
    for name, words in FAULTS.items():
        assert words in table.reason[table.micrograph.str.endswith(name)].iloc[0]


def test_run_skips_each_broken_micrograph_and_finishes_the_rest(corpus, tmp_path):
    out = tmp_path / "run"
    res = run_cli(
        "run", *_mics(corpus), "--diameter-A", DIAMETER_A, "--truth", corpus / "truth",
        "-j", "2", "-o", out,
    )  # fmt: skip
    assert_skipped_and_named(res, out, "run")
    assert sorted(p.name for p in (out / "Coordinates").iterdir()) == [
        f"{k}_autopick.star" for k in sorted([*GOOD, EMPTY])
    ]
    summary = pd.read_csv(out / "pick_summary.csv").set_index("key")
    assert summary.picks[EMPTY] == 0 and (summary.picks[GOOD] > 0).all()
    assert len(read_coords(out / "Coordinates" / f"{EMPTY}_autopick.star", "relion")) == 0
    doc = json.loads((out / "run.json").read_text())
    assert doc["counts"]["micrographs"] == 4 and doc["counts"]["micrographs_skipped"] == 7
    assert sorted(Path(s["micrograph"]).name for s in doc["skipped"]) == sorted(FAULTS)
    assert doc["counts"]["particles"] > 0 and doc["metrics"][0]["f1"] > 0.5
    assert doc["facts"]["classes"]["classes"] >= 2  # the 2D classes ran over what was left
    report = (out / "report.html").read_text()
    assert 'id="skipped"' in report and all(name in report for name in FAULTS)
    assert f"{EMPTY}: 0 picks, 0 inliers" in report  # its overlay, with no pick on it
    # a rerun tries the skipped ones again and resumes the rest
    again = run_cli(
        "run", *_mics(corpus), "--diameter-A", DIAMETER_A, "--truth", corpus / "truth",
        "-j", "2", "-o", out, "--no-report",
    )  # fmt: skip
    assert_skipped_and_named(again, out, "run")
    summary = pd.read_csv(out / "pick_summary.csv")
    assert set(summary.status) == {"resumed"} and len(summary) == 4


def test_run_on_dask_skips_the_same(corpus, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "dask"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    ) as cluster:  # fmt: skip
        res = run_cli(
            "run", *_mics(corpus), "--diameter-A", DIAMETER_A, "--classes", "0", "--no-report",
            "--dask-scheduler", cluster.scheduler_address, "-o", out,
        )  # fmt: skip
    assert_skipped_and_named(res, out, "run")
    assert len(pd.read_csv(out / "pick_summary.csv")) == 4


def test_pick_skips_and_strict_stops(corpus, tmp_path):
    out = tmp_path / "pick"
    res = run_cli("pick", *_mics(corpus), "--diameter-A", DIAMETER_A, "-j", "1", "-o", out)
    assert_skipped_and_named(res, out, "pick")
    summary = pd.read_csv(out / "pick_summary.csv")
    assert sorted(summary.micrograph) == sorted([*GOOD, EMPTY])
    assert (summary.set_index("micrograph").picks[GOOD] > 0).all()
    strict = tmp_path / "strict"
    res = run_cli("pick", *_mics(corpus), "--diameter-A", DIAMETER_A, "--strict", "-o", strict)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "movie.mrc" in res.stderr and "holds 3 images" in res.stderr  # the first found
    assert not strict.exists() or not any(strict.rglob("*.star"))


def test_extract_skips_and_leaves_out_their_picks(corpus, tmp_path):
    """Every micrograph but the tiny one has picks (a copy of mic_001's), so the blank and
    NaN ones are read, and skipped; picks outside a micrograph skip it too."""
    coords = tmp_path / "coords"
    coords.mkdir()
    first = next((corpus / "truth").glob("mic_001*"))
    for mic in _mics(corpus):
        if mic.name != "tiny.mrc":
            shutil.copy(first, coords / f"{mic.stem}{first.suffix}")
    out = tmp_path / "extract"
    res = run_cli("extract", *_mics(corpus), coords, "--box-px", "88", "-o", out)
    assert_skipped_and_named(res, out, "extract")
    summary = pd.read_csv(out / "extract_summary.csv")
    assert sorted(Path(m).stem for m in summary.micrograph) == sorted([*GOOD, EMPTY])
    assert (summary.extracted > 0).all()
    shutil.copy(first, coords / "tiny.star")
    res = run_cli("extract", *_mics(corpus), coords, "--box-px", "88", "-o", tmp_path / "o2")
    assert res.returncode == 0 and "tiny.mrc: " in res.stderr and "picks outside" in res.stderr


def test_every_micrograph_broken_is_one_error(corpus, tmp_path):
    out = tmp_path / "none"
    bad = [corpus / "mics" / name for name in FAULTS]
    res = run_cli("pick", *bad, "--diameter-A", DIAMETER_A, "-o", out)
    assert res.returncode == 2 and "none of the 7 micrograph(s)" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def _fails_on_odd(n: int) -> int:
    if n % 2:
        raise InputError(f"mic_{n}.mrc", "broken")
    return n * 10


@pytest.mark.parametrize("jobs", [1, 2])
def test_tasks_that_fail_on_input_are_handed_over_and_the_rest_go_on(jobs):
    """In this process and in a spawned pool: failures reach ``on_error`` whole (the error
    pickles), the others' results come back."""
    failed: dict[int, InputError] = {}
    got = dict(run_tasks(_fails_on_odd, range(6), jobs, None, failed.__setitem__))
    assert got == {0: 0, 2: 20, 4: 40}
    assert sorted(failed) == [1, 3, 5]
    assert failed[3].path == "mic_3.mrc" and failed[3].problem == "broken"
    with pytest.raises(InputError, match=r"mic_\d\.mrc: broken"):  # whichever fails first
        dict(run_tasks(_fails_on_odd, range(6), jobs))


def test_skip_log_names_each_once_and_strict_raises():
    lines: list[str] = []
    log = SkipLog(warn=lines.append)
    log.skip(InputError("a.mrc", "truncated"))
    log.skip(InputError(None, "NaN pixels"), name="b.mrc")
    assert lines == ["skipped a.mrc: truncated", "skipped b.mrc: NaN pixels"]
    assert log.records() == [
        {"micrograph": "a.mrc", "reason": "truncated"},
        {"micrograph": "b.mrc", "reason": "NaN pixels"},
    ]
    assert "none of the 2 micrograph(s)" in log.none_left().message
    with pytest.raises(InputError, match=r"c\.mrc"):
        SkipLog(strict=True).skip(InputError("c.mrc", "bad"))
