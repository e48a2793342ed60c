"""Simulated particle stacks: the SNR asked for, outliers that are what they claim, truth in
the files, the same files for the same seed, and one-line errors for bad volumes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import assert_cli_rejects, run_cli, shared_path
from cryosift.io.particles import read_particles
from cryosift.simulate.particles import (
    ParticleSimConfig,
    ParticleSimulator,
    protocol_config,
    split_counts,
)
from cryosift.simulate.projection import project
from cryosift.simulate.volume import pad_and_scale, phantom_volume


def _all_clean(sim: ParticleSimulator) -> np.ndarray:
    return np.concatenate(
        [sim.clean_chunk(s, min(s + sim.cfg.chunk, len(sim))) for s in range(0, len(sim), 256)]
    )


@pytest.mark.parametrize("noise", ["white", "coloured"])
@pytest.mark.parametrize("snr", [0.5, 1 / 70])
def test_snr_of_generated_data_matches_the_request(noise, snr):
    vol = pad_and_scale(phantom_volume(40, seed=1), 6)
    cfg = ParticleSimConfig(n_inliers=150, n_outliers=60, snr=snr, noise=noise, snr_margin=6)
    sim = ParticleSimulator(vol, 2.0, cfg)
    noisy = np.concatenate(list(sim.images()))
    clean = _all_clean(sim)
    inl = sim.plan.labels == "inlier"
    signal = clean[inl, 6:-6, 6:-6].mean()
    measured = signal / (noisy - clean).std()
    assert abs(measured / snr - 1) < 0.05
    assert abs(sim.measured["snr_mean"] / snr - 1) < 0.05
    power = clean[inl].var(axis=(1, 2)).mean() / (noisy - clean).var()
    assert abs(sim.measured["snr_power"] / power - 1) < 0.05


def test_snr_with_ctf_is_reported_for_the_phase_flipped_images():
    vol = phantom_volume(40)
    cfg = ParticleSimConfig(n_inliers=80, n_outliers=30, snr=0.5, ctf=True)
    sim = ParticleSimulator(vol, 2.0, cfg)
    list(sim.images())
    assert abs(sim.measured["snr_mean"] / 0.5 - 1) < 0.05
    # the CTF spreads and weakens the signal: its power SNR is below the CTF-free one
    free = ParticleSimulator(vol, 2.0, ParticleSimConfig(n_inliers=80, n_outliers=30, snr=0.5))
    list(free.images())
    assert sim.measured["snr_power"] < free.measured["snr_power"]


def test_each_outlier_type_keeps_the_intended_part_of_the_particle_in_the_box():
    vol = phantom_volume(48, seed=2)
    cfg = ParticleSimConfig(n_inliers=100, n_outliers=450, offset_sigma=48 / 16, seed=5)
    sim = ParticleSimulator(vol, 2.0, cfg)
    clean, p = _all_clean(sim), sim.plan
    mass = project(vol, p.rotations).sum(axis=(1, 2)) * p.amplitude
    mass2 = project(vol, p.rotations2).sum(axis=(1, 2)) * p.amplitude2
    inside = clean.sum(axis=(1, 2))
    frac = {
        "inlier": inside[p.labels == "inlier"] / mass[p.labels == "inlier"],
        "partial": inside[p.labels == "partial"] / mass[p.labels == "partial"],
        "multiple": inside[p.labels == "multiple"] / ((mass + mass2) / 2)[p.labels == "multiple"],
    }
    assert np.all(np.abs(clean[p.labels == "noise"]) == 0)
    assert frac["inlier"].min() > 0.97  # whole particle in the box
    # a partial particle is centred between box/4 and 2 box/3 away: some of it stays, and
    # nearly always some of it leaves (a compact view shifted by box/4 may only touch the edge)
    assert frac["partial"].min() > 0.03 and np.quantile(frac["partial"], 0.9) < 0.99
    assert 0.4 < frac["partial"].mean() < 0.8
    assert frac["partial"].mean() < frac["multiple"].mean() < frac["inlier"].mean()
    shift = np.hypot(*p.shift[p.labels == "partial"].T)
    assert shift.min() >= 48 / 4 - 1e-9 and shift.max() <= 2 * 48 / 3 + 1e-9
    # published-code shifts (per-axis rolls) cut partial particles harder
    per_axis = ParticleSimulator(
        vol, 2.0, ParticleSimConfig(**{**cfg.__dict__, "shift_model": "per-axis"})
    )
    pc, pp = _all_clean(per_axis), per_axis.plan
    m = pp.labels == "partial"
    pmass = project(vol, pp.rotations[m]).sum(axis=(1, 2)) * pp.amplitude[m]
    assert (pc[m].sum(axis=(1, 2)) / pmass).mean() < frac["partial"].mean()


def test_split_counts():
    assert split_counts(1000, (1, 1, 1)) == [334, 333, 333]
    assert split_counts(10, (0, 1, 3)) == [0, 3, 7]
    assert sum(split_counts(7, (0.2, 0.5, 0.3))) == 7


def test_protocol_kapnulin2024_geometry():
    cfg = protocol_config("kapnulin2024", 85, snr=1 / 70)
    assert (cfg.n_inliers, cfg.n_outliers, cfg.size, cfg.snr_margin) == (1000, 1000, 33, 10)
    assert cfg.offset_sigma == pytest.approx(85 / 16)
    assert cfg.amplitude == pytest.approx((2 / 3, 3 / 2))
    vol = pad_and_scale(np.ones((65, 65, 65), np.float32) * 3, 10)
    assert vol.shape == (85, 85, 85) and vol.max() == 1


def test_cli_writes_relion31_with_truth_and_the_same_files_for_the_same_seed(tmp_path):
    args = ["simulate", "particles", "--inliers", "40", "--outliers", "30", "--snr", "0.3"]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        res = run_cli(*args, "--seed", str(seed), "-o", tmp_path / name)
        assert res.returncode == 0, res.stderr
    for f in ("particles.mrcs", "particles.star", "truth.csv", "simulation.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a/particles.mrcs").read_bytes() != (
        tmp_path / "c/particles.mrcs"
    ).read_bytes()

    star = starfile.read(tmp_path / "a" / "particles.star", always_dict=True)
    parts, optics = star["particles"], star["optics"]
    truth = pd.read_csv(tmp_path / "a" / "truth.csv")
    assert len(parts) == 70 and (parts["rlnCryosiftType"] == truth["truth"]).all()
    assert (parts["rlnCryosiftIsInlier"] == (truth["truth"] == "inlier")).all()
    assert int(optics["rlnCtfDataArePhaseFlipped"].iloc[0]) == 1
    assert {"rlnDefocusU", "rlnAngleRot", "rlnOriginXAngst"} <= set(parts.columns)
    pset = read_particles(tmp_path / "a" / "particles.star")
    try:
        assert pset.phase_flipped and pset.ctf is not None and len(pset) == 70
        assert np.isfinite(pset.read(0, 70)).all()
    finally:
        pset.close()
    summary = json.loads((tmp_path / "a" / "simulation.json").read_text())
    assert abs(summary["snr_mean"] / 0.3 - 1) < 0.05


def test_cli_protocol_on_the_ribosome(tmp_path):
    vol = shared_path("ribosome70s", "vol_65.npy")
    res = run_cli(
        "simulate", "particles", "--protocol", "kapnulin2024", "--volume", vol,
        "--angpix", "5", "--inliers", "60", "--outliers", "60", "--snr", str(1 / 70),
        "-o", tmp_path / "k",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "k" / "simulation.json").read_text())
    assert summary["size_px"] == 33 and summary["box_px"] == 85
    assert abs(summary["snr_mean"] * 70 - 1) < 0.05


BAD_VOLUMES = [
    ("truncated.mrcs", "truncated"),
    ("empty.mrcs", "empty"),
    ("not_an_mrc.mrcs", "not an MRC"),
    ("bad_mode.mrcs", "mode"),
    ("huge_header.mrcs", ""),
    ("nan_images.mrcs", ""),
    ("good.mrcs", "cube"),
]


@pytest.mark.parametrize(("name", "words"), BAD_VOLUMES)
def test_bad_volumes_fail_in_one_line(tmp_path, name, words):
    out = tmp_path / "out"
    res = run_cli(
        "simulate", "particles", "--volume", shared_path("bad_inputs", name), "--angpix", "2",
        "-o", out,
    )  # fmt: skip
    assert_cli_rejects(res, name, words, out)


def test_npy_volume_needs_a_pixel_size(tmp_path):
    np.save(tmp_path / "v.npy", phantom_volume(24))
    res = run_cli("simulate", "particles", "--volume", tmp_path / "v.npy", "-o", tmp_path / "o")
    assert res.returncode == 2 and "--angpix" in res.stderr and "v.npy" in res.stderr
