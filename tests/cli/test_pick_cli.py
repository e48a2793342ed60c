"""``cryosift train``, ``pick`` and ``evaluate picks`` from the command line."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import BAD_MICROGRAPHS, assert_cli_rejects, run_cli, shared_path
from cryosift.io.coords import read_coords
from cryosift.io.star import read_star_blocks
from cryosift.simulate.micrographs import MicrographSimConfig, write_simulated_micrographs
from cryosift.simulate.volume import phantom_volume


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    cfg = MicrographSimConfig(n_micrographs=2, shape=(768, 1024), snr=3.0, seed=5)
    write_simulated_micrographs(phantom_volume(64), cfg, out)
    return out


def test_pick_writes_relion_outputs_and_resumes(sim, tmp_path):
    out = tmp_path / "picks"
    res = run_cli("pick", sim / "Micrographs", "--diameter-A", "88", "-o", out)
    assert res.returncode == 0, res.stderr
    files = sorted((out / "Coordinates").glob("*_autopick.star"))
    assert [f.name for f in files] == ["mic_001_autopick.star", "mic_002_autopick.star"]
    picks = read_coords(files[0])
    assert len(picks) > 10 and picks.score.between(0, 1).all()
    assert picks.x.between(0, 1023).all() and picks.y.between(0, 767).all()
    listing = read_star_blocks(out / "autopick.star")["coordinate_files"]
    assert list(listing.columns) == ["rlnMicrographName", "rlnMicrographCoordinates"]
    assert len(listing) == 2
    summary = pd.read_csv(out / "pick_summary.csv")
    assert set(summary.status) == {"picked"}
    assert (summary.picks + summary.below_threshold <= summary.candidates).all()
    # the survey learned a ranker, recorded for a resumed run
    state = json.loads((out / "pick_state.json").read_text())
    assert state["adapt"]["micrographs"] == 2 and "adaptation:" in res.stderr
    # and says what it took for a particle: the survey's classes, judged, in a picture
    classes = state["adapt"]["classes"]
    assert classes["particle_classes"] >= 1 and "2D classes" in res.stderr
    from PIL import Image

    with Image.open(out / "survey_classes.png") as im:
        im.load()
        assert im.format == "PNG"
    # two processes (the default here) and one give the same files, and the micrographs
    # given one by one (as the shell expands Micrographs/*.mrc) the same as the folder
    serial = tmp_path / "serial"
    files_given = sorted((sim / "Micrographs").glob("*.mrc"))
    assert len(files_given) == 2
    res = run_cli("pick", *files_given, "--diameter-A", "88", "-o", serial, "--jobs", "1")
    assert res.returncode == 0, res.stderr
    for f in files:
        assert (serial / "Coordinates" / f.name).read_bytes() == f.read_bytes()
    # a rerun skips both micrographs and leaves the picks unchanged
    before = files[0].read_bytes()
    again = run_cli("pick", sim / "Micrographs", "--diameter-A", "88", "-o", out)
    assert again.returncode == 0, again.stderr
    assert set(pd.read_csv(out / "pick_summary.csv").status) == {"resumed"}
    assert files[0].read_bytes() == before
    # evaluation against the simulation's truth
    ev = run_cli(
        "evaluate",
        "picks",
        out / "Coordinates",
        sim / "Coordinates",
        "--diameter-px",
        "44",
        "-o",
        tmp_path / "ev",
    )
    assert ev.returncode == 0, ev.stderr
    table = pd.read_csv(tmp_path / "ev" / "pick_metrics.csv")
    assert list(table.micrograph) == ["mic_001", "mic_002", "pooled"]
    assert (tmp_path / "ev" / "pr_curve.png").stat().st_size > 1000


def test_pick_threshold_keeps_fewer(sim, tmp_path):
    loose = run_cli(
        "pick",
        sim / "Micrographs" / "mic_001.mrc",
        "--diameter-px",
        "44",
        "--threshold",
        "0",
        "-o",
        tmp_path / "a",
    )
    strict = run_cli(
        "pick",
        sim / "Micrographs" / "mic_001.mrc",
        "--diameter-px",
        "44",
        "--threshold",
        "0.9",
        "-o",
        tmp_path / "b",
    )
    assert loose.returncode == 0 and strict.returncode == 0, loose.stderr + strict.stderr
    a = read_coords(tmp_path / "a" / "Coordinates" / "mic_001_autopick.star")
    b = read_coords(tmp_path / "b" / "Coordinates" / "mic_001_autopick.star")
    assert len(b) < len(a) and (b.score >= 0.9).all()
    # the default threshold's picks and the candidates it left out (counted in the summary)
    # are together what --threshold 0 writes; the output says how to get them
    default = run_cli("pick", sim / "Micrographs" / "mic_001.mrc", "--diameter-px", "44",
                      "-o", tmp_path / "c")  # fmt: skip
    assert default.returncode == 0, default.stderr
    c = read_coords(tmp_path / "c" / "Coordinates" / "mic_001_autopick.star")
    row = pd.read_csv(tmp_path / "c" / "pick_summary.csv").iloc[0]
    assert row.picks == len(c) and row.picks + row.below_threshold == len(a)
    assert row.below_threshold > 0
    assert "--threshold 0 writes them" in " ".join(default.stderr.split())


def test_train_from_shipped_model_then_pick(sim, tmp_path):
    model = tmp_path / "model"
    res = run_cli(
        "train",
        *sorted((sim / "Micrographs").glob("*.mrc")),
        "--diameter-A",
        "88",
        "-o",
        model,
        "--epochs",
        "2",
        "--warmup",
        "1",
        "--batch",
        "32",
    )
    assert res.returncode == 0, res.stderr
    assert (model / "model.pt").exists() and (model / "train_state.pt").exists()
    assert "loss" in res.stderr and "ranker:" in res.stderr
    from cryosift.picking.model import load_model

    # on two small micrographs the refitted k-means may leave too few candidates to learn a
    # ranking from (tests/picking/test_rank.py learns one); the model says which it has
    trained = load_model(model)
    if trained.ranker is None:
        assert "too few candidates" in res.stderr
    else:
        assert trained.ranker.info["micrographs"] == 2 and "pseudo-particles" in res.stderr
    out = tmp_path / "picks"
    res = run_cli("pick", sim / "Micrographs", "--diameter-A", "88", "--model", model, "-o", out)
    assert res.returncode == 0, res.stderr
    assert len(list((out / "Coordinates").glob("*.star"))) == 2


@pytest.mark.parametrize(("name", "words"), BAD_MICROGRAPHS)
def test_pick_rejects_bad_micrographs(tmp_path, name, words):
    out = tmp_path / "out"
    res = run_cli("pick", shared_path("bad_inputs", name), "--diameter-px", "20", "-o", out)
    assert_cli_rejects(res, name, words, out)


def test_pick_needs_a_pixel_size_for_angstroms(tmp_path):
    import numpy as np
    from PIL import Image

    png = tmp_path / "mic.png"
    Image.fromarray((np.random.default_rng(0).random((256, 256)) * 255).astype(np.uint8)).save(png)
    out = tmp_path / "out"
    res = run_cli("pick", png, "--diameter-A", "150", "-o", out)
    assert res.returncode == 2 and "--angpix" in res.stderr
    assert not out.exists()


def test_pick_missing_micrograph_and_bad_model(tmp_path):
    out = tmp_path / "out"
    res = run_cli("pick", tmp_path / "nope.mrc", "--diameter-px", "20", "-o", out)
    assert res.returncode == 2 and "nope.mrc" in res.stderr and not out.exists()
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "model.pt").write_bytes(b"not a model")
    good = shared_path("real_micrographs", "fei-extended.mrc")
    res = run_cli("pick", good, "--diameter-A", "150", "--model", bad, "-o", out)
    assert res.returncode == 2 and "model.pt" in res.stderr and not out.exists()


def test_keep_dark_areas_picks_on_the_carbon_film(tmp_path):
    """Picks on areas far darker than the micrograph (here a carbon film) are dropped by
    default, and counted in the summary; --keep-dark-areas keeps them, most particles on the
    film among them, besides every default pick, and the setting is recorded."""
    from conftest import simulated_picking_micrographs
    from cryosift.picking.pick import DARK_Z, darkness

    mics, d, paths = simulated_picking_micrographs(tmp_path, carbon=True)
    z = darkness(mics[0].image, d)
    truth = mics[0].coords[["x", "y"]].to_numpy()
    on_film = truth[z[truth[:, 1].astype(int), truth[:, 0].astype(int)] < -DARK_Z]
    assert len(on_film) >= 5  # the simulation puts particles on the film
    picks, left_out = {}, {}
    for flag in ((), ("--keep-dark-areas",)):
        out = tmp_path / f"out{len(flag)}"
        args = ("--diameter-px", f"{d}", "--no-adapt", "--threshold", "0", "-o", out)
        res = run_cli("pick", paths[0], *args, *flag)
        assert res.returncode == 0, res.stderr
        picks[bool(flag)] = read_coords(out / "Coordinates" / f"{paths[0].stem}_autopick.star")
        settings = json.loads((out / "pick_settings.json").read_text())
        assert settings["job"]["dark_z"] == (None if flag else DARK_Z)
        left_out[bool(flag)] = pd.read_csv(out / "pick_summary.csv").on_dark_areas.sum()
        row = re.search(r"left out on dark areas \(--keep-dark-areas\)\D*([\d,]+)", res.stderr)
        assert (row is None) == bool(flag)
        if row:
            assert int(row.group(1).replace(",", "")) == left_out[False]

    def found(c):  # particles on the film with a pick within half a diameter
        xy = c[["x", "y"]].to_numpy()
        return sum(np.hypot(*(xy - t).T).min() < d / 2 for t in on_film)

    default, kept = picks[False], picks[True]
    xy = default[["x", "y"]].to_numpy().round().astype(int)
    assert (z[xy[:, 1], xy[:, 0]] >= -DARK_Z).all()
    assert found(kept) >= 0.6 * len(on_film) > found(default)
    assert left_out[True] == 0 and left_out[False] >= len(kept) - len(default) > 0
    pairs = set(zip(default.x.round(1), default.y.round(1), strict=True))
    assert pairs <= set(zip(kept.x.round(1), kept.y.round(1), strict=True))


def test_no_adapt_keeps_the_map_score(sim, tmp_path):
    out = tmp_path / "plain"
    res = run_cli("pick", sim / "Micrographs", "--diameter-A", "88", "-o", out, "--no-adapt")
    assert res.returncode == 0, res.stderr
    assert "adaptation: off" in res.stderr
    state = json.loads((out / "pick_state.json").read_text())
    assert state["adapt"] is None and state["ranker"] is None
    assert not (out / "survey_classes.png").exists()


@pytest.mark.parametrize("command", ["pick", "train", "run"])
def test_several_paths_name_the_missing_one(tmp_path, command):
    """Several micrograph paths are taken as given; a missing one is named in one line: the
    error with --strict, else skipped while the others go on."""
    good = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype("uint8")).save(good)
    out = tmp_path / "out"
    args = (command, good, tmp_path / "missing.mrc", "--diameter-px", "20")
    res = run_cli(*args, "--strict", "-o", out)
    assert res.returncode == 2
    assert "missing.mrc" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli(*args, "-o", out)
    lines = [ln for ln in res.stderr.splitlines() if "skipped" in ln and "missing.mrc" in ln]
    assert lines and "micrograph not found" in lines[0], res.stderr


def test_example_coords_choose_the_cluster(sim, tmp_path):
    """The paper's mode (the cluster covering most annotated particles of one micrograph)
    finds the same particle cluster as the survey on a clear simulation; an example without
    picks, or of a micrograph not given, is one line naming the file."""
    mic = sim / "Micrographs" / "mic_001.mrc"
    common = ("--diameter-px", "44", "--no-adapt")
    ours = run_cli("pick", mic, *common, "-o", tmp_path / "ours")
    paper = run_cli("pick", mic, *common, "--example-coords", sim / "Coordinates" / "mic_001.star",
                    "-o", tmp_path / "paper")  # fmt: skip
    assert ours.returncode == 0 and paper.returncode == 0, ours.stderr + paper.stderr
    state = [json.loads((tmp_path / d / "pick_state.json").read_text()) for d in ("ours", "paper")]
    assert state[0]["cluster"] == state[1]["cluster"]
    empty = shared_path("bad_inputs", "coords_empty.star")
    res = run_cli("pick", mic, *common, "--example-coords", empty, "-o", tmp_path / "e")
    assert_cli_rejects(res, "coords_empty.star", "zero picks", tmp_path / "e")
    other = run_cli("pick", mic, *common, "--example-coords", sim / "Coordinates" / "mic_002.star",
                    "-o", tmp_path / "o")  # fmt: skip
    assert_cli_rejects(other, "mic_002.star", "not among those given", tmp_path / "o")
