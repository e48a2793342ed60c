"""Does cleaning help or harm on real picks? ``cryosift run``'s own picks, judged by the truth.

The labelled outlier benchmarks (``real_outliers.py``, ``synthetic_outliers.py``) judge boxes
cut to a recipe. A user's stack is what the picker found. Here each set of
``picking_carry.py`` (EMPIAR-10017 and harder copies, simulated fields) goes through
``cryosift run MICS --diameter-A D --angpix A --classes 0`` as a user would type it. Its
extracted particles are then cleaned twice, in one process, with the configuration ``run``
uses:

- as ``run`` does, where the ``radial`` threshold may be loosened at moderate separability;
- with the usual threshold always (``cryosift clean --strict``).

Precision, recall and F1 of the picks and of each kept set are measured against the labels,
one-to-one within half a diameter (the EMPIAR-10017 labels are incomplete, so precision is
pessimistic). The first cleaning's verdicts must equal those ``run`` wrote.

    python benchmarks/clean_on_picks.py [--only NAME ...]

Writes ``benchmarks/results/clean_on_picks.{csv,txt}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryosift.evaluate.picks import evaluate_picks
from cryosift.io.particles import read_particles
from cryosift.outliers.clean import clean_particles
from cryosift.pipeline.run import RunConfig, clean_config
from picking_carry import CRYOSIFT, DATASETS, WORK, prepare, slug
from picking_empiar10017 import RESULTS

#: The sets run by default: the shared micrographs, a binned and two noisier copies, and
#: four simulated fields (sparse, faint, crowded).
DEFAULT_SETS = (
    "EMPIAR-10017",
    "binned by 2",
    "noise 0.5 sd",
    "noise 1.0 sd",
    "simulated, demo field",
    "simulated, SNR 0.25",
    "simulated, crowded",
    "simulated, crowded, SNR 0.25",
)


def run_set(mics: list[Path], d_px: float, angpix: float, out: Path) -> float:
    """``cryosift run`` on the set; its wall time, s."""
    cmd = [str(CRYOSIFT), "run", *map(str, mics), "--diameter-A", f"{d_px * angpix:.2f}"]
    cmd += ["--angpix", str(angpix), "--classes", "0", "--no-report", "-o", str(out)]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--overwrite"], check=True, capture_output=True)
    return time.perf_counter() - t0


def clean_twice(out: Path) -> tuple[pd.DataFrame, dict]:
    """The run's particles cleaned as ``run`` does and with the usual threshold: a table of
    the two verdicts, and the first cleaning's separability facts."""
    import json

    cfg = RunConfig(**json.loads((out / "run.json").read_text())["parameters"])
    pset = read_particles(out / "particles.star")
    default = clean_particles(pset, clean_config(cfg))
    strict = clean_particles(pset, clean_config(dataclasses.replace(cfg, strict_clean=True)))
    table = pd.DataFrame(
        {"default": default.table.verdict.to_numpy(), "strict": strict.table.verdict.to_numpy()}
    )
    return table, default.stats["separability"]


def prf(picks: pd.DataFrame, truth: dict, diameter: float) -> dict:
    """Pooled precision, recall and F1 of ``picks`` (micrograph stem, x, y)."""
    by = {n: g[["x", "y"]] for n, g in picks.groupby("name")}
    r = evaluate_picks(by, truth, diameter).iloc[-1]
    names = {"P": "precision", "R": "recall", "F1": "f1"}
    return {k: round(float(r[c]), 3) for k, c in names.items()}


def measure(name: str) -> dict:
    ds = next(d for d in DATASETS if d.name == name)
    mics, truth, d_px, angpix = prepare(ds)
    out = WORK.parent / "clean_on_picks" / slug(name)
    seconds = run_set(mics, d_px, angpix, out)
    verdicts, sep = clean_twice(out)
    written = pd.read_csv(out / "scores.csv")
    same = float(np.mean(written.verdict.to_numpy() == verdicts["default"].to_numpy()))
    picks = pd.DataFrame(
        {
            "name": written.micrograph.map(lambda p: Path(p).stem),
            "x": written.x_px,
            "y": written.y_px,
        }
    )
    row = {"set": name, "particles": len(picks), "run_s": round(seconds, 1)}
    for label, keep in (
        ("picks", np.ones(len(picks), bool)),
        ("strict", verdicts["strict"].to_numpy() == "inlier"),
        ("default", verdicts["default"].to_numpy() == "inlier"),
    ):
        row.update({f"{label}_{k}": v for k, v in prf(picks[keep], truth, d_px).items()})
        row[f"{label}_kept"] = round(float(keep.mean()), 3)
    row.update(
        signal_z=sep.get("signal_z"),
        non_noise_kept=sep.get("non_noise_kept_by_the_usual_decision"),
        noise_pass=sep.get("noise_pass"),
        verdicts_as_run_wrote=round(same, 4),
    )
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="set names (default: DEFAULT_SETS)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    df = pd.DataFrame([measure(n) for n in (args.only or DEFAULT_SETS)])
    df.to_csv(RESULTS / "clean_on_picks.csv", index=False)
    cols = ["set", "particles", "picks_F1", "strict_kept", "strict_F1", "default_kept"]
    cols += ["default_F1", "picks_R", "strict_R", "default_R", "picks_P", "strict_P"]
    cols += ["default_P", "signal_z", "non_noise_kept", "noise_pass"]
    text = df[cols].to_string(index=False)
    gain = df.default_F1 - df.strict_F1
    text += (
        f"\n\ncleaning's F1 change over the picks: strict {(df.strict_F1 - df.picks_F1).min():+.3f}"
        f" to {(df.strict_F1 - df.picks_F1).max():+.3f}, default "
        f"{(df.default_F1 - df.picks_F1).min():+.3f} to {(df.default_F1 - df.picks_F1).max():+.3f}"
        f"; default - strict {gain.min():+.3f} to {gain.max():+.3f}"
        f"\nverdicts equal to what run wrote: {df.verdicts_as_run_wrote.min():.2%} (lowest)"
        f"\n{time.perf_counter() - t0:.0f} s"
    )
    (RESULTS / "clean_on_picks.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
