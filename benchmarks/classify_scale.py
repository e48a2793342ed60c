"""``cryosift run``'s 2D classes and class vote on a large particle set: every particle
classified, against a sample classified and the others joining its classes.

Beyond :data:`cryosift.classify.run.MAX_CLASSIFIED` particles ``run`` (and ``cryosift
clean``'s vote) classify an evenly spaced sample and let the others join its classes
(:func:`cryosift.classify.vote.join_rest`). This measures, side by side in one run on a
labelled toy stack (:func:`cryosift.simulate.toy.toy_stack`, 60 % particles, 64 px, written
as an ``.mrcs`` and read back as ``run`` reads its particles), each in a fresh process:

- ``whole``: every particle classified (the limit at the stack's size);
- ``sample``: a sample of ``--sample`` classified, the others joined.

Each process cleans the stack with the radial detector, classifies (20 classes, as ``run``
does), votes and combines; it reports its peak memory (RSS), the seconds of the
classification and of the vote (joining included), and TPR / TNR of the verdicts against
the labels. Prints each row, the ratios sample / whole and the share of verdicts that agree;
writes ``benchmarks/results/classify_scale.txt``.

    python benchmarks/classify_scale.py [--n 60000] [--sample 15000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS, WORK = HERE / "results", HERE / "_work" / "classify_scale"
SIDE, RADIUS, CLASSES = 64, 12.0, 20


def make_stack(n: int) -> Path:
    """The toy stack of ``n`` images and its labels in :data:`WORK` (made once per ``n``)."""
    from cryosift.io.mrc import write_stack
    from cryosift.simulate.toy import toy_stack

    path = WORK / f"toy_{n}.mrcs"
    if not path.exists():
        n_in = int(0.6 * n)
        images, truth = toy_stack(n_in, (n - n_in) // 3, d=SIDE, radius=RADIUS, seed=5)
        WORK.mkdir(parents=True, exist_ok=True)
        np.save(WORK / f"toy_{n}_truth.npy", truth.astype(str))
        write_stack(path, images, 1.0)
    return path


def peak_gb() -> float:
    """This process's peak resident memory so far, GB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)


def one(path: Path, limit: int, verdicts_out: Path) -> dict:
    """Clean, classify (at most ``limit`` particles), vote; the facts of the module."""
    from cryosift.classify.run import classify_run_particles
    from cryosift.classify.vote import class_vote, combine, join_rest
    from cryosift.evaluate.outliers import outlier_rates
    from cryosift.io.particles import read_particles
    from cryosift.outliers.clean import CleanConfig, clean_particles

    pset = read_particles(path)
    result = clean_particles(pset, CleanConfig(radius_px=RADIUS, size=SIDE))
    cleaned_gb = peak_gb()
    t0 = time.perf_counter()
    found = classify_run_particles(pset, RADIUS / SIDE, CLASSES, seed=0, limit=limit)
    assert found is not None
    classify_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vote = class_vote(found.images, found.result, found.radius, seed=0)
    if found.sampled:
        vote = join_rest(pset, found.rows, found.images, found.sample, vote, seed=0)[1]
    combine(result.table, vote)
    vote_s = time.perf_counter() - t0
    verdicts = result.table.verdict.to_numpy().astype(str)
    np.save(verdicts_out, verdicts)
    rates = outlier_rates(verdicts, np.load(str(path).replace(".mrcs", "_truth.npy")))
    return {
        "classified": len(found.rows),
        "classify_s": round(classify_s, 1),
        "vote_s": round(vote_s, 1),
        "peak_GB_cleaning": cleaned_gb,
        "peak_GB": peak_gb(),
        "TPR": round(rates["TPR"], 3),
        "TNR": round(rates["TNR"], 3),
    }


def run_child(path: Path, limit: int, name: str) -> dict:
    out = WORK / f"verdicts_{name}.npy"
    cmd = [sys.executable, __file__, "--child", str(path), str(limit), str(out)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {"run": name, **json.loads(res.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--sample", type=int, default=15_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, limit, out = args.child
        print(json.dumps(one(Path(path), int(limit), Path(out))))
        return
    path = make_stack(args.n)
    rows = [run_child(path, args.n, "whole"), run_child(path, args.sample, "sample")]
    whole, sample = rows
    agree = np.mean(np.load(WORK / "verdicts_whole.npy") == np.load(WORK / "verdicts_sample.npy"))
    lines = [f"{args.n:,} toy images of {SIDE} px, {CLASSES} classes, 2 cores, a process each"]
    lines += [json.dumps(r) for r in rows]
    both = (sample["classify_s"] + sample["vote_s"]) / (whole["classify_s"] + whole["vote_s"])
    lines.append(
        f"sample / whole: peak memory {sample['peak_GB'] / whole['peak_GB']:.2f}x, "
        f"classification {sample['classify_s'] / whole['classify_s']:.2f}x, "
        f"classification + vote {both:.2f}x; verdicts agree on {agree:.2%}"
    )
    out = RESULTS / "classify_scale.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text(), end="")


if __name__ == "__main__":
    main()
