"""Any file name a user has: dots, spaces and several extensions in micrograph names
round-trip through ``run`` (with ``--truth``), ``extract`` and ``evaluate picks``."""

from __future__ import annotations

import shutil

import pandas as pd

from conftest import DIAMETER_A, run_cli
from cryosift.io.coords import read_coords

#: Timestamped, EMAN-style, spaced and many-dotted names, each with its run_sim source.
NAMES = {
    "May08_03.05.02.bin": "mic_001",
    "grid 2 square.3": "mic_002",
    "FoilHole_1.2_Data_3.4.5_fractions": "mic_003",
}


def test_awkward_names_round_trip(run_sim, tmp_path):
    mics, truth = tmp_path / "Micrographs", tmp_path / "truth"
    mics.mkdir()
    truth.mkdir()
    for name, source in NAMES.items():
        shutil.copy(run_sim / "Micrographs" / f"{source}.mrc", mics / f"{name}.mrc")
        shutil.copy(run_sim / "Coordinates" / f"{source}.star", truth / f"{name}.star")
    out = tmp_path / "run"
    res = run_cli("run", mics, "--diameter-A", DIAMETER_A, "--truth", truth, "--classes", "0",
                  "--no-report", "-o", out)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (out / "Coordinates").iterdir()) == sorted(
        f"{n}_autopick.star" for n in NAMES
    )
    metrics = pd.read_csv(out / "metrics.csv")
    n_true = sum(len(read_coords(f, "relion")) for f in truth.iterdir())
    assert (metrics.truth == n_true).all()  # every true particle found its micrograph
    assert metrics.f1.iloc[0] > 0.5

    res = run_cli("extract", mics, out / "Coordinates", "--box-px", "88", "-o", tmp_path / "ex")
    assert res.returncode == 0, res.stderr
    summary = pd.read_csv(tmp_path / "ex" / "extract_summary.csv")
    picks = pd.read_csv(out / "pick_summary.csv").set_index("key").picks
    assert dict(zip(summary.micrograph.map(lambda m: m.rsplit("/", 1)[-1][:-4]),
                    summary.picks, strict=True)) == picks.to_dict()  # fmt: skip

    res = run_cli("evaluate", "picks", out / "Coordinates", truth, "--diameter-px", "44",
                  "-o", tmp_path / "ev")  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(tmp_path / "ev" / "pick_metrics.csv").set_index("micrograph")
    assert sorted(table.index[:-1]) == sorted(NAMES)  # and the pooled row
    assert table.truth.sum() == 2 * n_true and table.picks.pooled == picks.sum()
