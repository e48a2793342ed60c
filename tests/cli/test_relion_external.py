"""``cryosift relion-external`` in a mock RELION project folder built here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import DIAMETER_A, run_cli
from cryosift.cli.relion_external import NODE_TYPES, parse_arguments, star_version
from cryosift.errors import InputError
from cryosift.io.particles import read_particles
from cryosift.io.star import read_star_blocks

JOB = "External/job005/"


def make_project(sim: Path, root: Path, version: int) -> Path:
    """A RELION project: micrographs under MotionCorr/job002, a CtfFind/job003 STAR naming
    them relative to the project folder, with RELION ``version``'s header line."""
    project = root / "project"
    shutil.copytree(sim / "Micrographs", project / "MotionCorr/job002/Micrographs")
    text = (sim / "micrographs_ctf.star").read_text()
    body = text.split("\n", 1)[1].replace("Micrographs/", "MotionCorr/job002/Micrographs/")
    star = project / "CtfFind/job003/micrographs_ctf.star"
    star.parent.mkdir(parents=True)
    star.write_text(f"\n# version {50001 if version == 5 else 30001}\n{body}")
    return project


def external(project: Path, *args: str):
    return run_cli("relion-external", *args, cwd=project)


def nodes(project: Path, job: str) -> dict[str, str]:
    table = read_star_blocks(project / job / "RELION_OUTPUT_NODES.star")["output_nodes"]
    return dict(zip(table.rlnPipeLineNodeName, table.rlnPipeLineNodeTypeLabel, strict=True))


def test_external_job_picks_extracts_and_cleans(run_sim, tmp_path):
    version = 5
    project = make_project(run_sim, tmp_path, version)
    res = external(
        project,
        "--o",
        JOB,
        "--in_mics",
        "CtfFind/job003/micrographs_ctf.star",
        "--j",
        "1",
        "--diameter_A",
        DIAMETER_A,
        "--pipeline_control",
        JOB,
    )
    assert res.returncode == 0, res.stderr
    job = project / JOB
    assert (job / "RELION_JOB_EXIT_SUCCESS").exists()
    assert not (job / "RELION_JOB_EXIT_FAILURE").exists()
    assert nodes(project, JOB) == {
        f"{JOB}autopick.star": NODE_TYPES[version]["coords"],
        f"{JOB}inliers.star": NODE_TYPES[version]["particles"],
    }
    # every file named inside the STAR files is found from the project folder, as RELION does
    listing = read_star_blocks(job / "autopick.star")["coordinate_files"]
    assert len(listing) == 5
    for mic, coords in zip(
        listing.rlnMicrographName, listing.rlnMicrographCoordinates, strict=True
    ):
        assert (project / mic).is_file() and (project / coords).is_file()
    inliers = read_star_blocks(job / "inliers.star")["particles"]
    assert inliers.rlnImageName.str.contains(f"@{JOB}Particles/").all()
    pset = read_particles(job / "inliers.star", datadir=project)
    try:
        assert all(str(st.path).startswith(str(project / JOB)) for st in pset.stacks)
        assert len(pset) == len(inliers) > 0
    finally:
        pset.close()
    # RELION's "continue": a rerun resumes and succeeds again
    res = external(project, "--o", JOB, "--in_mics", "CtfFind/job003/micrographs_ctf.star",
                   "--diameter_A", DIAMETER_A)  # fmt: skip
    assert res.returncode == 0 and (job / "RELION_JOB_EXIT_SUCCESS").exists(), res.stderr


def test_external_job_clean_only_and_given_coordinates(run_sim, tmp_path):
    """A RELION 4 project (``# version 30001``): RELION 4's node labels."""
    project = make_project(run_sim, tmp_path, 4)
    mics = "CtfFind/job003/micrographs_ctf.star"
    # extract at the true coordinates (no picking), then clean
    coords = project / "ManualPick/job004/Coordinates"
    shutil.copytree(run_sim / "Coordinates", coords)
    res = external(project, "--o", "External/job006", "--in_mics", mics, "--in_coords",
                   "ManualPick/job004/Coordinates", "--diameter_A", DIAMETER_A)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert nodes(project, "External/job006") == {
        "External/job006/inliers.star": NODE_TYPES[4]["particles"]
    }
    summary = pd.read_csv(project / "External/job006/pick_summary.csv")
    n_truth = sum(len(read_star_blocks(f)["coordinates"]) for f in coords.iterdir())
    assert summary.picks.sum() == n_truth  # every given pick, none picked anew
    # clean an existing particle set only
    res = external(project, "--o", "External/job007/", "--in_parts",
                   "External/job006/particles.star", "--diameter_A", DIAMETER_A,
                   "--relion_version", "5")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert nodes(project, "External/job007/") == {
        "External/job007/inliers.star": NODE_TYPES[5]["particles"]
    }
    assert (project / "External/job007/RELION_JOB_EXIT_SUCCESS").exists()


def test_external_job_abort_and_failure(run_sim, tmp_path):
    project = make_project(run_sim, tmp_path, 5)
    job = project / "External/job008"
    job.mkdir(parents=True)
    (job / "RELION_JOB_ABORT_NOW").write_text("")
    res = external(project, "--o", "External/job008/", "--in_mics",
                   "CtfFind/job003/micrographs_ctf.star", "--diameter_A", DIAMETER_A)  # fmt: skip
    assert res.returncode == 1 and "aborted" in res.stderr
    assert (job / "RELION_JOB_EXIT_ABORTED").exists()
    assert not (job / "RELION_JOB_ABORT_NOW").exists()
    assert not (job / "RELION_JOB_EXIT_SUCCESS").exists()
    assert not (job / "particles.star").exists()
    # a missing input: failure file, one line naming it
    res = external(project, "--o", "External/job009/", "--in_mics", "Nope/micrographs.star",
                   "--diameter_A", DIAMETER_A)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "Nope/micrographs.star" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert (project / "External/job009/RELION_JOB_EXIT_FAILURE").exists()


def test_external_abort_mid_run_keeps_finished_micrographs(run_sim, tmp_path):
    """The abort file is looked for after each micrograph: finished ones stay for a rerun."""
    from cryosift.extract.run import ctf_by_micrograph
    from cryosift.picking.run import find_with_diameter
    from cryosift.pipeline.run import Aborted, RunConfig, run_pipeline

    mics, angpix, d = find_with_diameter(run_sim / "micrographs_ctf.star", 88.0, None, None)
    cfg = RunConfig(diameter=round(d, 3), box=88, size=88, angpix=angpix)
    out = tmp_path / "job"
    abort = out / "RELION_JOB_ABORT_NOW"

    def stop() -> bool:
        done = list((out / "Done").glob("*.json")) if (out / "Done").exists() else []
        if len(done) >= 2:
            abort.write_text("")
        return abort.exists()

    with pytest.raises(Aborted):
        run_pipeline(
            mics, cfg, out, ctf=ctf_by_micrograph(mics, None, angpix, run_sim), should_stop=stop
        )
    assert len(list((out / "Done").glob("*.json"))) == 2
    assert not (out / "particles.star").exists()


def test_arguments_and_versions(tmp_path):
    args = parse_arguments(["--o", "External/job1/", "--diameter_A", "150", "--j", "4"])
    assert args == {"o": "External/job1/", "diameter_A": "150", "j": "4"}
    with pytest.raises(InputError, match="unknown parameter --diamter"):
        parse_arguments(["--diamter", "150"])
    with pytest.raises(InputError, match="needs a value"):
        parse_arguments(["--o"])
    f = tmp_path / "x.star"
    f.write_text("\n# version 50001\n\ndata_optics\n")
    assert star_version(f) == 5
    f.write_text("\n# version 30001\n\ndata_optics\n")
    assert star_version(f) == 4
    f.write_text("data_\n")
    assert star_version(f) is None
