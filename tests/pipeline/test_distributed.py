"""``--dask-scheduler``: a LocalCluster on loopback gives the local run's outputs, even when a
worker is killed mid-run."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import assert_same_outputs, run_args, run_cli

distributed = pytest.importorskip("distributed")


@pytest.fixture
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    ) as c:
        yield c


def test_dask_cluster_gives_the_local_outputs(reference_run, run_sim, tmp_path, cluster):
    out = tmp_path / "dask"
    res = run_cli(
        *run_args(run_sim, out, "--dask-scheduler", cluster.scheduler_address, "--no-report")
    )
    assert res.returncode == 0, res.stderr
    assert_same_outputs(reference_run, out)


def test_killed_worker_loses_and_duplicates_nothing(reference_run, run_sim, tmp_path, cluster):
    from cryosift.cli.run import read_truth
    from cryosift.extract.run import ctf_by_micrograph, find_with_diameter, in_project
    from cryosift.io.paths import folder_prefix
    from cryosift.pipeline.run import RunConfig, run_pipeline

    mics, angpix, diameter = find_with_diameter(run_sim / "micrographs_ctf.star", 88.0, None, None)
    mics = in_project(mics, Path.cwd())  # as the command line names them
    import json

    params = json.loads((reference_run / "run.json").read_text())["parameters"]
    cfg = RunConfig(**params)
    assert cfg.diameter == pytest.approx(diameter, abs=1e-3)
    out = tmp_path / "killed"
    killed: list[int] = []
    errors: list[BaseException] = []

    def work():
        try:
            run_pipeline(
                mics,
                cfg,
                out,
                ctf=ctf_by_micrograph(mics, None, angpix, run_sim),
                truth=read_truth(run_sim / "Coordinates", mics),
                scheduler=cluster.scheduler_address,
                report=False,
                name_prefix=folder_prefix(out, Path.cwd()),
            )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    with distributed.Client(cluster.scheduler_address) as client:
        # kill a worker while it is running one of our micrographs
        t0 = time.time()
        while not killed and time.time() - t0 < 120 and thread.is_alive():
            busy = [w for w, keys in client.processing().items() if keys]
            started = (out / "Done").is_dir() and any((out / "Done").iterdir())
            if busy and started:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)
    thread.join(timeout=300)
    assert not errors, errors
    assert killed, "the run ended before a worker could be killed"
    summary = pd.read_csv(out / "pick_summary.csv")
    assert sorted(summary.key) == sorted(p.stem for p in (run_sim / "Micrographs").iterdir())
    assert_same_outputs(reference_run, out)
