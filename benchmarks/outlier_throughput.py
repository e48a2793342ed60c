"""Throughput of ``cryosift clean`` against the per-image loop, and its peak memory.

Side by side in one run, on the same 40,863 images of 55 x 55 (a labelled toy stack written
to disk as ``.mrcs``):

- cryosift: ``clean_particles`` with the ``paper`` rules (the ones the loop implements)
  streaming the stack from disk (batched FFT correlation, argpartition peaks, vectorised
  DBSCAN); then the default ``radial`` preset and the ``reference`` preset;
- naive: one image at a time, ``scipy.signal.fftconvolve`` + scikit-learn ``DBSCAN``
  (:mod:`cryosift.outliers.naive`), images already in memory.

Also the whole ``cryosift clean`` command as a user runs it (a fresh process: imports, the
typical profile, the noise calibration, writing the outputs), default preset, target at least
10,000 images/s on 2 cores. Then the peak resident memory of a child process cleaning a
160,000-particle stack read from disk with the default preset. Prints images/s for both, the
ratio, whether verdicts agree, and the peak memory, and writes the same lines to
``benchmarks/results/outlier_throughput.txt``.

    python benchmarks/outlier_throughput.py [--n 40863] [--big 160000] [--naive-limit N]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np

from cryosift.io.particles import read_particles
from cryosift.outliers.clean import CleanConfig, clean_particles
from cryosift.outliers.detector import DetectorParams
from cryosift.outliers.naive import naive_verdicts
from cryosift.outliers.rules import DEFAULT_PRESET, get_rules
from cryosift.simulate.toy import toy_stack

WORK = Path(__file__).resolve().parent / "_work"
RESULTS = Path(__file__).resolve().parent / "results"
D, RADIUS = 55, 10.0


def make_stack(path: Path, n: int, seed: int = 0) -> np.ndarray:
    per = n // 6
    images, _ = toy_stack(
        n_inliers=n - 3 * per, n_per_outlier_type=per, d=D, radius=RADIUS, seed=seed
    )
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(images)
        m.set_image_stack()
        m.voxel_size = 2.0
    return images


def make_big_stack(path: Path, base: np.ndarray, n: int) -> None:
    with mrcfile.new_mmap(path, shape=(n, D, D), mrc_mode=2, overwrite=True) as m:
        for start in range(0, n, len(base)):
            stop = min(n, start + len(base))
            m.data[start:stop] = base[: stop - start]
        m.set_image_stack()
        m.voxel_size = 2.0


def peak_rss_mib() -> float:
    """High-water resident memory of this process (VmHWM). Unlike ``ru_maxrss``, it does not
    inherit the parent's peak across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(path: str) -> None:
    pset = read_particles(path)
    t = time.perf_counter()
    res = clean_particles(pset, CleanConfig(radius_px=RADIUS, size=D))
    dt = time.perf_counter() - t
    peak_mb = peak_rss_mib()
    print(f"{len(res.table)} {dt:.3f} {peak_mb:.1f}")


def whole_process(path: Path, n: int, repeats: int = 3) -> float:
    """Best wall time of ``cryosift clean`` on ``path`` in a fresh process (seconds)."""
    cli = Path(sys.executable).parent / "cryosift"
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(
            [
                str(cli),
                "clean",
                str(path),
                "--diameter-px",
                str(2 * RADIUS),
                "-o",
                str(WORK / "clean"),
            ],
            check=True,
            capture_output=True,
        )
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40863)
    ap.add_argument(
        "--big", type=int, default=160000, help="particles for the memory run (0: skip)"
    )
    ap.add_argument("--naive-limit", type=int, default=0, help="time the naive loop on N images")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    WORK.mkdir(exist_ok=True)
    path = WORK / "throughput.mrcs"
    images = make_stack(path, args.n)
    rules = get_rules("paper")
    params = DetectorParams(size=D, radius=RADIUS, peaks=10)

    pset = read_particles(path)
    clean_particles(pset, CleanConfig(radius_px=RADIUS, size=D, chunk=256))  # warm-up
    t = time.perf_counter()
    res = clean_particles(pset, CleanConfig(radius_px=RADIUS, size=D, rules="paper"))
    t_fast = time.perf_counter() - t
    timings = {}
    for preset in (DEFAULT_PRESET, "reference"):
        t = time.perf_counter()
        clean_particles(pset, CleanConfig(radius_px=RADIUS, size=D, rules=preset))
        timings[preset] = time.perf_counter() - t

    n_naive = args.naive_limit or args.n
    t = time.perf_counter()
    naive = naive_verdicts(images[:n_naive].astype(np.float64), params, rules)
    t_naive = time.perf_counter() - t
    agree = np.mean(np.asarray(naive) == res.table["verdict"].to_numpy()[:n_naive])

    fast_rate, naive_rate = args.n / t_fast, n_naive / t_naive
    say(f"images: {args.n} of {D} x {D}, r = {RADIUS} px, A = 10, preset paper")
    say(f"cryosift   : {t_fast:8.2f} s  {fast_rate:10,.0f} images/s (from disk)")
    say(f"naive loop : {t_naive:8.2f} s  {naive_rate:10,.0f} images/s ({n_naive} images)")
    say(f"ratio      : {fast_rate / naive_rate:8.1f} x")
    say(f"verdicts identical to the naive loop: {agree:.4%}")
    say(
        f"default preset {DEFAULT_PRESET} (window, radial profiles, LDA): "
        f"{args.n / timings[DEFAULT_PRESET]:,.0f} images/s"
    )
    say(
        "reference preset (two passes: stack mean, then detect): "
        f"{args.n / timings['reference']:,.0f} images/s"
    )
    say("paper (Kapnulin et al.): 817 images/s (40,863 images in 50 s)")
    whole = whole_process(path, args.n)
    verdict = "met" if args.n / whole >= 10_000 else "NOT met"
    say(
        f"whole process: cryosift clean {path.name} --diameter-px {2 * RADIUS:g} (default preset): "
        f"{whole:.2f} s, {args.n / whole:,.0f} images/s, {args.n / whole / naive_rate:.1f} x "
        f"the naive loop; target 10,000 images/s: {verdict}"
    )

    if args.big:
        big = WORK / "big.mrcs"
        make_big_stack(big, images, args.big)
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(big)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        n, secs, peak = int(out[0]), float(out[1]), float(out[2])
        size_mb = big.stat().st_size / 2**20
        say(
            f"memory     : {n} particles ({size_mb:,.0f} MiB on disk) cleaned in {secs:.1f} s "
            f"({n / secs:,.0f} images/s), peak RSS {peak:,.0f} MiB"
        )
        big.unlink()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "outlier_throughput.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
