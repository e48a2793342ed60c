"""Simulated micrographs: ground truth where the particles are, files identical per seed."""

from __future__ import annotations

import mrcfile
import numpy as np
import starfile

from conftest import run_cli
from cryosift.simulate.micrographs import CONTEXTS, MicrographSimConfig, simulate_micrograph
from cryosift.simulate.volume import diameter_px, phantom_volume


def test_ground_truth_is_where_the_particles_were_placed():
    vol = phantom_volume(32, seed=1)
    cfg = MicrographSimConfig(
        shape=(400, 500), particles=25, pairs=0, aggregates=0, contamination=0,
        carbon_edge=False, ctf=False, snr=1e6, ice_gradient=0.0, seed=3,
    )  # fmt: skip
    mic = simulate_micrograph(vol, cfg, 0, "m")
    assert len(mic.coords) >= 15
    radius = diameter_px(vol) / 2
    yy, xx = np.mgrid[: cfg.shape[0], : cfg.shape[1]]
    for x, y in mic.coords[["x", "y"]].to_numpy():
        disc = np.hypot(yy - y, xx - x) <= radius + 2
        w = mic.clean * disc
        cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
        assert abs(cy - y) < 0.5 and abs(cx - x) < 0.5  # x is the column, y the row
    # particles are darker than the ice, in the written image too
    at = mic.image[mic.coords.y.round().astype(int), mic.coords.x.round().astype(int)]
    assert np.median(at) < np.median(mic.image) - 0.01


def test_isolated_particles_keep_their_spacing_and_contexts_are_labelled():
    vol = phantom_volume(32)
    cfg = MicrographSimConfig(shape=(600, 600), particles=30, pairs=3, aggregates=1, seed=4)
    mic = simulate_micrograph(vol, cfg, 0, "m")
    d = diameter_px(vol)
    iso = mic.coords[mic.coords.context == "isolated"][["x", "y"]].to_numpy()
    dist = np.hypot(*(iso[:, None, :] - iso[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(dist, np.inf)
    assert dist.min() >= cfg.min_spacing * d - 1e-6
    pairs = mic.coords[mic.coords.context == "pair"][["x", "y"]].to_numpy()
    assert len(pairs) >= 2
    nearest = np.sort(np.hypot(*(pairs[:, None] - pairs[None]).transpose(2, 0, 1)), axis=1)[:, 1]
    assert np.all(nearest < 1.05 * d)  # touching
    assert set(mic.coords.context) <= set(CONTEXTS)


def test_cli_same_seed_same_files_and_ctf_star(tmp_path):
    args = ["simulate", "micrographs", "-n", "2", "--shape", "256x320", "--particles", "8"]
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        res = run_cli(*args, "--seed", str(seed), "-o", tmp_path / name)
        assert res.returncode == 0, res.stderr
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 6
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    a = mrcfile.read(tmp_path / "a/Micrographs/mic_001.mrc")
    c = mrcfile.read(tmp_path / "c/Micrographs/mic_001.mrc")
    assert a.shape == (256, 320) and not np.array_equal(a, c)
    ctf = starfile.read(tmp_path / "a/micrographs_ctf.star", always_dict=True)
    mics = ctf["micrographs"]
    assert len(mics) == 2 and mics["rlnDefocusU"].between(0.9e4, 2.6e4).all()
    assert float(ctf["optics"]["rlnMicrographPixelSize"].iloc[0]) == 2.0
    coords = starfile.read(tmp_path / "a/Coordinates/mic_001.star")
    assert coords["rlnCoordinateX"].between(0, 320).all()
    assert coords["rlnCoordinateY"].between(0, 256).all()
