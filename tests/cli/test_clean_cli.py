"""``cryosift clean`` end to end: outputs on good input, one-line errors and no files on bad."""

import numpy as np
import pandas as pd
import pytest
import starfile
from PIL import Image

from conftest import (
    BAD_PARTICLES,
    GOOD_PARTICLES,
    assert_cli_rejects,
    disc_stack,
    run_cli,
    shared_path,
)
from cryosift.simulate.toy import write_toy_dataset

#: What each command that reads particles needs besides the input (bad-input test below).
PARTICLE_COMMANDS = {"clean": ("--diameter-px", "12"), "classify": ("--classes", "2")}


@pytest.mark.parametrize("command", sorted(PARTICLE_COMMANDS))
@pytest.mark.parametrize("name, words", BAD_PARTICLES)
def test_bad_input_one_line_exit_2_no_output(tmp_path, name, words, command):
    """``clean`` and ``classify`` on each broken particles file: one line naming the file
    and the problem, exit 2, nothing written."""
    out = tmp_path / "out"
    args = PARTICLE_COMMANDS[command]
    res = run_cli(command, shared_path("bad_inputs", name), *args, "-o", out)
    assert_cli_rejects(res, name, words, out)


@pytest.mark.parametrize("name", GOOD_PARTICLES)
def test_good_inputs_succeed(tmp_path, name):
    out = tmp_path / "out"
    res = run_cli("clean", shared_path("bad_inputs", name), "--diameter-px", "12", "-o", out)
    assert res.returncode == 0, res.stderr
    scores = pd.read_csv(out / "scores.csv")
    assert np.isfinite(scores.select_dtypes("number").to_numpy()).all()
    n_in = (
        len(starfile.read(out / "inliers.star", always_dict=True)["particles"])
        if (scores["verdict"] == "inlier").any()
        else 0
    )
    assert n_in == int((scores["verdict"] == "inlier").sum())
    if name == "constant_images.mrcs":
        assert (
            scores.loc[scores["reason"].str.contains("blank", na=False), "verdict"] == "noise"
        ).all()
        assert scores["reason"].str.contains("blank", na=False).sum() == 2


def test_radius_that_does_not_fit(tmp_path):
    res = run_cli(
        "clean", shared_path("bad_inputs", "good.mrcs"), "--diameter-px", "40", "-o", tmp_path / "o"
    )
    assert res.returncode == 2 and "does not fit" in res.stderr
    assert not (tmp_path / "o").exists()


def test_diameter_without_pixel_size(tmp_path):
    res = run_cli(
        "clean",
        shared_path("bad_inputs", "constant_images.mrcs"),
        "--diameter-A",
        "50",
        "-o",
        tmp_path / "o",
    )
    assert res.returncode == 2 and "--angpix" in res.stderr


def test_clean_toy_star_outputs_feed_relion(tmp_path):
    star = write_toy_dataset(tmp_path / "toy", n_inliers=80, n_per_outlier_type=20, seed=1)
    out = tmp_path / "clean"
    res = run_cli("clean", star, "--diameter-A", "48", "-o", out)  # 12 px radius at 2 A/px
    assert res.returncode == 0, res.stderr
    assert "images/s" in res.stderr + res.stdout
    scores = pd.read_csv(out / "scores.csv")
    truth = pd.read_csv(tmp_path / "toy" / "truth.csv")
    assert len(scores) == len(truth) == 140
    inl = starfile.read(out / "inliers.star", always_dict=True)
    outl = starfile.read(out / "outliers.star", always_dict=True)
    # same optics block, disjoint image names that together cover the input
    orig = starfile.read(star, always_dict=True)
    pd.testing.assert_frame_equal(inl["optics"], orig["optics"])
    names = set(inl["particles"]["rlnImageName"]) | set(outl["particles"]["rlnImageName"])
    assert names == set(orig["particles"]["rlnImageName"])
    assert not set(inl["particles"]["rlnImageName"]) & set(outl["particles"]["rlnImageName"])
    kept_truth = truth.set_index("particle").loc[
        scores.loc[scores.verdict == "inlier", "particle"], "truth"
    ]
    # far purer than the input (80 of 140 are true particles)
    assert (kept_truth == "inlier").mean() > 0.7


def test_cryosparc_input_writes_cs_subsets(tmp_path):
    cs = shared_path("particle_stacks", "empiar_10076_7.cs")
    res = run_cli("clean", cs, "--diameter-A", "250", "-o", tmp_path / "o")
    assert res.returncode == 0, res.stderr
    inl = np.load(tmp_path / "o" / "inliers.cs")
    outl = np.load(tmp_path / "o" / "outliers.cs")
    assert len(inl) + len(outl) == 7 and inl.dtype == outl.dtype
    assert "phase flip on" in res.stderr + res.stdout


def test_reference_preset_runs_on_relion30(tmp_path):
    star = shared_path("particle_stacks", "sample_relion_data.star")
    res = run_cli(
        "clean", star, "--diameter-A", "150", "--rules", "reference", "-o", tmp_path / "o"
    )
    assert res.returncode == 0, res.stderr
    out = starfile.read(tmp_path / "o" / "inliers.star", always_dict=True)
    assert list(out) == ["model_class_1"]


def test_polarity_option(tmp_path):
    """Dark particles (an inverted toy stack) are found dark and cleaned like bright ones;
    a polarity that is not auto, bright or dark is refused before anything is written."""
    star = write_toy_dataset(tmp_path / "toy", n_inliers=80, n_per_outlier_type=20, seed=2)
    bright = run_cli("clean", star, "--diameter-A", "48", "-o", tmp_path / "bright")
    assert bright.returncode == 0, bright.stderr
    assert "particles bright" in bright.stdout + bright.stderr
    forced = run_cli(
        "clean", star, "--diameter-A", "48", "--polarity", "dark", "-o", tmp_path / "dark"
    )
    assert forced.returncode == 0 and "particles dark" in forced.stdout + forced.stderr
    a = pd.read_csv(tmp_path / "bright" / "scores.csv")
    b = pd.read_csv(tmp_path / "dark" / "scores.csv")
    assert (a.n_clusters != b.n_clusters).any()  # the peak rules saw the other contrast
    bad = run_cli("clean", star, "--diameter-A", "48", "--polarity", "up", "-o", tmp_path / "x")
    assert bad.returncode == 2 and "--polarity" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_summary_states_separability_and_warns_of_a_wrong_size(tmp_path):
    """The toy stack at its true size: separability stated, no warning; at half the
    diameter: one warning with both sizes; --eps-px outside the reference preset: a note."""
    star = write_toy_dataset(tmp_path / "toy", n_inliers=80, n_per_outlier_type=20, seed=3)
    right = run_cli("clean", star, "--diameter-A", "48", "-o", tmp_path / "a")
    assert right.returncode == 0, right.stderr
    text = " ".join((right.stderr + right.stdout).split())
    assert "separability" in text and "warning" not in text
    half = run_cli("clean", star, "--diameter-A", "24", "--eps-px", "3", "-o", tmp_path / "b")
    assert half.returncode == 0, half.stderr
    text = " ".join((half.stderr + half.stdout).split())
    assert "warning: particle diameter given 12.0 px (24 Å)" in text
    assert "--eps-px applies to the reference preset only" in text


def test_strict_keeps_the_usual_threshold(tmp_path):
    """A stack whose particles stand out of noise only moderately: by default the summary
    says the threshold was loosened and more is kept; --strict keeps the usual one (the
    class vote left out, to see the threshold alone)."""
    import mrcfile

    images, truth = disc_stack(600, 300, sigma=2.0, seed=401)
    stack = tmp_path / "moderate.mrcs"
    with mrcfile.new(stack) as m:
        m.set_data(images)
    kept = {}
    for flags in ((), ("--strict-threshold",)):
        out = tmp_path / ("strict" if flags else "default")
        res = run_cli("clean", stack, "--diameter-px", "16", "--size", "41", "--no-classes", *flags,
                      "-o", out)  # fmt: skip
        assert res.returncode == 0, res.stderr
        text = " ".join((res.stderr + res.stdout).split())
        assert ("separability moderate" in text) == (not flags), text
        verdict = pd.read_csv(out / "scores.csv").verdict.to_numpy()
        kept[bool(flags)] = (verdict == "inlier")[truth == "inlier"].mean()
    assert kept[False] >= 0.95 > kept[True], kept


def test_class_vote_where_separability_is_not_good(tmp_path):
    """The moderate stack: by default the classes vote (the summary says how many images
    they kept or removed; scores.csv says which vote decided); ``--no-classes`` and
    ``--classes 0`` give the radial profile's verdicts exactly, and those are the vote's
    wherever the radial profile decided. Images the class kept fit a particle class; those
    it removed sit in junk classes."""
    import mrcfile

    images, truth = disc_stack(600, 300, sigma=2.0, seed=401)
    stack = tmp_path / "moderate.mrcs"
    with mrcfile.new(stack) as m:
        m.set_data(images)
    scores, texts = {}, {}
    for name, flags in {"auto": (), "none": ("--no-classes",), "zero": ("--classes", "0")}.items():
        out = tmp_path / name
        res = run_cli("clean", stack, "--diameter-px", "16", "--size", "41", *flags, "-o", out)
        assert res.returncode == 0, res.stderr
        texts[name] = " ".join((res.stderr + res.stdout).split())
        scores[name] = pd.read_csv(out / "scores.csv")
    assert "class vote:" in texts["auto"] and "class vote:" not in texts["none"]
    pd.testing.assert_frame_equal(scores["none"], scores["zero"])
    assert "decided_by" not in scores["none"]
    voted, radial = scores["auto"], scores["none"]
    by_radial = voted.decided_by == "radial"
    assert (voted.verdict[by_radial] == radial.verdict[by_radial]).all()
    assert (voted.verdict[~by_radial] != radial.verdict[~by_radial]).all()
    assert (~by_radial).sum() > 0
    kept = voted[~by_radial & (voted.verdict == "inlier")]
    removed = voted[~by_radial & (voted.verdict != "inlier")]
    assert (kept.class_fit_p <= 0.1).all() and (kept.class_kind == "particle").all()
    assert (removed.class_kind != "particle").all()
    assert len(truth) == len(voted)


def test_classes_forced_on_a_clear_stack(tmp_path):
    """A clear stack is not classified by default; ``--classes 4`` makes the vote run."""
    import mrcfile

    images, _ = disc_stack(600, 60, sigma=1.2, seed=402)
    stack = tmp_path / "clear.mrcs"
    with mrcfile.new(stack) as m:
        m.set_data(images)
    auto = run_cli("clean", stack, "--diameter-px", "16", "--size", "41", "-o", tmp_path / "a")
    forced = run_cli("clean", stack, "--diameter-px", "16", "--size", "41", "--classes", "4",
                     "-o", tmp_path / "f")  # fmt: skip
    assert auto.returncode == 0 and forced.returncode == 0, auto.stderr + forced.stderr
    assert "separability good" in " ".join((auto.stderr + auto.stdout).split())
    assert "decided_by" not in pd.read_csv(tmp_path / "a" / "scores.csv")
    assert "decided_by" in pd.read_csv(tmp_path / "f" / "scores.csv")
    # the classes that voted, in a picture; none without a vote, and a rerun without one
    # into the same folder does not leave the old picture behind
    assert not (tmp_path / "a" / "class_vote.png").exists()
    with Image.open(tmp_path / "f" / "class_vote.png") as im:
        im.load()
        assert im.format == "PNG" and im.size[0] > 100
    again = run_cli("clean", stack, "--diameter-px", "16", "--size", "41", "--no-classes",
                    "-o", tmp_path / "f")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "f" / "class_vote.png").exists()
