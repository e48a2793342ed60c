"""``cryosift run`` throughput: one process, a local process pool and a Dask LocalCluster,
side by side in one run on the same simulated micrographs, and whether their outputs agree.

    python benchmarks/pipeline_throughput.py [--micrographs 5 8] [--jobs 2]

Prints, for each number of micrographs, seconds per micrograph of the per-micrograph stage
(pick + extract), of the whole run, and the speed-up over one process; also ``--jobs`` left
at its default ("auto": :func:`cryosift.executors.jobs_for`), which keeps the work in this
process when no more micrographs are left to pick after the survey than it would spawn
workers for. Writes ``benchmarks/results/pipeline_throughput.txt``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pandas as pd

from cryosift.extract.run import ctf_by_micrograph, find_micrographs
from cryosift.pipeline.run import RunConfig, run_pipeline
from cryosift.simulate.micrographs import MicrographSimConfig, write_simulated_micrographs
from cryosift.simulate.volume import phantom_volume

WORK = Path(__file__).resolve().parent / "_work" / "pipeline"
RESULTS = Path(__file__).resolve().parent / "results"


def one_run(mics, ctf, out: Path, **how) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = RunConfig(diameter=44.0, box=88, size=88, angpix=2.0)
    t0 = time.perf_counter()
    run = run_pipeline(mics, cfg, out, ctf=ctf, report=False, **how)
    return run.timings["pick + extract"], time.perf_counter() - t0


def side_by_side(n_mics: int, jobs: int) -> str:
    """The table for ``n_mics`` simulated micrographs of 1024 x 1024."""
    sim = WORK / "sim"
    shutil.rmtree(sim, ignore_errors=True)
    write_simulated_micrographs(
        phantom_volume(64), MicrographSimConfig(n_micrographs=n_mics, seed=1), sim
    )
    mics = find_micrographs(sim / "micrographs_ctf.star")
    ctf = ctf_by_micrograph(mics, None, None, sim)
    n = len(mics)
    rows = []

    def add(where: str, folder: str, **how) -> None:
        stage, total = one_run(mics, ctf, WORK / folder, **how)
        rows.append({"where": where, "stage_s_per_mic": stage / n, "total_s": total})

    add("one process", "serial", jobs=1)
    add(f"process pool, {jobs} jobs", "pool", jobs=jobs)
    add("--jobs left at its default", "auto", jobs=None)
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=jobs, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        add(f"Dask LocalCluster, {jobs} workers", "dask", scheduler=cluster.scheduler_address)
    table = pd.DataFrame(rows)
    table["speed_up"] = table.stage_s_per_mic.iloc[0] / table.stage_s_per_mic
    same = all(
        (WORK / w / f).read_text() == (WORK / "serial" / f).read_text()
        for w in ("pool", "auto", "dask")
        for f in ("particles.star", "scores.csv")
    )
    text = table.to_string(index=False, float_format=lambda v: f"{v:.2f}")
    return text + f"\n{n} micrographs of 1024 x 1024; outputs identical across all: {same}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--micrographs", type=int, nargs="+", default=[5, 8])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    text = "\n".join(side_by_side(n, args.jobs) for n in args.micrographs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline_throughput.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
