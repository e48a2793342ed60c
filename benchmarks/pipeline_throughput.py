"""``cryosift run`` throughput: one process, a local process pool and a Dask LocalCluster,
side by side in one run on the same simulated micrographs, and whether their outputs agree.

    python benchmarks/pipeline_throughput.py [--micrographs 8] [--jobs 2]

Prints seconds per micrograph of the per-micrograph stage (pick + extract), of the whole run,
and the speed-up over one process. Writes ``benchmarks/results/pipeline_throughput.txt``.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--micrographs", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    sim = WORK / "sim"
    shutil.rmtree(sim, ignore_errors=True)
    write_simulated_micrographs(
        phantom_volume(64), MicrographSimConfig(n_micrographs=args.micrographs, seed=1), sim
    )
    mics = find_micrographs(sim / "micrographs_ctf.star")
    ctf = ctf_by_micrograph(mics, None, None, sim)
    n = len(mics)
    rows = []
    stage, total = one_run(mics, ctf, WORK / "serial", jobs=1)
    rows.append({"where": "one process", "stage_s_per_mic": stage / n, "total_s": total})
    stage, total = one_run(mics, ctf, WORK / "pool", jobs=args.jobs)
    rows.append({"where": f"process pool, {args.jobs} jobs", "stage_s_per_mic": stage / n,
                 "total_s": total})  # fmt: skip
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=args.jobs, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        stage, total = one_run(mics, ctf, WORK / "dask", scheduler=cluster.scheduler_address)
    rows.append({"where": f"Dask LocalCluster, {args.jobs} workers", "stage_s_per_mic": stage / n,
                 "total_s": total})  # fmt: skip
    table = pd.DataFrame(rows)
    table["speed_up"] = table.stage_s_per_mic.iloc[0] / table.stage_s_per_mic
    same = all(
        (WORK / w / f).read_text() == (WORK / "serial" / f).read_text()
        for w in ("pool", "dask")
        for f in ("particles.star", "scores.csv")
    )
    text = table.to_string(index=False, float_format=lambda v: f"{v:.2f}")
    text += f"\n{n} micrographs of 1024 x 1024; outputs identical across the three: {same}\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline_throughput.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
