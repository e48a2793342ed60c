"""The class vote on constructed stacks: one asymmetric particle in many orientations (a third
of them with a neighbour touching the box edge), lines through the box (carbon edges) and
empty boxes. Classes of lines and of empty boxes are junk; particles the radial profile
rejects but that fit a particle class are kept; junk the radial profile keeps but that sits
in a junk class and fits no particle class is removed; the vote is deterministic per seed."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from conftest import recorded_progress
from cryosift.classify.align import ClassifySettings, assign, classify, classify_steps
from cryosift.classify.judge import OFF_CENTRE
from cryosift.classify.run import classify_run_particles, sample_rows
from cryosift.classify.vote import (
    NOISE_PASS,
    ClassVote,
    class_vote,
    combine,
    fit_pvalues,
    join_rest,
    particle_classes,
    vote_figure,
    vote_note,
    vote_on_images,
    vote_titles,
    wanted,
)
from cryosift.io.mrc import write_stack
from cryosift.io.particles import read_particles
from cryosift.outliers.clean import clean_images
from cryosift.simulate.toy import blob_particle

N, R = 48, 11.0  # box side and particle radius, px (a box of about two diameters)
COUNTS = {"particle": 160, "crowded": 80, "line": 60, "empty": 60}


def _shape() -> np.ndarray:
    return blob_particle(N, (N // 2, N // 2), R, np.random.default_rng(7))


def _step(angle: float, offset: float) -> np.ndarray:
    yy, xx = np.indices((N, N)) - N // 2
    return np.where(np.cos(angle) * xx + np.sin(angle) * yy > offset, 0.8, -0.8)


def constructed_stack(seed: int = 0, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(B, N, N)`` images and their kinds ``(B,)`` (:data:`COUNTS`); a crowded particle's
    neighbour is centred two radii away (touching it), cut by the box edge."""
    rng = np.random.default_rng(seed)
    shape = _shape()
    images, kinds = [], []
    for kind, n in COUNTS.items():
        for _ in range(n):
            if kind in ("particle", "crowded"):
                img = ndimage.rotate(shape, rng.uniform(0, 360), reshape=False, order=1)
                if kind == "crowded":
                    other = ndimage.rotate(shape, rng.uniform(0, 360), reshape=False, order=1)
                    phi = rng.uniform(0, 2 * np.pi)
                    img = img + ndimage.shift(other, (2 * R * np.sin(phi), 2 * R * np.cos(phi)),
                                              order=1)  # fmt: skip
            elif kind == "line":
                img = _step(rng.uniform(0, np.pi), rng.uniform(-4, 4))
            else:
                img = np.zeros((N, N))
            images.append(img + rng.normal(0, noise, (N, N)))
            kinds.append(kind)
    return np.asarray(images, np.float32), np.asarray(kinds)


@pytest.fixture(scope="module")
def classified():
    images, kinds = constructed_stack()
    result = classify(images, ClassifySettings(classes=12, radius=R, seed=0))
    return images, kinds, result


def test_line_and_empty_classes_are_junk_particle_classes_are_not(classified):
    _, kinds, result = classified
    counts = np.bincount(result.labels, minlength=len(result.averages))
    particle, kind = particle_classes(result.averages, counts, R)
    is_particle = np.isin(kinds, ["particle", "crowded"])
    for c in np.flatnonzero(counts >= 5):
        members = is_particle[result.labels == c]
        if members.mean() > 0.9:
            assert particle[c], (c, kind[c])
        elif members.mean() < 0.1:
            assert not particle[c], (c, kind[c])
    assert {"line or edge", "empty"} & set(np.array(kind)[~particle])


def test_fit_separates_particles_from_junk(classified):
    """Against the particle classes, almost every particle (crowded too) fits better than
    all but NOISE_PASS of noise; empty boxes no more often than noise does. (A line fits a
    blob-like matched filter as well as a particle: its class, not its fit, removes it.)"""
    images, kinds, result = classified
    vote = class_vote(images, result, R, seed=0)
    fits = vote.fits
    assert fits[kinds == "particle"].mean() >= 0.95
    assert fits[kinds == "crowded"].mean() >= 0.9
    assert fits[kinds == "empty"].mean() <= 2 * NOISE_PASS


def test_the_vote_picture_names_each_class_by_its_number_size_and_kind(classified):
    """Each class is titled with the number users see it by, its size and its kind (junk by
    what its average shows); the picture frames particle classes green and junk red."""
    images, _, result = classified
    numbers = np.arange(len(result.averages), 0, -1)  # shown in the reverse order
    vote = class_vote(images, result, R, seed=0, numbers=numbers)
    counts = np.bincount(result.labels, minlength=len(result.averages))
    titles = vote_titles(vote)
    assert titles == [f"{n}: {c}\n{k}" for n, c, k in zip(numbers, counts, vote.kind, strict=True)]
    assert {"line or edge", "empty"} & {t.split("\n")[1] for t in titles}
    assert vote.particle.any() and not vote.particle.all()
    buf = io.BytesIO()
    vote_figure(vote, buf)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert ((g > 140) & (r < 80) & (b < 80)).sum() > 50  # green frames (#2ca02c)
    assert ((r > 180) & (g < 80) & (b < 80)).sum() > 50  # red frames (#d62728)


def _table(verdicts: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"verdict": verdicts, "reason": np.full(len(verdicts), "radial says")})


def test_rescues_particles_the_radial_profile_rejects(classified):
    """Crowded particles called partial or multiple alone are kept by their class, and the
    reason says so; the rest is untouched."""
    images, kinds, result = classified
    vote = class_vote(images, result, R, seed=0)
    verdicts = np.where(kinds == "crowded", "partial", "inlier")
    verdicts[kinds == "empty"] = "noise"
    table = _table(verdicts)
    combine(table, vote)
    crowded = table[kinds == "crowded"]
    assert (crowded.verdict == "inlier").mean() >= 0.9
    assert crowded[crowded.decided_by == "class"].reason.str.startswith("kept by its class").all()
    assert (table.verdict[kinds == "empty"] == "noise").mean() >= 1 - 2 * NOISE_PASS
    assert vote.changed[0] == int((table.decided_by == "class").sum() - vote.changed[1])


def test_removes_junk_the_radial_profile_keeps(classified):
    """Lines kept by the radial profile but sorted into classes whose average shows a line,
    and empty boxes in empty classes that fit no particle class, are removed by their
    class."""
    images, kinds, result = classified
    vote = class_vote(images, result, R, seed=0)
    table = _table(np.full(len(kinds), "inlier"))
    combine(table, vote)
    junk = np.isin(kinds, ["line", "empty"])
    assert (table.verdict[junk] == "noise").mean() >= 0.8
    removed = table[junk & (table.verdict == "noise")]
    assert removed.reason.str.startswith("removed by its class").all()
    assert set(removed.class_kind) <= {"line or edge", "empty", "rare strong blob"}
    assert (table.verdict[np.isin(kinds, ["particle", "crowded"])] == "inlier").mean() >= 0.97


def test_vote_on_radial_verdicts_improves_them(classified):
    """End to end on the stack: the radial detector's verdicts, then the vote; the particles
    kept do not fall, the junk removed does not fall."""
    images, kinds, result = classified
    table = clean_images(images, R)
    is_particle = np.isin(kinds, ["particle", "crowded"])
    before = table.verdict.to_numpy() == "inlier"
    combine(table, class_vote(images, result, R, seed=0))
    after = table.verdict.to_numpy() == "inlier"
    assert after[is_particle].mean() >= max(before[is_particle].mean(), 0.95)
    assert (~after[~is_particle]).mean() >= (~before[~is_particle]).mean() - 0.05


def test_vote_on_images_is_the_vote_on_its_classification_and_shows_its_steps(classified):
    """``cryosift clean``'s path (classify, then vote) gives the verdicts of the vote on the
    same classification, and its classification's steps reach a "class vote" task."""
    images, _, result = classified
    expected = clean_images(images, R)
    combine(expected, class_vote(images, result, R, seed=0))
    tasks, progress = recorded_progress()
    table = clean_images(images, R)
    vote_on_images(images, table, R, classes=12, seed=0, progress=progress)
    pd.testing.assert_frame_equal(table, expected)
    total, *steps = tasks["class vote"]
    assert total == classify_steps(ClassifySettings()) and sum(steps) == total


def test_deterministic_per_seed_and_noise_seed_matters(classified):
    images, _, result = classified
    a = class_vote(images, result, R, seed=3).fit_p
    b = class_vote(images, result, R, seed=3).fit_p
    c = class_vote(images, result, R, seed=4).fit_p
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_abstains_from_removing_where_the_classes_show_nothing(classified):
    """Particles at a contrast where almost no image fits a particle class: the vote abstains
    from removing (every radial inlier stays, lines included), still keeps the radial rejects
    that fit a particle class, and the summary and note say so."""
    images, kinds = constructed_stack(noise=6.0)
    result = classify(images, ClassifySettings(classes=12, radius=R, seed=0))
    vote = class_vote(images, result, R, seed=0)
    assert vote.abstains and vote.fits.mean() < 0.5
    table = _table(np.where(kinds == "crowded", "partial", "inlier"))
    before = table.verdict.to_numpy(str).copy()
    combine(table, vote)
    after = table.verdict.to_numpy(str)
    by_class = table.decided_by.to_numpy(str) == "class"
    assert (after[before == "inlier"] == "inlier").all()
    assert np.array_equal(by_class, (before != "inlier") & vote.fits & vote.in_particle_class)
    assert by_class.any() and (after[by_class] == "inlier").all()
    assert (after[~by_class] == before[~by_class]).all()
    summary = vote.summary()
    assert summary["abstained"] and summary["removed_by_class"] == 0
    assert summary["kept_by_class"] == by_class.sum()
    note = vote_note({"class_vote": summary})
    assert note.startswith("class vote abstained from removing")
    assert f"{by_class.sum()} image(s) that fit one kept" in note
    assert not class_vote(*classified[::2], R).abstains


def test_an_abstaining_vote_keeps_what_the_loosened_radial_threshold_keeps():
    """When the vote abstains, the classes cannot confirm what the radial threshold removes:
    radial rejects the loosened threshold would keep (``kept_if_loosened``) are kept, with a
    reason that says why, and counted; the others stay out. A vote that speaks ignores the
    column, and a table without it is judged as before."""
    labels = np.repeat([0, 1], [5, 5])
    verdicts = np.array(["inlier"] * 4 + ["noise", "partial", "noise", "multiple", "noise",
                         "inlier"])  # fmt: skip
    loose = np.array([True] * 4 + [True, True, False, True, False, True])
    for fit_p, kept in ((np.full(10, 0.5), [0, 1, 2, 3, 4, 5, 7, 9]),
                        (np.full(10, 0.01), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])):  # fmt: skip
        vote = ClassVote(labels, fit_p, np.array([True, True]), ["particle"] * 2, 0.0,
                         np.array([1, 2]))  # fmt: skip
        table = _table(verdicts)
        table["kept_if_loosened"] = loose
        combine(table, vote)
        assert np.flatnonzero(table.verdict == "inlier").tolist() == kept
    abstaining = ClassVote(labels, np.full(10, 0.5), np.array([True, True]), ["particle"] * 2,
                           0.0, np.array([1, 2]))  # fmt: skip
    table = _table(verdicts)
    table["kept_if_loosened"] = loose
    combine(table, abstaining)
    assert abstaining.abstains and abstaining.loosened == 3
    assert table.reason[[4, 5, 7]].str.startswith("kept as the class vote abstained").all()
    assert "alone it was partial: radial says" in table.reason[5]
    assert (table.decided_by[[4, 5, 7]] == "class").all() and table.reason[6] == "radial says"
    summary = abstaining.summary()
    assert summary["kept_by_loosening"] == 3 and summary["kept_by_class"] == 0
    assert "and 3 that the radial threshold loosened keeps" in vote_note({"class_vote": summary})
    bare = _table(verdicts)
    combine(bare, abstaining)
    assert np.flatnonzero(bare.verdict == "inlier").tolist() == [0, 1, 2, 3, 9]


def test_an_abstaining_vote_leaves_out_loosened_rejects_that_fit_like_noise():
    """Where the radial inliers fit a particle class far more often than noise and its
    rejects as often as noise or hardly more (fit ratio in [0, NOISE_LIKE_FIT)), the classes
    say the rejects are unlike the inliers: with ``noise_like_out`` (``cryosift run``) the
    loosened threshold's rejects stay out, counted and said; without it (``cryosift clean``),
    with the rejects fitting half as well as the inliers above noise, or less often than
    noise, they are kept as before."""
    labels = np.zeros(40, int)
    verdicts = np.array(["inlier"] * 20 + ["noise"] * 20)
    loose = np.r_[np.ones(20, bool), np.ones(10, bool), np.zeros(10, bool)]
    inlier_fit = np.r_[np.full(9, 0.01), np.full(11, 0.5)]  # 45 % of the inliers fit
    kept_of = {}
    for n_fit in (0, 2, 6):  # of 20 rejects: ratio -0.1 / 0.35 < 0 (not read), 0, 0.2 / 0.35
        reject_fit = np.r_[np.full(20 - n_fit, 0.5), np.full(n_fit, 0.01)]
        vote = ClassVote(labels, np.r_[inlier_fit, reject_fit], np.array([True]), ["particle"],
                         0.0, np.array([1]))  # fmt: skip
        assert vote.abstains
        table = _table(verdicts)
        table["kept_if_loosened"] = loose
        bare = table.copy()
        combine(table, vote, noise_like_out=True)
        kept_of[n_fit] = np.flatnonzero(table.verdict == "inlier")
        summary = vote.summary()
        assert summary["reject_fit_ratio"] == pytest.approx((n_fit / 20 - 0.1) / 0.35, abs=1e-4)
        if n_fit == 2:
            assert vote.loosened == 0 and vote.not_loosened == 10
            assert "10 that the loosened threshold keeps left out" in vote_note(
                {"class_vote": summary}
            )
        combine(bare, vote)  # cryosift clean: no survey to guard the reading, kept as before
        assert (bare.verdict == "inlier").sum() == 30 + n_fit and vote.not_loosened == 0
    assert kept_of[0].tolist() == [*range(30)]  # fitting less than noise: the fit says nothing
    # rejects 38, 39 fit a particle class and are rescued either way
    assert kept_of[2].tolist() == [*range(20), 38, 39]
    assert kept_of[6].tolist() == [*range(30), 34, 35, 36, 37, 38, 39]


def test_an_abstaining_vote_keeps_every_image_when_the_radial_profiles_are_doubted():
    """With no vote to trust (the classes abstain, the picker's survey doubts the radial
    profiles), nothing is removed: the loosened threshold's images are kept as before, every
    other radial reject too, with a reason that says why, and counted apart. A vote that
    speaks is deaf to the doubt."""
    labels = np.repeat([0, 1], [5, 5])
    verdicts = np.array(["inlier"] * 4 + ["noise", "partial", "noise", "multiple", "noise",
                         "inlier"])  # fmt: skip
    loose = np.array([True] * 4 + [True, True, False, True, False, True])
    doubt = "the picker's survey doubts the radial profiles (0.02)"
    abstaining = ClassVote(labels, np.full(10, 0.5), np.array([True, True]), ["particle"] * 2,
                           0.0, np.array([1, 2]))  # fmt: skip
    table = _table(verdicts)
    table["kept_if_loosened"] = loose
    combine(table, abstaining, doubt)
    assert (table.verdict == "inlier").all()
    assert abstaining.loosened == 3 and abstaining.doubted == 2
    assert (
        table.reason[[6, 8]].str.startswith(f"kept as the class vote abstained and {doubt}").all()
    )
    assert "alone it was noise: radial says" in table.reason[6]
    assert table.reason[4].startswith("kept as the class vote abstained: the radial threshold")
    assert (table.decided_by[4:9] == "class").all()
    summary = abstaining.summary()
    assert summary["kept_as_radial_profiles_doubted"] == 2
    assert "2 more kept, as the picker's survey doubts" in vote_note({"class_vote": summary})
    for fit_p in (np.full(10, 0.01), np.r_[np.full(5, 0.01), np.full(5, 0.5)]):
        verdicts_of = []
        for why in (None, doubt):
            vote = ClassVote(labels, fit_p, np.array([True, False]), ["particle", "empty"], 0.0,
                             np.array([1, 2]))  # fmt: skip
            t = _table(verdicts)
            t["kept_if_loosened"] = loose
            combine(t, vote, why)
            assert not vote.abstains and vote.doubted == 0
            verdicts_of.append(t.verdict.tolist())
        assert verdicts_of[0] == verdicts_of[1]


def test_trusted_picks_keep_their_radial_rejects_unless_their_class_is_junk_too():
    """Where the picks were cut between two clear humps of the picker's scores, a radial
    reject is kept whether the vote speaks or abstains, with a reason, ``decided_by``
    ``picker`` and a count; a reject in a junk class it does not fit stays out, a radial
    inlier in such a class is still removed, and without the trust nothing changes."""
    labels = np.repeat([0, 1], [8, 4])  # class 2 (label 1) is empty: junk
    verdicts = np.array(["inlier"] * 5 + ["noise", "partial", "noise"] + ["noise"] * 2
                        + ["inlier"] * 2)  # fmt: skip
    trust = "the picks are the upper of two clear humps"
    for speaks in (True, False):
        fit_p = np.r_[np.full(6, 0.01), np.full(6, 0.5)] if speaks else np.full(12, 0.5)
        kept = {}
        for why in (None, trust):
            vote = ClassVote(labels, fit_p, np.array([True, False]), ["particle", "empty"], 0.0,
                             np.array([1, 2]))  # fmt: skip
            assert vote.abstains != speaks
            table = _table(verdicts)
            combine(table, vote, picks_trusted=why)
            kept[why] = np.flatnonzero(table.verdict == "inlier").tolist()
            picker = np.flatnonzero(table.decided_by == "picker")
            assert vote.trusted == len(picker) == vote.summary()["kept_as_picks_trusted"]
            assert table.reason[picker].str.startswith(f"kept as {trust}; alone it was").all()
            if why is not None:
                note = vote_note({"class_vote": vote.summary()})
                assert f"{len(picker)} radial reject(s) kept, as the picks are the upper" in note
        if speaks:
            # 5 rescued by its fit either way; 6, 7 kept only by the trust; 8, 9 (the empty
            # class, no fit) stay out; 10, 11 (radial inliers there) removed by their class
            assert kept[None] == [*range(6)] and kept[trust] == [*range(8)]
        else:  # nothing removed; every radial reject kept by the trust
            assert kept[None] == [0, 1, 2, 3, 4, 10, 11] and kept[trust] == [*range(12)]


def test_off_centre_class_removes_only_members_that_fit_no_particle_class():
    """Radial inliers in a class of off-centre structure (weak particles beside a neighbour)
    are removed only when they fit no particle class, and the reason names the class's kind;
    the same images in a line or edge class are all removed."""
    labels = np.repeat([0, 1], [6, 4])
    fit_p = np.array([0.01] * 6 + [0.01, 0.05, 0.5, 0.9])
    for kind, removed in ((OFF_CENTRE, [8, 9]), ("line or edge", [6, 7, 8, 9])):
        vote = ClassVote(labels, fit_p, np.array([True, False]), ["particle", kind], 0.0,
                         np.array([1, 2]))  # fmt: skip
        assert not vote.abstains
        table = _table(np.full(10, "inlier"))
        combine(table, vote)
        assert np.flatnonzero(table.verdict != "inlier").tolist() == removed
        why = f"removed by its class: class 2 is {kind}"
        assert table.reason[removed].str.startswith(why).all()
        assert vote.changed == (0, len(removed))


def test_a_radial_reject_whose_centre_stands_out_is_kept_in_a_particle_class():
    """Images the radial discriminant rejects (a neighbour fills their outer rings) that sit
    in a particle class are kept when their own z-score passes the first guess (z >= 1.28)
    even if they fit no class better than noise, and the reason says which vote decided;
    below it, or in a junk class, they stay out; without a z column nothing changes."""
    labels = np.repeat([0, 1], [6, 4])
    fit_p = np.array([0.01, 0.01, 0.5, 0.5, 0.5, 0.5, 0.01, 0.5, 0.5, 0.5])
    z = np.array([3.0, 3.0, 2.0, 1.3, 0.5, -1.0, 3.0, 2.0, 2.0, 2.0])
    verdicts = np.array(["inlier", "inlier"] + ["partial"] * 4 + ["inlier"] + ["noise"] * 3)
    vote = ClassVote(labels, fit_p, np.array([True, False]), ["particle", "empty"], 0.0,
                     np.array([1, 2]))  # fmt: skip
    table = _table(verdicts)
    table["profile_z"] = z
    combine(table, vote)
    assert np.flatnonzero(table.verdict == "inlier").tolist() == [0, 1, 2, 3, 6]
    assert table.reason[2].startswith("kept by its class: class 1 shows the particle")
    assert "its radial z-score 2.00 >= 1.28" in table.reason[2]
    # the empty class's radial inlier fits a particle class: it stays; the rest stay out
    assert (table.verdict[7:] == "noise").all()
    without = _table(verdicts)
    combine(without, vote)
    assert np.flatnonzero(without.verdict == "inlier").tolist() == [0, 1, 6]


def test_a_radial_inlier_whose_centre_stands_out_is_not_removed_by_a_blob_or_empty_class():
    """The rescue's mirror: radial inliers in a junk class (empty, a round blob) that fit no
    particle class are removed only when their own z-score is under the first guess (z <
    1.28), and the reason says both; a line or edge removes its members whatever their
    z-score; without a z column the fit alone decides, as before."""
    labels = np.repeat([0, 1], [8, 6])
    fit_p = np.array([0.01] * 8 + [0.5] * 6)
    z = np.array([3.0] * 8 + [2.5, 1.3, 1.29, 1.0, -0.5, np.nan])
    junk = list(range(8, 14))
    for kind in ("empty", "round blob", "line or edge"):
        vote = ClassVote(labels, fit_p, np.array([True, False]), ["particle", kind], 0.0,
                         np.array([1, 2]))  # fmt: skip
        assert not vote.abstains
        table = _table(np.full(14, "inlier"))
        table["profile_z"] = z
        combine(table, vote)
        removed = np.flatnonzero(table.verdict != "inlier").tolist()
        assert removed == (junk if kind == "line or edge" else [11, 12, 13]), kind
        if kind != "line or edge":
            assert "its radial z-score 1.00 < 1.28" in table.reason[11]
            assert "z-score" not in table.reason[13]  # none to give
        without = _table(np.full(14, "inlier"))
        combine(without, vote)
        assert np.flatnonzero(without.verdict != "inlier").tolist() == junk


def test_no_template_fits_nothing():
    images, _ = constructed_stack(noise=1.0)
    assert (fit_pvalues(images[:5], np.zeros((0, N, N)), R) == 1).all()


def test_when_clean_classifies():
    assert wanted("moderate", None) and wanted("LOW", None) and wanted("none", None)
    assert not wanted("good", None)
    assert wanted("good", 8) and not wanted("LOW", 0)


def test_assigning_to_fixed_averages_is_the_classification_in_any_rotation(classified):
    """Images given to their classification's own averages land in their own classes; turned
    by 90 degrees, they land in a class of the same kind, and those of a lone particle that
    stay in their class are found turned by 90 degrees more (to the 5-degree step, in
    noise)."""
    images, kinds, result = classified
    settings = ClassifySettings(classes=12, radius=R, seed=0)
    same = assign(images, result.averages, settings)
    assert (same.labels == result.labels).mean() >= 0.95
    assert np.array_equal(same.averages, result.averages) and same.counts.sum() == len(images)
    turned = assign(np.rot90(images, 1, axes=(1, 2)).copy(), result.averages, settings)
    particle, _ = particle_classes(result.averages, result.counts, R)
    assert (particle[turned.labels] == particle[same.labels]).mean() >= 0.95
    stay = (turned.labels == same.labels) & (kinds == "particle")  # one particle, no neighbour
    turn = (turned.psi[stay] - same.psi[stay] + 180) % 360 - 180
    assert stay.sum() > 0.5 * (kinds == "particle").sum()
    # np.rot90 turns counter-clockwise as displayed, as psi does
    assert abs(np.median(turn) - 90) <= 5 and np.mean(np.abs(turn - 90) <= 15) >= 0.8


def test_a_classified_sample_joined_by_the_rest_votes_as_the_whole_does(tmp_path):
    """``cryosift run`` beyond its classification's limit: half the stack classified, the
    other half joins its classes and is fitted; every image gets a class and a fit, the
    sample's own are kept, and the vote's verdicts are as good as with every image
    classified; deterministic."""
    images, kinds = constructed_stack()
    write_stack(tmp_path / "stack.mrcs", images, 2.0)
    pset = read_particles(tmp_path / "stack.mrcs")
    whole = classify_run_particles(pset, R / N, 12, seed=0)
    part = classify_run_particles(pset, R / N, 12, seed=0, limit=len(images) // 2)
    assert whole is not None and part is not None
    assert not whole.sampled and part.sampled and len(part.rows) == len(images) // 2
    verdicts = {}
    for name, found in (("whole", whole), ("sample", part)):
        result, vote = found.result, class_vote(found.images, found.result, found.radius, seed=0)
        if found.sampled:
            tasks, progress = recorded_progress()
            joined = (pset, found.rows, found.images, found.sample)
            result, vote = join_rest(*joined, vote, seed=0, progress=progress)
            again = join_rest(*joined, class_vote(found.images, found.result, R), seed=0)[1]
            assert np.array_equal(again.fit_p, vote.fit_p)
            assert np.array_equal(result.labels[found.rows], found.sample.labels)
            total, *steps = tasks["joining the classes"]
            assert total == sum(steps) == 1
        assert len(result.labels) == len(vote.fit_p) == len(images)
        assert result.counts.sum() == len(images)
        table = clean_images(images, R)
        combine(table, vote)
        verdicts[name] = table.verdict.to_numpy() == "inlier"
    particle = np.isin(kinds, ["particle", "crowded"])
    for kept in verdicts.values():
        assert kept[particle].mean() >= 0.95 and (~kept[~particle]).mean() >= 0.8
    assert (verdicts["whole"] == verdicts["sample"]).mean() >= 0.95


def test_a_sample_is_spread_over_the_whole_set():
    """The classified sample: every row when there are few, else evenly spaced rows."""
    assert np.array_equal(sample_rows(7, 10), np.arange(7))
    rows = sample_rows(1_000_000, 50_000)
    assert len(rows) == 50_000 and rows[0] == 0 and rows[-1] == 999_999
    assert np.ptp(np.diff(rows)) <= 1


def test_clean_votes_with_a_sample_beyond_its_limit(tmp_path, monkeypatch):
    """``cryosift clean``'s vote over a particle file classifies an evenly spaced sample
    once the file holds more than :data:`cryosift.classify.run.MAX_CLASSIFIED` particles,
    and its line says so; every particle still gets its class and fit, and the verdicts stay
    good."""
    from cryosift.classify import run
    from cryosift.classify.vote import vote_on_particles
    from cryosift.outliers.clean import CleanConfig, clean_particles

    images, kinds = constructed_stack()
    write_stack(tmp_path / "stack.mrcs", images, 2.0)
    pset = read_particles(tmp_path / "stack.mrcs")
    cfg = CleanConfig(radius_px=R, size=N)
    kept = {}
    for limit in (len(images), len(images) // 3):
        monkeypatch.setattr(run, "MAX_CLASSIFIED", limit)
        result = clean_particles(pset, cfg)
        vote = vote_on_particles(pset, result, classes=12, seed=0)
        assert vote is not None and len(vote.labels) == len(vote.fit_p) == len(images)
        kept[limit] = result.table.verdict.to_numpy() == "inlier"
        assert result.stats["class_vote"]["classes"] == 12
        said = f"sample of {limit:,} of the {len(images):,} images"
        assert (said in vote_note(result.stats)) == (limit < len(images))
    particle = np.isin(kinds, ["particle", "crowded"])
    for k in kept.values():
        assert k[particle].mean() >= 0.95 and (~k[~particle]).mean() >= 0.8
    assert (kept[len(images)] == kept[len(images) // 3]).mean() >= 0.95
