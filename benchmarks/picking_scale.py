"""How the whole ``cryosift pick`` compares with RELION's LoG as the run grows.

Issue 31's speed target compares both pickers on the same micrographs. On EMPIAR-10017's 20
micrographs cryosift's survey (embedding four micrographs, five 2D classifications, the
ranker) is a fixed cost paid once per run, while users pick thousands of micrographs. This
benchmark repeats the 20 micrographs (symbolic links under new names, so both pickers treat
them as new micrographs) to ``--counts`` micrographs and times both pickers side by side in
one run, as users type them (``cryosift pick MICS --diameter-A 108 --angpix 1`` with its
default processes; ``relion_autopick --LoG`` as ``picking_carry.py`` runs it). It prints the
ratio at each count and the marginal one (the extra seconds per extra micrograph between the
smallest and the largest count), which is the ratio a long run tends to.

    python benchmarks/picking_scale.py [--counts 20 100]

Writes ``benchmarks/results/picking_scale.txt``. Needs ``relion_autopick`` (apt-get install
relion); without it only cryosift's times are printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from picking_carry import DATASETS, WORK, cryosift_picks, prepare, relion_picks
from picking_empiar10017 import RESULTS


def copies(mics: list[Path], count: int, folder: Path) -> list[Path]:
    """``count`` links to ``mics`` in turn, named ``<stem>_r<round>.mrc`` in ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    out = []
    for i in range(count):
        src = mics[i % len(mics)]
        link = folder / f"{src.stem}_r{i // len(mics) + 1}.mrc"
        link.symlink_to(src.resolve())
        out.append(link)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[20, 100])
    args = ap.parse_args()
    counts = sorted(set(args.counts))
    empiar = next(ds for ds in DATASETS if ds.name == "EMPIAR-10017")
    mics, _, d_px, angpix = prepare(empiar)
    root = WORK.parent / "scale"
    lines = [f"EMPIAR-10017 micrographs repeated, particle {d_px:.0f} px; seconds, whole commands"]
    times = {}
    for n in counts:
        sub = copies(mics, n, root / f"mics_{n}")
        _, ours = cryosift_picks(sub, d_px, angpix, root / f"cryosift_{n}")
        _, theirs = relion_picks(sub, d_px, angpix, root / f"relion_{n}")
        times[n] = ours, theirs
        line = f"{n:5d} micrographs: cryosift {ours:7.1f} s ({ours / n:.2f} s per micrograph)"
        if theirs:
            line += f", RELION LoG {theirs:6.1f} s ({theirs / n:.2f}), ratio {ours / theirs:.2f}"
        print(line, flush=True)
        lines.append(line)
    if len(counts) > 1:
        a, b = counts[0], counts[-1]
        ours = (times[b][0] - times[a][0]) / (b - a)
        line = f"marginal, {a} -> {b} micrographs: cryosift {ours:.2f} s per extra micrograph"
        if times[a][1] and times[b][1]:
            theirs = (times[b][1] - times[a][1]) / (b - a)
            line += f", RELION LoG {theirs:.2f}, ratio {ours / theirs:.2f}"
        print(line)
        lines.append(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "picking_scale.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
