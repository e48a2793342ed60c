"""``cryosift relion-external`` in a mock RELION project folder built here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import DIAMETER_A, relion_project, run_cli
from cryosift.cli.relion_external import (
    NODE_TYPES,
    after_job_folder,
    parse_arguments,
    pipeline_version,
    relion_version,
    star_version,
)
from cryosift.errors import InputError
from cryosift.io.particles import read_particles
from cryosift.io.star import read_star_blocks

JOB = "External/job005/"


def make_project(sim: Path, root: Path, version: int) -> Path:
    return relion_project(sim, root, version)


def external(project: Path, *args: str):
    return run_cli("relion-external", *args, cwd=project)


def nodes(project: Path, job: str) -> dict[str, str]:
    """The job's output nodes by name: RELION 4/5's labels (3.1's integer types checked to
    go with them)."""
    table = read_star_blocks(project / job / "RELION_OUTPUT_NODES.star")["output_nodes"]
    ints = {v: k for k, v in NODE_TYPES[3].items()}
    for label, code in zip(table.rlnPipeLineNodeTypeLabel, table.rlnPipeLineNodeType, strict=True):
        assert label in (NODE_TYPES[4][ints[code]], NODE_TYPES[5][ints[code]])
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
    from cryosift.extract.run import ctf_by_micrograph, find_with_diameter
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
    assert parse_arguments(["--relion_version", "3.1"]) == {"relion_version": "3.1"}
    assert relion_version({"relion_version": "3.1"}, tmp_path) == (3, "--relion_version")
    with pytest.raises(InputError, match=r"3\.1, 4 or 5"):
        relion_version({"relion_version": "2"}, tmp_path)


def test_strict_clean_parameter_reaches_the_run():
    from cryosift.cli.relion_external import _run_config

    args = parse_arguments(["--diameter_A", "150", "--strict_clean", "yes"])
    assert _run_config(args, 100.0, 1.5, "radial").strict_clean is True
    assert _run_config({"diameter_A": "150"}, 100.0, 1.5, "radial").strict_clean is False
    with pytest.raises(InputError, match="expected yes or no"):
        _run_config({"strict_clean": "maybe"}, 100.0, 1.5, "radial")


def test_keep_dark_areas_parameter_reaches_the_picker():
    from cryosift.cli.relion_external import _run_config
    from cryosift.picking.pick import DARK_Z
    from cryosift.pipeline.run import pick_job

    args = parse_arguments(["--diameter_A", "150", "--keep_dark_areas", "yes"])
    cfg = _run_config(args, 100.0, 1.5, "radial")
    assert cfg.keep_dark_areas is True and pick_job(cfg).dark_z is None
    default = _run_config({"diameter_A": "150"}, 100.0, 1.5, "radial")
    assert pick_job(default).dark_z == DARK_Z
    # recorded only when set: a run started before the option existed resumes unchanged
    assert "keep_dark_areas" not in default.describe() and cfg.describe()["keep_dark_areas"]


@pytest.mark.parametrize(
    ("pipeline", "want"),
    [
        ("data_pipeline_nodes\nloop_\n_rlnPipeLineNodeName #1\n_rlnPipeLineNodeType #2\n", 3),
        ("# version 30001\ndata_pipeline_nodes\nloop_\n_rlnPipeLineNodeTypeLabel #2\n", 4),
        ("# version 50001\ndata_pipeline_processes\nloop_\n_rlnPipeLineProcessTypeLabel\n", 5),
        ("data_pipeline_general\n_rlnPipeLineJobCounter 1\n", None),
    ],
)
def test_version_from_the_project_pipeline(tmp_path, pipeline, want):
    """The project's pipeline decides before the input STAR's version line; without either,
    RELION 5."""
    (tmp_path / "default_pipeline.star").write_text(pipeline)
    star = tmp_path / "in.star"
    star.write_text("\n# version 30001\ndata_\n")
    assert pipeline_version(tmp_path) == want
    version, why = relion_version({"in_mics": str(star)}, tmp_path)
    assert (version, why.split()[0]) == ((want, "default_pipeline.star") if want else (4, "the"))
    assert relion_version({}, tmp_path / "elsewhere")[0] == 5


def test_relion31_coordinate_names():
    """RELION 3.1 keeps what follows the job folder (``decomposePipelineFileName``)."""
    assert after_job_folder("MotionCorr/job002/Movies/a/mic.mrc") == "Movies/a/mic.mrc"
    assert after_job_folder("Micrographs/mic.mrc") == "Micrographs/mic.mrc"
