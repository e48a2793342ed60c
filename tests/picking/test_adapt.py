"""Adaptation inside every run: blob features, the blob-aware ranker, the survey and the
ranker learned on it, deterministic per seed and skipped when labels are too few."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import recorded_progress, simulated_picking_micrographs
from cryosift.evaluate.picks import evaluate_picks
from cryosift.picking.adapt import (
    default_cut,
    job_from_state,
    learn_ranker,
    picks_trusted,
    prepare_picking,
    radial_doubt,
    radial_probability,
    ranker_json,
    survey_steps,
)
from cryosift.picking.blobs import NAMES, blob_features
from cryosift.picking.model import load_model
from cryosift.picking.rank import Ranker, candidate_features, fit_ranker
from cryosift.picking.run import PickJob, embed_image, pick_image


def _discs(shape, centres, diameter, rng, noise=0.3):
    """A noisy image ``shape`` with dark discs of ``diameter`` px at ``centres`` (row, col)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0, noise, shape)
    for r, c in centres:
        image[(rows - r) ** 2 + (cols - c) ** 2 <= (diameter / 2) ** 2] -= 1.0
    return image


def test_blob_features_find_discs_and_ignore_intensity_units():
    """A particle-sized dark disc stands out of the background on every LoG channel, and an
    affine change of the intensity units (gain > 0, offset) changes no feature."""
    rng = np.random.default_rng(0)
    d = 40.0
    centres = np.array([[100, 100], [100, 300], [300, 200], [400, 400]])
    image = _discs((512, 512), centres, d, rng)
    background = rng.integers(60, 450, size=(200, 2))
    far = np.min(np.hypot(*(background[:, None] - centres[None]).transpose(2, 0, 1)), axis=1) > d
    background = background[far]
    f_disc = blob_features(image, centres, d)
    f_bg = blob_features(image, background, d)
    assert f_disc.shape == (4, len(NAMES))
    for k in range(3):  # the LoG channels: dark blobs respond positively
        assert f_disc[:, k].min() > np.percentile(f_bg[:, k], 95)
    assert f_disc[:, 3].max() < f_bg[:, 3].min() + 1e-6 or f_disc[:, 3].mean() < -1  # dark
    np.testing.assert_allclose(blob_features(3.0 * image + 7.0, centres, d), f_disc, atol=1e-4)
    assert blob_features(image, np.zeros((0, 2)), d).shape == (0, len(NAMES))


def test_blob_features_carry_across_pixel_sizes():
    """The same discs imaged at twice the pixel count (diameter doubled) give nearly the same
    features: they are computed at a scale set by the particle, not by the pixel."""
    rng = np.random.default_rng(1)
    centres = np.array([[80, 80], [80, 200], [200, 140], [150, 60]])
    points = np.concatenate([centres, rng.integers(40, 216, size=(30, 2))])
    small = _discs((256, 256), centres, 24.0, rng, noise=0.05)
    big = _discs((512, 512), 2 * centres + 0.5, 48.0, rng, noise=0.05)
    a = blob_features(small, points, 24.0)
    b = blob_features(big, 2 * points + 0.5, 48.0)
    for k in range(len(NAMES)):
        assert np.corrcoef(a[:, k], b[:, k])[0, 1] > 0.9, NAMES[k]


def test_blob_ranker_projects_first_and_survives_json():
    """With blob weights, the fast path equals the logistic of the decision on the full
    features; the JSON record of a run reads back into the same ranker."""
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(40, 30, 8)).astype(np.float32)
    rc = rng.integers(0, [160, 120], size=(25, 2))
    blobs = rng.normal(size=(25, len(NAMES)))
    ranker = Ranker(rng.normal(size=8), 0.3, {"n": 1}, rng.normal(size=len(NAMES)))
    fast = ranker.probability(emb, rc, 4, 27.0, blobs)
    full = np.concatenate([candidate_features(emb, rc, 4, 27.0), blobs], axis=1)
    np.testing.assert_allclose(fast, 1 / (1 + np.exp(-ranker.decision(full))), rtol=1e-5)
    with pytest.raises(ValueError, match="blob features"):
        ranker.probability(emb, rc, 4, 27.0)
    back = Ranker.from_dict(json.loads(json.dumps(ranker_json(ranker))))
    np.testing.assert_allclose(back.probability(emb, rc, 4, 27.0, blobs), fast)
    assert ranker_json(None) is None


def test_fit_ranker_splits_embedding_and_blob_weights():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6))
    truth = x[:, 0] + 2 * x[:, 5] > 0
    ranker = fit_ranker(x, truth, ~truth, n_blob=2)
    assert ranker.weights.shape == (4,) and ranker.blob_weights.shape == (2,)
    assert ranker.blob_weights[1] > 0 and ranker.weights[0] > 0
    assert np.mean((ranker.decision(x) > 0) == truth) > 0.9


def test_default_cut_follows_the_classes_and_falls_back_to_every_candidate():
    """Scores that tell the particle classes' members from the rest give the cut that keeps
    about them; scores unrelated to them fall back to keeping every candidate (threshold 0)
    and say so."""
    rng = np.random.default_rng(0)
    pi = (rng.random(800) < 0.4).astype(float)
    info: dict = {}
    _, threshold = default_cut(3.0 * pi + rng.normal(size=800), pi, info)
    assert threshold is None and info["default"].startswith("probability 0.5")
    assert info["keep_share"] == pytest.approx(0.4, abs=0.08)
    assert info["expected_f1"] > info["expected_f1_every_candidate"] + 0.2
    info = {}
    _, threshold = default_cut(rng.normal(size=800), pi, info)
    assert threshold == 0.0 and info["default"] == "every candidate: weak ranking"
    # classes that cannot tell (pi unrelated to the scores), but scores in two clear humps,
    # the upper a minority: a sparse field, cut between the humps
    sparse = np.r_[rng.normal(0, 1, 680), rng.normal(5, 1, 120)]
    info = {}
    cut, threshold = default_cut(sparse, rng.permutation(pi), info)
    assert threshold is None and "two humps" in info["default"]
    assert np.mean(sparse >= cut) == pytest.approx(0.15, abs=0.02)
    assert info["score_separation"] > 4 and info["upper_hump"] == pytest.approx(0.15, abs=0.02)


def test_clear_humps_overrule_classes_that_take_background_for_particles():
    """A sparse field whose classes call 90 % of the candidates particles (their best cut
    is worth making, and keeps 90 %) while the scores hold a clear hump of 15 %: the cut
    falls between the humps, and the other classifications are never asked for. Where the
    classes' cut keeps about the upper hump, the classes' cut stands."""
    rng = np.random.default_rng(5)
    sparse = np.r_[rng.normal(0, 1, 680), rng.normal(5, 1, 120)]
    background = (sparse >= np.quantile(sparse, 0.1)).astype(float)
    asked: list = []
    info: dict = {}
    cut, threshold = default_cut(sparse, background, info, lambda: asked.append(1) or [])
    assert threshold is None and "two humps" in info["default"] and not asked
    assert info["keep_share"] == pytest.approx(0.9, abs=0.02)
    assert np.mean(sparse >= cut) == pytest.approx(0.15, abs=0.02)
    agreeing = (sparse >= np.quantile(sparse, 0.82)).astype(float)
    info = {}
    cut, threshold = default_cut(sparse, agreeing, info, lambda: [agreeing] * 4)
    assert threshold is None and "best expected cut" in info["default"]
    assert np.mean(sparse >= cut) == pytest.approx(0.18, abs=0.01)


def test_a_hump_smaller_than_one_class_does_not_cut():
    """Two clear humps whose upper one holds 2 % of the candidates, under one class's share
    of 24: no sparse field (a rare kind of candidate, e.g. ice, that one class could hold);
    the classes' cut stands. The same scores with no such floor cut between the humps."""
    rng = np.random.default_rng(7)
    score = np.r_[rng.normal(0, 1, 980), rng.normal(8, 1, 20)]
    pi = (score > np.quantile(score, 0.5)).astype(float)
    info: dict = {}
    cut, threshold = default_cut(score, pi, info, lambda: [pi] * 4, min_hump=1 / 24)
    assert threshold is None and "best expected cut" in info["default"]
    assert np.mean(score >= cut) == pytest.approx(0.5, abs=0.02)
    info = {}
    cut, _ = default_cut(score, pi, info, lambda: [pi] * 4)
    assert "two humps" in info["default"]
    assert np.mean(score >= cut) == pytest.approx(0.02, abs=0.005)


def test_a_hump_outside_the_particle_classes_is_not_the_particles():
    """Two clear humps, the upper 10 % of the candidates, classes that cannot judge the
    ranking: where the hump's candidates sit in particle classes more often than the rest
    (particles of a sparse field) the cut falls between the humps; where less often (ice
    crystals scoring high), every candidate is kept and the record says why. Without the
    classes' membership the humps cut as before."""
    rng = np.random.default_rng(8)
    score = np.r_[rng.normal(0, 1, 900), rng.normal(6, 1, 100)]
    hump = np.arange(1000) >= 900
    pi = rng.permutation(np.r_[np.ones(400), np.zeros(600)])
    outcomes = {}
    for label, in_particle in (
        ("particles", np.where(hump, rng.random(1000) < 0.8, rng.random(1000) < 0.3)),
        ("crystals", np.where(hump, rng.random(1000) < 0.3, rng.random(1000) < 0.6)),
        ("unknown", None),
    ):
        info: dict = {}
        cut, threshold = default_cut(score, pi, info, in_particle=in_particle)
        outcomes[label] = (np.mean(score >= cut), threshold, info)
    assert outcomes["particles"][1] is None and outcomes["particles"][0] == pytest.approx(
        0.1, abs=0.02
    )
    assert "two humps" in outcomes["particles"][2]["default"]
    assert outcomes["crystals"][1] == 0.0 and "two humps" not in outcomes["crystals"][2]["default"]
    info = outcomes["crystals"][2]
    assert info["hump_in_particle_classes"] < info["in_particle_classes"]
    assert "not the particles" in info["hump_not_particles"]
    assert "two humps" in outcomes["unknown"][2]["default"]
    # the cleaner trusts picks cut between the humps, and no others
    assert "two clear humps" in picks_trusted(outcomes["particles"][2])
    assert picks_trusted(info) is None and picks_trusted(None) is None


def test_default_cut_keeps_the_median_of_the_classifications_proposals():
    """Classifications that put the particles at different shares: the cut keeps the
    median share; the other classifications are asked for only when a cut is made."""
    rng = np.random.default_rng(4)
    score = np.sort(rng.normal(size=1000))[::-1]
    shares = [0.20, 0.30, 0.25, 0.40, 0.35]  # the first is not the median
    pis = [(np.arange(1000) < 1000 * f).astype(float) for f in shares]
    info: dict = {}
    cut, threshold = default_cut(score, pis[0], info, lambda: pis[1:])
    assert threshold is None and info["keep_share"] == pytest.approx(0.30, abs=0.005)
    assert np.mean(score >= cut) == pytest.approx(0.30, abs=0.005)
    assert info["proposed_keep_shares"] == pytest.approx(shares, abs=0.005)
    asked = []
    info = {}
    _, threshold = default_cut(score, np.full(1000, 0.5), info, lambda: asked.append(1) or pis)
    assert threshold == 0.0 and not asked and "proposed_keep_shares" not in info


def test_classifications_that_place_no_cut_do_not_move_it():
    """Of five classifications, two see no cut worth making (their best cut keeps every
    candidate): the cut keeps the median share of the three that place one, not of all
    five (which would be the loosest of the three); the record keeps all five proposals."""
    rng = np.random.default_rng(5)
    score = np.sort(rng.normal(size=1000))[::-1]
    shares = [0.20, 0.30, 0.25]
    pis = [(np.arange(1000) < 1000 * f).astype(float) for f in shares]
    flat = np.full(1000, 0.5)  # no ranking: the best cut keeps everything
    info: dict = {}
    cut, threshold = default_cut(score, pis[0], info, lambda: [flat, pis[1], flat, pis[2]])
    assert threshold is None and info["keep_share"] == pytest.approx(0.25, abs=0.005)
    assert np.mean(score >= cut) == pytest.approx(0.25, abs=0.005)
    assert info["proposed_keep_shares"] == pytest.approx([0.20, 1.0, 0.30, 1.0, 0.25], abs=0.005)


def test_radial_second_opinion_cuts_only_where_the_classes_cannot_judge():
    """Classes that cannot judge the ranking (pi unrelated to it), crowded (no clear hump),
    and single boxes whose radial scores form two groups that follow the ranking: the cut
    falls where the radial profiles put it (about the upper group's 40 %); radial scores
    unrelated to the ranking, or constant, leave every candidate kept; where the classes
    do judge, the radial opinion is not used; nor where it calls the candidates of the
    classes' particle classes junk (it follows contrast there, not the particle)."""
    rng = np.random.default_rng(6)
    particle = rng.random(800) < 0.4
    score = 1.5 * particle + rng.normal(size=800)  # one bump, no clear humps
    radial = np.where(particle, 3.0, -3.0) + rng.normal(size=800)
    q = radial_probability(radial)
    assert q.shape == (800,) and q[particle].mean() > 0.9 and q[~particle].mean() < 0.1
    assert radial_probability(np.ones(10)) is None
    assert radial_probability(np.r_[np.nan, radial[:5]]) is None
    unrelated = rng.permutation(particle).astype(float)
    info: dict = {}
    cut, threshold = default_cut(score, unrelated, info, radial=q)
    assert threshold is None and "radial profiles' best expected cut" in info["default"]
    assert np.mean(score >= cut) == pytest.approx(info["radial_keep_share"], abs=0.002)
    assert 0.25 < info["radial_keep_share"] < 0.6 and info["radial_expected_gain"] > 0.05
    info = {}
    _, threshold = default_cut(score, unrelated, info, radial=rng.permutation(q))
    assert threshold == 0.0 and info["default"] == "every candidate: weak ranking"
    info = {}
    _, threshold = default_cut(score, particle.astype(float), info, radial=1 - q)
    assert threshold is None and "radial" not in info["default"]
    assert "radial_keep_share" not in info
    # the same opinion, where the classes' particle classes hold what it calls junk: not heeded
    info = {}
    _, threshold = default_cut(score, unrelated, info, radial=q, in_particle=~particle)
    assert threshold == 0.0 and "mean probability" in info["default"]
    assert info["radial_on_particle_classes"] < 0.5
    info = {}
    _, threshold = default_cut(score, unrelated, info, radial=q, in_particle=particle)
    assert threshold is None and info["radial_on_particle_classes"] > 0.9


def test_radial_doubt_follows_the_surveys_agreement():
    """The survey doubts the radial profiles (and says why, with the number) exactly when it
    asked them and they called its particle classes' candidates particles with mean
    probability under RADIAL_AGREES; as the cut itself does (same record)."""
    rng = np.random.default_rng(6)
    particle = rng.random(800) < 0.4
    score = 1.5 * particle + rng.normal(size=800)
    q = radial_probability(np.where(particle, 3.0, -3.0) + rng.normal(size=800))
    unrelated = rng.permutation(particle).astype(float)
    assert radial_doubt(None) is None and radial_doubt({}) is None
    for in_particle, doubted in ((~particle, True), (particle, False)):
        info: dict = {}
        default_cut(score, unrelated, info, radial=q, in_particle=in_particle)
        why = radial_doubt(info)
        assert (why is not None) == doubted
        if doubted:
            assert f"{info['radial_on_particle_classes']:.2f}" in why and "under 0.50" in why
    assert radial_doubt({"radial_on_particle_classes": 0.5}) is None
    assert "0.49" in radial_doubt({"radial_on_particle_classes": 0.49})


def test_combined_ranker_is_the_standardised_sum_less_the_cut():
    """The one ranker a run keeps scores a candidate by its standardised template match plus
    its standardised learned log-odds, less the cut: probability 0.5 exactly at the cut."""
    from cryosift.picking.adapt import combined_ranker, standardised_sum
    from cryosift.picking.classes import ClassJudgement, SurveyClasses

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4 + len(NAMES)))
    learned = Ranker(rng.normal(size=4), 0.3, {}, rng.normal(size=len(NAMES)))
    matches = rng.normal(0.3, 0.05, 300)
    combined, scales = standardised_sum([matches, learned.decision(x)])
    judgement = ClassJudgement(np.array([9]), np.ones(1), np.zeros(1), np.ones(1), ["particle"],
                               np.zeros(3), True)  # fmt: skip
    classes = SurveyClasses(np.ones((1, 8, 8)), np.zeros(300, int), judgement, 0.0)
    one = combined_ranker(learned, classes, scales, 0.7, x.shape[1])
    np.testing.assert_allclose(one.decision(x, matches), combined - 0.7, atol=1e-9)
    assert one.uses_templates and one.templates.shape == (1, 8, 8)
    with pytest.raises(ValueError, match="template matches"):
        one.decision(x)
    back = Ranker.from_dict(json.loads(json.dumps(ranker_json(one))))
    np.testing.assert_allclose(back.decision(x, matches), one.decision(x, matches), atol=1e-9)
    np.testing.assert_array_equal(back.templates, one.templates)
    alone = combined_ranker(None, classes, scales[:1], 0.0, x.shape[1])  # no learned ranker
    expected = (matches - scales[0][0]) / scales[0][1]
    np.testing.assert_allclose(alone.decision(x, matches), expected, atol=1e-9)


def test_no_particle_class_keeps_every_candidate(simulated, monkeypatch):
    """When the survey's classes hold no particle class, adaptation learns no ranking from
    them and the default keeps every candidate, saying why."""
    import cryosift.picking.adapt as adapt_module
    from cryosift.picking.classes import ClassJudgement, SurveyClasses

    def junk_only(boxes, seed=0, device="cpu"):
        k = 3
        j = ClassJudgement(np.full(k, len(boxes) // k), np.ones(k), np.full(k, 5.0),
                           np.zeros(k), ["line or edge"] * k, np.zeros(2), True)  # fmt: skip
        labels = np.arange(len(boxes)) % k
        return SurveyClasses(np.zeros((k, *boxes.shape[1:])), labels, j, 0.0)

    monkeypatch.setattr(adapt_module, "classify_survey", junk_only)
    mics, d, _ = simulated
    model = load_model()
    job = PickJob(diameter=d, cluster=prepare_cluster(model, mics, d))
    seen = [(m.image, embed_image(model, m.image, d)) for m in mics]
    ranker, info, threshold, classes = learn_ranker(model, seen, job)
    assert ranker is None and threshold == 0.0
    assert info["default"] == "every candidate: no particle class"
    assert classes.judgement.particle.sum() == 0


def prepare_cluster(model, mics, d) -> int:
    from cryosift.picking.run import cluster_from_survey

    return cluster_from_survey(model, [embed_image(model, m.image, d) for m in mics], d)[0]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    return simulated_picking_micrographs(tmp_path_factory.mktemp("adapt"))


def test_adaptation_picks_well_and_is_deterministic_per_seed(simulated):
    """The survey's cluster and ranker, learned without annotation, pick the simulated
    micrographs well at the default threshold; the same seed gives the same ranker and
    picks, the picks of the surveyed micrographs equal what picking them again gives. Its
    progress: a step per micrograph surveyed and one at the end, as announced."""
    mics, d, paths = simulated
    model = load_model()
    keyed = {m.name: p for m, p in zip(mics, paths, strict=True)}
    tasks, progress = recorded_progress()
    job, picks, state, classes = prepare_picking(
        model, keyed, PickJob(diameter=d, cluster=-1), progress=progress
    )
    total, *steps = tasks["survey"]
    assert len(steps) == sum(steps) == total == survey_steps(len(keyed)) == len(keyed) + 1
    assert job.ranker is not None and state["ranker"] is not None
    info = state["adapt"]
    assert info["micrographs"] == 2 and info["positives"] >= 20 and info["negatives"] >= 20
    assert classes is not None and info["classes"]["particle_classes"] >= 1
    again_job, again, again_state, _ = prepare_picking(
        model, keyed, PickJob(diameter=d, cluster=-1)
    )
    np.testing.assert_array_equal(again_job.ranker.all_weights, job.ranker.all_weights)
    assert again_state["ranker"] == state["ranker"]
    for name in picks:
        assert picks[name].equals(again[name])
    truth = {m.name: m.coords[["x", "y"]] for m in mics}
    kept = {k: v[v.keep] for k, v in picks.items()}
    assert evaluate_picks(kept, truth, d).iloc[-1].f1 >= 0.9
    # a resumed run rebuilds the job from the recorded state and picks the same
    resumed = job_from_state(PickJob(diameter=d, cluster=-1), json.loads(json.dumps(state)))
    for m in mics:
        repicked = pick_image(model, m.image, resumed)
        np.testing.assert_allclose(repicked.score, picks[m.name].score, rtol=1e-9, atol=1e-12)
        assert (repicked.keep == picks[m.name].keep).all()


def test_too_few_labels_learn_no_ranker(simulated, tmp_path):
    """On a micrograph of pure noise the survey finds too few pseudo-labels: no ranker is
    learned, the state says so, candidates keep the particle map's score and the default
    falls back to keeping every candidate."""
    from cryosift.io.mrc import write_stack

    _, d, _ = simulated
    model = load_model()
    noise = np.random.default_rng(4).normal(size=(256, 256)).astype(np.float32)
    job = PickJob(diameter=d, cluster=0)
    ranker, info, threshold, _ = learn_ranker(model, [(noise, embed_image(model, noise, d))], job)
    assert ranker is None and threshold == 0.0
    assert info["positives"] < 20 or info["negatives"] < 20
    assert info["default"].startswith("every candidate")
    write_stack(tmp_path / "noise.mrc", noise, 2.0)
    job, picks, state, _ = prepare_picking(
        model, {"noise": tmp_path / "noise.mrc"}, PickJob(diameter=d, cluster=-1)
    )
    assert job.ranker is None and state["ranker"] is None and state["adapt"] is not None
    assert job.threshold == 0.0 and state["threshold"] == 0.0
    assert picks["noise"].score.between(0, 1).all()
    assert picks["noise"].keep.sum() == picks["noise"].passes.sum()  # every candidate kept
    # a threshold the user gives wins over the adapted default, also when resumed
    given = job_from_state(PickJob(diameter=d, cluster=-1, threshold=0.7), state)
    assert given.threshold == 0.7
