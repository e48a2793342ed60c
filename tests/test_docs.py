"""The user's guide cannot go stale: every command of docs/getting-started.md runs, in order,
on the simulated data the page itself makes, and gives what the page says it gives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDE = DOCS / "getting-started.md"
#: The cryoSPARC export the guide cleans (made from the guide's own run, see ``_cryosparc_export``).
EXPORT = Path("J20/J20_particles_exported.cs")


def guide_commands() -> list[str]:
    """The ``bash`` blocks of the guide, in order (``console`` and ``text`` blocks are shown,
    not run)."""
    return re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.S)


def _cryosparc_export(project: Path, star: Path) -> None:
    """What a cryoSPARC export of the guide's particles looks like: their stacks under
    ``J20/extract/`` and a ``.cs`` table (cryoSPARC's field names) naming them relative to the
    project, with the CTF."""
    from cryosift.io.particles import read_particles

    pset = read_particles(star)
    extract = project / "J20" / "extract"
    extract.mkdir(parents=True)
    names = []
    for st in pset.stacks:
        target = extract / (st.path.stem + ".mrc")
        target.write_bytes(st.path.read_bytes())
        names.append(f"J20/extract/{target.name}".encode())
    n = len(pset)
    rec = np.zeros(
        n,
        dtype=[("uid", "<u8"), ("blob/path", "S64"), ("blob/idx", "<u4"), ("blob/psize_A", "<f4"),
               ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"),
               ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4")],
    )  # fmt: skip
    rec["uid"] = np.arange(n) + 1000
    rec["blob/path"] = [names[i] for i in pset.stack_id]
    rec["blob/idx"] = pset.image_index
    rec["blob/psize_A"] = pset.angpix
    ctf = pset.ctf
    assert ctf is not None
    rec["ctf/df1_A"], rec["ctf/df2_A"] = ctf.defocus_u, ctf.defocus_v
    rec["ctf/df_angle_rad"] = np.radians(ctf.angle)
    rec["ctf/accel_kv"], rec["ctf/cs_mm"] = ctf.voltage, ctf.cs
    rec["ctf/amp_contrast"] = ctf.amplitude_contrast
    with open(project / EXPORT, "wb") as fh:
        np.save(fh, rec)
    pset.close()


@pytest.mark.skipif(sys.platform == "win32", reason="the guide's commands are bash")
def test_getting_started_runs_as_written(tmp_path):
    blocks = guide_commands()
    assert len(blocks) >= 4 and any("cryosift run" in b for b in blocks)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for block in blocks:
        if str(EXPORT) in block and not (tmp_path / EXPORT).exists():
            _cryosparc_export(tmp_path, tmp_path / "Cryosift/job010/particles.star")
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        assert res.returncode == 0, f"{block}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        outputs.append(res.stdout + res.stderr)
    # what the page promises
    run = tmp_path / "Cryosift/job010"
    for name in ("inliers.star", "outliers.star", "scores.csv", "report.html", "run.json"):
        assert (run / name).stat().st_size > 0, name
    reruns = [o for b, o in zip(blocks, outputs, strict=True) if "Cryosift/job010" in b][1:]
    assert reruns and re.search(r"micrographs\s*│\s*4\s*│\s*4 resumed", reruns[0])
    assert (tmp_path / "Cryosift/from_folder/inliers.star").exists()
    kept = np.load(tmp_path / "Cryosift/clean_J20/inliers.cs")
    export = np.load(tmp_path / EXPORT)
    assert 0 < len(kept) <= len(export) and set(kept["uid"]) <= set(export["uid"])
    # the terminal output shown on the page is the one the run prints
    shown = re.search(r"```text\n(.*?)```", GUIDE.read_text(), flags=re.S).group(1)
    for line in ("micrographs", "picks", "particles extracted", "inlier"):
        assert line in shown and line in outputs[1]


def test_method_pages_stay_short_and_link_their_records():
    """Method pages say what and why in about 200 lines; the experiment records they link to
    live beside the benchmarks and exist."""
    root = DOCS.parent
    for page in ("picking.md", "outliers.md", "classify.md", "simulation.md"):
        text = (DOCS / page).read_text()
        assert len(text.splitlines()) <= 220, page
        for target in re.findall(r"\]\(benchmarks/([\w.]+\.md)", text):
            assert (root / "benchmarks" / target).exists(), (page, target)
