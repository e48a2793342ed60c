"""cryosift checked by the real RELION (Debian's ``relion``, 3.1): its pipeliner runs our
External job and takes its outputs into its own jobs, its programs read our STAR files from
the project root, its extraction cuts the boxes ours cuts, its 2D classification runs on our
inliers. ``make test`` installs the package; without it these tests skip with the reason."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import DIAMETER_A, relion_project, run_cli
from cryosift.cli.relion_external import NODE_TYPES
from cryosift.io.coords import write_relion

pytestmark = pytest.mark.skipif(
    shutil.which("relion_pipeliner") is None,
    reason="RELION is not installed (make test installs Debian's relion; apt-get failed here)",
)

EXTERNAL = "External/job001/"
MICS = "CtfFind/job003/micrographs_ctf.star"


def relion(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """One RELION program run in the project folder ``cwd``; a failure shows its output."""
    res = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{args[0]} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def add_job(project: Path, kind: str, options: dict[str, str]) -> None:
    text = "".join(f"{k} == {v};" for k, v in options.items())
    relion("relion_pipeliner", "--addJob", kind, "--addJobOptions", text, cwd=project)


def run_jobs(project: Path, *jobs: str) -> None:
    relion("relion_pipeliner", "--RunJobs", " ".join(jobs), "--sec_wait_after", "0", cwd=project)
    for job in jobs:
        assert (project / job / "RELION_JOB_EXIT_SUCCESS").exists(), project / job / "run.err"


def pipeline_nodes(project: Path) -> dict[str, int]:
    nodes = starfile.read(project / "default_pipeline.star", always_dict=True)["pipeline_nodes"]
    return dict(zip(nodes.rlnPipeLineNodeName, nodes.rlnPipeLineNodeType, strict=True))


def count_images(star: Path) -> int:
    return len(starfile.read(star, always_dict=True)["particles"])


@pytest.fixture(scope="module")
def project(run_sim, tmp_path_factory) -> Path:
    """A RELION 3.1 project whose pipeliner ran ``cryosift relion-external`` (pick, extract,
    clean) on the simulated micrographs."""
    root = relion_project(run_sim, tmp_path_factory.mktemp("relion31"), 3)
    (root / "default_pipeline.star").write_text(
        "\ndata_pipeline_general\n\n_rlnPipeLineJobCounter 1\n\n"
    )
    script = root / "cryosift_external.sh"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cryosift relion-external "$@"\n')
    script.chmod(0o755)
    options = {
        "fn_exe": str(script),
        "in_mic": MICS,
        "param1_label": "diameter_A",
        "param1_value": DIAMETER_A,
        "nr_threads": "1",
    }
    add_job(root, "External", options)
    run_jobs(root, EXTERNAL)
    return root


def test_pipeliner_takes_our_outputs_with_relions_own_node_types(project):
    """Our nodes carry the types RELION gives its own AutoPick and Extract outputs, and a
    RELION Extract job runs on our coordinates (RELION 3.1's coords_suffix convention)."""
    add_job(project, "AutoPick", {"fn_input_autopick": MICS, "do_log": "Yes", "nr_mpi": "1"})
    coords = f"{EXTERNAL}coords_suffix_autopick.star"
    extract = {"star_mics": MICS, "coords_suffix": coords, "extract_size": "88", "nr_mpi": "1"}
    add_job(project, "Extract", extract)
    nodes = pipeline_nodes(project)
    assert nodes[coords] == nodes["AutoPick/job002/coords_suffix_autopick.star"]
    assert nodes[f"{EXTERNAL}inliers.star"] == nodes["Extract/job003/particles.star"]
    assert (nodes[coords], nodes[f"{EXTERNAL}inliers.star"]) == tuple(NODE_TYPES[3].values())
    run_jobs(project, "Extract/job003/")
    picked = sum(len(starfile.read(f)) for f in (project / EXTERNAL / "Coordinates").glob("*.star"))
    assert count_images(project / "Extract/job003/particles.star") == picked > 0


def test_relion_reads_our_particles_from_the_project_root(project):
    for name in ("particles.star", "inliers.star"):
        res = relion("relion_image_handler", "--i", f"{EXTERNAL}{name}", "--stats", cwd=project)
        lines = [ln for ln in res.stdout.splitlines() if "@" in ln and "avg=" in ln]
        assert len(lines) == count_images(project / EXTERNAL / name) > 0


def test_clean_only_job_on_relions_particles(project):
    """An External job given RELION's own extracted particles (``--in_parts``) cleans them."""
    if not (project / "Extract/job003/particles.star").exists():
        pytest.skip("needs the Extract job of the test before")
    script = project / "cryosift_external.sh"
    options = {
        "fn_exe": str(script),
        "in_part": "Extract/job003/particles.star",
        "param1_label": "diameter_A",
        "param1_value": DIAMETER_A,
    }
    add_job(project, "External", options)
    run_jobs(project, "External/job004/")
    assert pipeline_nodes(project)["External/job004/inliers.star"] == NODE_TYPES[3]["particles"]
    assert 0 < count_images(project / "External/job004/inliers.star")


def test_relion_2d_classification_runs_on_our_inliers(project):
    out = project / "Class2D/job010"
    out.mkdir(parents=True)
    relion(
        *"relion_refine --K 2 --iter 2 --tau2_fudge 2 --particle_diameter 176 --pad 1 --ctf"
        " --psi_step 15 --offset_range 4 --offset_step 2 --zero_mask --flatten_solvent"
        " --dont_combine_weights_via_disc --pool 10 --j 1".split(),
        "--i",
        f"{EXTERNAL}inliers.star",
        "--o",
        "Class2D/job010/run",
        cwd=project,
    )
    classes = mrcfile.read(out / "run_it002_classes.mrcs")
    assert classes.shape[0] == 2 and np.isfinite(classes).all() and classes.std() > 0


def _picks_with_edges(project: Path, folder: Path) -> int:
    """cryosift's picks of the External job plus picks whose boxes leave each micrograph,
    at fractional positions, as RELION 3.1 coordinate files ``folder/Micrographs/*_pick.star``
    with ``folder/coords_suffix_pick.star``; the number of picks."""
    rng = np.random.default_rng(5)
    total = 0
    for f in sorted((project / EXTERNAL / "Coordinates").glob("*_autopick.star")):
        xy = starfile.read(f)[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy()
        edge = np.array([[3.3, 250.6], [508.7, 100.2], [200.5, 2.9], [300.25, 509.8]])
        xy = np.concatenate([xy + rng.uniform(0, 1, xy.shape), edge])
        table = pd.DataFrame({"micrograph": f.stem, "x": xy[:, 0], "y": xy[:, 1]})
        table["score"], table["diameter"] = np.nan, np.nan
        out = folder / "Micrographs" / f.name.replace("_autopick.star", "_pick.star")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_relion(out, table)
        total += len(table)
    (folder / "coords_suffix_pick.star").write_text(MICS + "\n")
    return total


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The integer shift (rows, cols) that best aligns ``b`` to ``a`` (cross-correlation)."""
    cc = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
    peak = np.array(np.unravel_index(np.argmax(cc), cc.shape))
    peak[peak > a.shape[0] // 2] -= a.shape[0]
    return int(peak[0]), int(peak[1])


@pytest.mark.parametrize("flip", [False, True])
def test_relion_extraction_equals_ours(project, flip):
    """``relion_preprocess --extract`` and ``cryosift extract`` at the same fractional picks
    (boxes leaving the micrograph among them), box 64 -> 48 px, RELION's normalisation:
    every pair of boxes correlates >= 0.99 with no shift."""
    tag = "flip" if flip else "plain"
    folder = project / f"picks_{tag}"
    n = _picks_with_edges(project, folder)
    flip_args = ["--phase_flip"] if flip else []
    relion(
        *f"relion_preprocess --i {MICS} --coord_dir {folder.name}/ --coord_suffix _pick.star"
        f" --part_dir R_{tag}/ --part_star R_{tag}/particles.star --extract --extract_size 64"
        " --scale 48 --norm --bg_radius 18".split(),
        *flip_args,
        cwd=project,
    )
    args = ["-o", f"C_{tag}", "--box-px", "64", "--size", "48"] + (["--phase-flip"] if flip else [])
    res = run_cli("extract", MICS, f"{folder.name}/coords_suffix_pick.star", *args, cwd=project)
    assert res.returncode == 0, res.stderr
    theirs = starfile.read(project / f"R_{tag}/particles.star")["particles"]
    ours = starfile.read(project / f"C_{tag}/particles.star")["particles"]
    assert len(theirs) == len(ours) == n
    handler = relion(
        "relion_image_handler", "--i", f"C_{tag}/particles.star", "--stats", cwd=project
    )
    assert handler.stdout.count("avg=") == n
    key = ["rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY"]
    theirs = theirs.assign(**{c: theirs[c].round(2) for c in key[1:]})
    pairs = ours.merge(theirs, on=key, suffixes=("_ours", "_relion"))
    assert len(pairs) == n
    corr = []
    for a, b in zip(pairs.rlnImageName_ours, pairs.rlnImageName_relion, strict=True):
        x, y = (_image(project, name) for name in (a, b))
        corr.append(np.corrcoef(x.ravel(), y.ravel())[0, 1])
        assert _shift(x, y) == (0, 0)
    print(f"RELION vs cryosift extraction ({tag}): {n} boxes, correlation min "
          f"{min(corr):.6f} median {np.median(corr):.6f}")  # fmt: skip
    assert min(corr) >= 0.99


def _image(project: Path, name: str) -> np.ndarray:
    index, stack = name.split("@")
    with mrcfile.mmap(project / stack, permissive=True) as m:
        return np.asarray(m.data[int(index) - 1], dtype=np.float64)
