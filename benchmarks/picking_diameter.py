"""How the picks hold when the particle diameter a user gives is off by 10 %.

Users type the diameter they believe (from a paper, a map, a guess), rarely the one that the
picker's defaults would best have: 5-10 % off is common. Both pickers are run at defaults,
side by side, on sets of ``picking_carry.py`` with the diameter given as ``--factors`` times
the true one; every pick is judged against the truth at the *true* diameter (one to one,
within half of it). Per set it prints F1 at each factor for cryosift and RELION's LoG (its
``--LoG_diam_min/max`` scale with the given diameter, as in ``picking_carry.py``), cryosift's
default at each factor (what the survey decided), and the spread of F1 across the factors.

    python benchmarks/picking_diameter.py [--only SET ...] [--factors 0.9 1.0 1.1]
                                          [--micrographs 8]

Writes ``benchmarks/results/picking_diameter.{csv,txt}`` (with ``--only``, into
``benchmarks/_work/partial/`` instead). Needs ``relion_autopick`` for the RELION rows.
The record of what was measured: ``picking_carry.md``, "Diameters off by 10 %".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from picking_carry import (
    WORK,
    class_verdicts,
    cryosift_picks,
    dataset,
    f1_row,
    prepare,
    relion_picks,
    slug,
)
from picking_empiar10017 import results_dir

#: One or two sets of each kind in ``picking_carry.py``: real copies (EMPIAR-10017, 16-bit
#: low contrast), crowded, faint with carbon or ice, sparse, sparse with ice.
DEFAULT_SETS = (
    "EMPIAR-10017",
    "16-bit low contrast, 61 px",
    "simulated, demo field",
    "simulated, crowded, SNR 0.25",
    "crowded small, SNR 0.3",
    "faint, carbon and ice, SNR 0.2",
    "faint, ice without carbon, 56 px, SNR 0.22",
    "faint, ice without carbon, 66 px, 16-bit, SNR 0.18, 80 crystals",
    "simulated, SNR 0.25",
    "simulated, 120 particles, SNR 0.2",
    "simulated, 100 particles of 60 px, SNR 0.25",
    "simulated, 60 particles of 72 px with ice, SNR 0.35",
    "simulated, 60 particles of 50 px with ice, 16-bit, SNR 0.3",
    "simulated, 70 particles of 60 px with ice, 16-bit, SNR 0.4",
)


def measure(name: str, factors: list[float], micrographs: int) -> list[dict]:
    """Rows of set ``name`` (its first ``micrographs`` micrographs): one per picker and
    factor, F1 against the truth at the true diameter."""
    ds = dataset(name)
    mics, truth, d_px, angpix = prepare(ds)
    mics = mics[:micrographs]
    truth = {p.stem: truth[p.stem] for p in mics}
    root = WORK.parent / "diameter" / slug(name)
    rows = []
    for f in factors:
        base = {"set": name, "factor": f, "micrographs": len(mics)}
        out = root / f"cryosift_{f:.2f}"
        picks, _ = cryosift_picks(mics, d_px * f, angpix, out)
        mine = {**base, "picker": "cryosift", **f1_row(picks, truth, d_px), **class_verdicts(out)}
        rows.append(mine)
        line = f"{name}, {f:.2f} x diameter: cryosift F1 {mine['F1']:.3f}"
        rpicks, _ = relion_picks(mics, d_px * f, angpix, root / f"relion_{f:.2f}")
        if rpicks is not None:
            rows.append({**base, "picker": "RELION LoG", **f1_row(rpicks, truth, d_px)})
            line += f", RELION LoG {rows[-1]['F1']:.3f}"
        print(line, flush=True)
    return rows


#: Short names of cryosift's defaults (``class_verdicts``' "default") for the table.
DEFAULTS = {
    "probability 0.5 at the best expected cut": "classes' cut",
    "probability 0.5 at the radial profiles' best expected cut": "radial cut",
    "probability 0.5 between the two humps of the survey's scores": "humps' cut",
    "every candidate": "every candidate",
}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """F1 by set (rows) and picker x factor (columns), with each picker's spread."""
    wide = table.pivot_table(index="set", columns=["picker", "factor"], values="F1", sort=False)
    for picker in wide.columns.get_level_values(0).unique():
        wide[(picker, "spread")] = wide[picker].max(axis=1) - wide[picker].min(axis=1)
    return wide.sort_index(axis=1, level=0, sort_remaining=False).round(3)


def report(table: pd.DataFrame) -> str:
    """The F1 table (:func:`summary`), cryosift's default at each factor, and how often each
    picker is ahead."""
    mine = table[table.picker == "cryosift"]
    defaults = mine.pivot_table(
        index="set", columns="factor", values="default", aggfunc="first", sort=False
    ).replace(DEFAULTS)
    wide = summary(table)
    lines = [wide.to_string(), "", "cryosift's default by factor:", defaults.to_string()]
    if "RELION LoG" in wide.columns.get_level_values(0):
        for f in sorted(mine.factor.unique()):
            ahead = int((wide[("cryosift", f)] > wide[("RELION LoG", f)]).sum())
            lines.append(
                f"{f:.2f} x diameter: cryosift ahead of RELION's LoG on {ahead} of {len(wide)}"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="names of the sets to run (default: DEFAULT_SETS)")
    ap.add_argument("--factors", type=float, nargs="+", default=[0.9, 1.0, 1.1])
    ap.add_argument("--micrographs", type=int, default=8, help="first N micrographs of a set")
    args = ap.parse_args()
    rows = [r for name in args.only or DEFAULT_SETS
            for r in measure(name, args.factors, args.micrographs)]  # fmt: skip
    table = pd.DataFrame(rows)
    out = results_dir(bool(args.only))
    table.to_csv(out / "picking_diameter.csv", index=False)
    text = report(table)
    (out / "picking_diameter.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
