"""``cryosift run``: outputs, resume, interruption, process pool and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import (
    BAD_MICROGRAPHS,
    DIAMETER_A,
    assert_cli_rejects,
    assert_same_outputs,
    recorded_progress,
    run_args,
    run_cli,
    shared_path,
)
from cryosift.io.particles import read_particles
from cryosift.io.star import read_star_blocks


def test_run_writes_every_output(reference_run, run_sim):
    out = reference_run
    for name in (
        "autopick.star",
        "particles.star",
        "inliers.star",
        "outliers.star",
        "scores.csv",
        "pick_summary.csv",
        "metrics.csv",
        "report.html",
        "run.json",
    ):
        assert (out / name).is_file(), name
    mics = sorted(p.stem for p in (run_sim / "Micrographs").glob("*.mrc"))
    assert sorted(p.name for p in (out / "Coordinates").iterdir()) == [
        f"{m}_autopick.star" for m in mics
    ]
    scores = pd.read_csv(out / "scores.csv")
    particles = read_particles(out / "particles.star")
    try:
        assert len(particles) == len(scores) > 0
        assert particles.phase_flipped  # boxes were phase flipped with the simulated CTF
    finally:
        particles.close()
    inl = read_star_blocks(out / "inliers.star")["particles"]
    outl = read_star_blocks(out / "outliers.star")["particles"]
    assert len(inl) == (scores.verdict == "inlier").sum()
    assert len(outl) == (scores.verdict != "inlier").sum()
    assert set(inl.rlnImageName) | set(outl.rlnImageName) == set(scores.image_name)
    # the 2D classes of all particles, and their facts in run.json
    import json

    classes = json.loads((out / "run.json").read_text())["facts"]["classes"]
    assert classes["classes"] == min(20, len(scores) // 10)
    shares = classes["share_in_good_classes"]
    n_in = (scores.verdict == "inlier").sum()
    mixed = (shares["inliers"] * n_in + shares["removed"] * (len(scores) - n_in)) / len(scores)
    assert shares["all"] == pytest.approx(mixed, abs=1e-3)
    classified = read_star_blocks(out / "classes" / "particles.star")["particles"]
    assert len(classified) == len(scores) and classified.rlnClassNumber.min() == 1
    # the classes voted on the cleaning: each particle's class as written, which vote decided
    assert (scores["class"].to_numpy() == classified.rlnClassNumber.to_numpy()).all()
    assert set(scores.decided_by) <= {"radial", "class", "picker"}
    by_class = scores[scores.decided_by == "class"]
    assert by_class.reason.str.contains("by its class").all()
    vote = json.loads((out / "run.json").read_text())["facts"]["clean"]["class_vote"]
    assert vote["kept_by_class"] + vote["removed_by_class"] == len(by_class)
    # a radial reject kept as the picks were trusted says so, and is counted as such
    by_picker = scores[scores.decided_by == "picker"]
    assert by_picker.reason.str.startswith("kept as the picks are the upper").all()
    assert vote["kept_as_picks_trusted"] == len(by_picker)
    assert (by_picker.verdict == "inlier").all()
    assert (out / "class_vote.png").is_file()  # the classes that voted, framed by kind
    assert 'id="class-vote"' in (out / "report.html").read_text()
    # every particle keeps its micrograph and coordinates in scores.csv
    assert set(scores.micrograph) <= {str(run_sim / f"Micrographs/{m}.mrc") for m in mics}
    assert scores[["x_px", "y_px"]].notna().all().all()

    doc = json.loads((out / "run.json").read_text())
    assert doc["complete"] and doc["parameters"]["diameter"] == pytest.approx(44.0, abs=0.1)
    assert doc["counts"]["particles"] == len(scores)
    assert doc["counts"]["verdict_inlier"] == (scores.verdict == "inlier").sum()
    assert {"torch", "numpy", "cryosift"} <= set(doc["versions"])
    assert doc["timings_s"]["pick + extract"] > 0

    # what the picker took for a particle: the survey's classes, in a picture and the report
    adapt = doc["facts"]["adaptation"]
    assert adapt["classes"]["classes"] >= 2 and len(adapt["classes"]["verdict"]) >= 2
    assert adapt["default"]
    assert (out / "survey_classes.png").is_file()
    assert 'id="survey-classes"' in (out / "report.html").read_text()
    ranker = doc["facts"]["ranker"]
    assert ranker is None or not isinstance(ranker.get("templates"), list)  # named, not listed

    metrics = pd.read_csv(out / "metrics.csv").set_index("set")
    assert list(metrics.index) == ["picks", "extracted particles", "inliers (cleaned)"]
    truth = sum(
        len(read_star_blocks(f)["coordinates"]) for f in (run_sim / "Coordinates").iterdir()
    )
    assert (metrics.truth == truth).all()
    assert metrics.loc["inliers (cleaned)", "picks"] == (scores.verdict == "inlier").sum()
    # the picker finds particles on these micrographs; far better than chance
    assert metrics.loc["picks", "f1"] > 0.5


def test_rerun_resumes_without_redoing_micrographs(reference_run, run_sim, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "Done").iterdir()}
    res = run_cli(*run_args(run_sim, out, "--jobs", "1", "--no-report"))
    assert res.returncode == 0, res.stderr
    summary = pd.read_csv(out / "pick_summary.csv")
    assert (summary.status == "resumed").all()
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "Done").iterdir()}
    assert_same_outputs(reference_run, out)
    # other settings in the same folder: refused, nothing changed
    res = run_cli(*run_args(run_sim, out, "--jobs", "1", "--box-px", "96"))
    assert res.returncode == 2 and "other settings (box" in res.stderr
    assert "--overwrite" in res.stderr
    # --strict-threshold only changes the cleaning, which every run redoes: it resumes
    res = run_cli(*run_args(run_sim, out, "--jobs", "1", "--strict-threshold", "--no-report"))
    assert res.returncode == 0, res.stderr
    assert (pd.read_csv(out / "pick_summary.csv").status == "resumed").all()
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["strict_clean"] is True
    assert run["facts"]["clean"]["separability"]["noise_pass"] == 0.1


def test_rerun_with_more_micrographs_picks_only_the_new_ones(run_sim, tmp_path):
    """Also: every name written in a STAR file is relative to ``--project-dir`` (files
    outside it by absolute path), as RELION reads them."""
    out = tmp_path / "run"
    first = run_cli("run", run_sim / "Micrographs/mic_00[12].mrc", "--diameter-A", DIAMETER_A,
                    "-o", out, "--jobs", "1", "--project-dir", tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    said = " ".join(first.stderr.split())
    assert re.search(r"adaptation: \d+ candidates on 2 micrographs .*; ranker from \d+", said)
    res = run_cli("run", run_sim / "Micrographs/mic_00[123].mrc", "--diameter-A", DIAMETER_A,
                  "-o", out, "--jobs", "1", "--project-dir", tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    particles = read_star_blocks(out / "particles.star")["particles"]
    assert particles.rlnImageName.str.fullmatch(r"\d{6}@run/Particles/mic_00[123]\.mrcs").all()
    assert set(particles.rlnMicrographName) <= {
        str(run_sim / f"Micrographs/mic_00{i}.mrc") for i in (1, 2, 3)
    }
    listing = read_star_blocks(out / "autopick.star")["coordinate_files"]
    assert listing.rlnMicrographCoordinates.str.startswith("run/Coordinates/").all()
    inliers = read_star_blocks(out / "inliers.star")["particles"]
    assert inliers.rlnImageName.str.contains("@run/Particles/").all()
    summary = pd.read_csv(out / "pick_summary.csv").set_index("key")
    assert summary.status.to_dict() == {
        "mic_001": "resumed",
        "mic_002": "resumed",
        "mic_003": "picked",
    }
    scores = pd.read_csv(out / "scores.csv")
    assert scores.micrograph.map(lambda m: Path(m).stem).nunique() <= 3
    assert len(scores) == len(read_star_blocks(out / "particles.star")["particles"])


def test_process_pool_gives_the_same_outputs(reference_run, run_sim, tmp_path):
    out = tmp_path / "pool"
    res = run_cli(*run_args(run_sim, out, "--jobs", "2", "--no-report"))
    assert res.returncode == 0, res.stderr
    assert_same_outputs(reference_run, out)


def _default_sigint() -> None:
    # a test suite started in the background (``cmd &``) hands its children SIGINT ignored,
    # and Python then keeps ignoring it: give the run Ctrl-C as a terminal would
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cryosift", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=_default_sigint,
    )


def _wait_for_done(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if (out / "Done").is_dir() and any((out / "Done").glob("*.json")):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no micrograph finished in time")


def _no_temporaries(out: Path) -> None:
    assert not list(out.rglob("*.part")), list(out.rglob("*.part"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_leaves_nothing_half_written(reference_run, run_sim, tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(run_args(run_sim, out, "--jobs", "1", "--no-report"), tmp_path)
    _wait_for_done(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "resume" in err.strip().splitlines()[-1]
        _no_temporaries(out)
    else:
        assert proc.returncode == -signal.SIGKILL
    done = {p.stem for p in (out / "Done").glob("*.json")}
    assert 1 <= len(done) < 5
    assert not (out / "run.json").exists()  # a run.json is only written by a finished run
    # every record names files that exist and are whole
    for key in done:
        record = json.loads((out / "Done" / f"{key}.json").read_text())
        assert all((out / f).is_file() for f in record["files"])
    res = run_cli(*run_args(run_sim, out, "--jobs", "1", "--no-report"))
    assert res.returncode == 0, res.stderr
    _no_temporaries(out)
    summary = pd.read_csv(out / "pick_summary.csv").set_index("key")
    assert set(summary.index[summary.status == "resumed"]) == done
    assert_same_outputs(reference_run, out)


@pytest.mark.parametrize(("name", "words"), BAD_MICROGRAPHS)
def test_run_rejects_bad_micrographs(tmp_path, name, words):
    out = tmp_path / "out"
    res = run_cli("run", shared_path("bad_inputs", name), "--diameter-px", "20", "-o", out)
    assert_cli_rejects(res, name, words, out)


def test_run_rejects_bad_truth_and_missing_inputs(run_sim, tmp_path):
    out = tmp_path / "out"
    mics = run_sim / "micrographs_ctf.star"
    res = run_cli("run", mics, "--diameter-A", DIAMETER_A, "--truth", tmp_path / "nope", "-o", out)
    assert res.returncode == 2 and "nope" in res.stderr and len(res.stderr.splitlines()) == 1
    bad = shared_path("bad_inputs", "coords_bad.csv")
    res = run_cli("run", mics, "--diameter-A", DIAMETER_A, "--truth", bad, "-o", out)
    assert_cli_rejects(res, "coords_bad.csv", "", out)
    res = run_cli("run", tmp_path / "missing.mrc", "--diameter-px", "20", "-o", out)
    assert_cli_rejects(res, "missing.mrc", "", out)
    damaged = tmp_path / "model"
    damaged.mkdir()
    (damaged / "model.pt").write_bytes(b"not a model")
    res = run_cli("run", mics, "--diameter-A", DIAMETER_A, "--model", damaged, "-o", out)
    assert_cli_rejects(res, "model.pt", "not a readable picker model", out)


def test_run_with_no_particle_at_all_says_so(run_sim, tmp_path):
    """A threshold no pick passes: one line, exit 2, no particle files; the (empty)
    coordinate files stay, as they are the true result of picking."""
    out = tmp_path / "out"
    mic = run_sim / "Micrographs" / "mic_001.mrc"
    res = run_cli("run", mic, "--diameter-A", DIAMETER_A, "--threshold", "1", "-o", out)
    assert res.returncode == 2 and "zero particles" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (out / "particles.star").exists() and not (out / "report.html").exists()
    assert (out / "Coordinates" / "mic_001_autopick.star").is_file()


def test_sigterm_is_handled_like_ctrl_c(run_sim, tmp_path):
    out = tmp_path / "run"
    proc = _start(run_args(run_sim, out, "--jobs", "1", "--no-report"), tmp_path)
    _wait_for_done(out, proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    _no_temporaries(out)


def test_an_interrupt_that_was_swallowed_still_stops_the_run(run_sim, tmp_path):
    """Python ignores a KeyboardInterrupt raised inside a finaliser (``__del__``); the
    handler also records the request, and the run stops at the next micrograph as after
    Ctrl-C, keeping what is done for a resume."""
    from cryosift.cli.run import _Interrupt, _run_with_progress
    from cryosift.extract.run import find_with_diameter
    from cryosift.pipeline.run import RunConfig

    interrupt = _Interrupt()
    with pytest.raises(KeyboardInterrupt):
        interrupt(signal.SIGINT, None)
    assert interrupt.requested
    spec = run_sim / "micrographs_ctf.star"
    mics, angpix, diameter = find_with_diameter(spec, float(DIAMETER_A), None, None)
    cfg = RunConfig(diameter=diameter, box=88, size=88, angpix=angpix, classes=0)
    with pytest.raises(KeyboardInterrupt):
        _run_with_progress(mics, cfg, tmp_path / "run", interrupt, report=False)
    assert not (tmp_path / "run" / "run.json").exists()


def test_the_classes_of_a_sample_reach_every_particle(reference_run, monkeypatch, tmp_path):
    """Beyond its classification limit the run classifies a sample and the other particles
    join it: every particle is written with a class, angle and origin, and its verdict's
    class number is the one the classes' files give it (classes numbered by all members)."""
    import numpy as np

    from cryosift.classify import run as classify_run
    from cryosift.pipeline import run as pipeline

    params = json.loads((reference_run / "run.json").read_text())["parameters"]
    cfg = pipeline.RunConfig(**params)
    pset = read_particles(reference_run / "particles.star")
    limit = len(pset) // 2
    monkeypatch.setattr(classify_run, "MAX_CLASSIFIED", limit)
    result = pipeline.clean_particles(pset, pipeline.clean_config(cfg))
    tasks, progress = recorded_progress()
    found = pipeline._classify_stage(pset, result, cfg, "cpu", {}, None, progress)
    for name in ("2D classes", "joining the classes"):  # each long step has its bar
        assert tasks[name][0] == sum(tasks[name][1:]) > 0, name
    assert found is not None and len(found.rows) == limit < found.total == len(pset)
    assert len(found.result.labels) == len(pset) == found.result.counts.sum()
    run = pipeline.RunResult(pd.DataFrame(), result.table, None)
    pipeline._write_classes(run, found, pset, tmp_path, "")
    assert run.facts["classes"]["classified"] == limit
    from cryosift.report import html

    section = html.render({"classes": html._classes(run)}, "classes.html.j2")  # so says the report
    assert f"sample of {limit:,} of the {len(pset):,} particles" in " ".join(section.split())
    parts = read_star_blocks(tmp_path / "classes" / "particles.star")["particles"]
    assert len(parts) == len(pset) and parts.rlnAnglePsi.notna().all()
    np.testing.assert_array_equal(parts.rlnClassNumber.to_numpy(), result.table["class"])
    model = read_star_blocks(tmp_path / "classes" / "model.star")["model_classes"]
    assert model.rlnCryosiftClassSize.is_monotonic_decreasing
    assert model.rlnCryosiftClassSize.sum() == len(pset)


def test_picks_left_out_on_dark_areas_are_counted(tmp_path):
    """One micrograph with a carbon film: the run's summary counts the picks the darkness
    filter left out, at least as many as --keep-dark-areas adds, and none with it; the
    end-of-run table says so."""
    from rich.console import Console

    from conftest import simulated_picking_micrographs
    from cryosift.cli.run import summary_table
    from cryosift.picking.adapt import prepare_picking
    from cryosift.picking.model import cached_model
    from cryosift.picking.run import PickJob
    from cryosift.pipeline.run import (
        RunConfig,
        RunResult,
        extract_settings,
        pick_job,
        write_micrograph,
    )
    from cryosift.pipeline.tasks import MicrographTask, process_micrograph

    _, d, paths = simulated_picking_micrographs(tmp_path, carbon=True)
    model = cached_model(None, "cpu")
    cluster = prepare_picking(model, {"m0": paths[0]}, PickJob(d, -1), learn=False)[2]
    found = {}
    for keep in (False, True):
        cfg = RunConfig(diameter=d, box=2 * round(d), size=64, threshold=0.0, keep_dark_areas=keep)
        how = extract_settings(cfg, {}, phase_flip=False)
        task = MicrographTask("m0", "m0.mrc", paths[0], pick_job(cfg, cluster), how)
        found[keep] = process_micrograph(task)
    default, kept = found[False], found[True]
    assert kept.on_dark_areas == 0
    assert default.on_dark_areas >= len(kept.picks) - len(default.picks) > 0
    out = tmp_path / "out"
    record = write_micrograph(out, task, default)
    assert record["summary"]["on_dark_areas"] == default.on_dark_areas
    summary = pd.DataFrame([{**record["summary"], "status": "picked", "off_edge": 0}])
    run = RunResult(summary, pd.DataFrame({"verdict": []}), None, {})
    console = Console(width=120, record=True)
    console.print(summary_table(run, out))
    row = re.search(r"left out on dark areas\W+([\d,]+)", console.export_text())
    assert row and int(row.group(1).replace(",", "")) == default.on_dark_areas


def test_records_from_before_the_dark_count_read_as_unknown(tmp_path):
    """Records written before the dark-area count resume beside new ones: the summary keeps
    the column (NaN where unknown, so pick_summary.csv says so), the end-of-run table and the
    report sum what is known, and without any known count they show no row."""
    from rich.console import Console

    from cryosift.cli.run import summary_table
    from cryosift.pipeline.run import RunConfig, RunResult, _write_lists, extract_settings
    from cryosift.report.html import _dark_left_out

    old = {"micrograph": "a.mrc", "key": "a", "candidates": 9, "picks": 5, "extracted": 0}
    old |= {"off_edge": 0, "seconds": 1.0, "status": "resumed"}
    new = {**old, "micrograph": "b.mrc", "key": "b", "on_dark_areas": 3, "status": "picked"}
    mics = pd.DataFrame({"name": ["a.mrc", "b.mrc"], "key": ["a", "b"]})
    how = extract_settings(RunConfig(diameter=20.0, box=40, size=64), {}, phase_flip=False)
    for records, dark in (([old], 0), ([old, new], 3)):
        summary = _write_lists(tmp_path, mics, [{"summary": r} for r in records], how, "")[0]
        stored = pd.read_csv(tmp_path / "pick_summary.csv")
        assert pd.isna(stored.on_dark_areas[0]) and pd.isna(summary.on_dark_areas[0])
        assert _dark_left_out(summary) == dark
        run = RunResult(summary, pd.DataFrame({"verdict": []}), None, {})
        console = Console(width=120, record=True)
        console.print(summary_table(run, tmp_path))
        assert ("left out on dark areas" in console.export_text()) == (dark > 0)
