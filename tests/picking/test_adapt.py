"""Adaptation inside every run: blob features, the blob-aware ranker, the survey and the
ranker learned on it, deterministic per seed and skipped when labels are too few."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import simulated_picking_micrographs
from cryosift.evaluate.picks import evaluate_picks
from cryosift.picking.adapt import (
    CROWDED_SHARE,
    CROWDED_WEAK_KEEP,
    WEAK_SEPARATION,
    centred_on_split,
    job_from_state,
    learn_ranker,
    lenient_when_crowded_and_weak,
    prepare_picking,
    ranker_json,
    separation,
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


def test_centred_on_split_moves_the_threshold_to_the_mixture_split_or_the_lower_one():
    """Two clusters of log-odds, split near their midpoint: the plain rule moves the bias so
    that probability 0.5 falls at the split; the lenient rule moves it only when the split
    lies below the ranker's own 0.5, and then to the same place."""
    rng = np.random.default_rng(0)
    ranker = Ranker(np.zeros(3), 0.0, {})
    for centre in (2.0, -2.0):  # the split lies near +2 or near -2
        logits = np.concatenate(
            [rng.normal(centre - 3, 0.5, 300), rng.normal(centre + 3, 0.5, 300)]
        )
        plain = centred_on_split(ranker, logits)
        lenient = centred_on_split(ranker, logits, lenient=True)
        split = plain.info["split_logit"]
        assert abs(split - centre) < 1.0 and plain.bias == pytest.approx(-split, abs=1e-4)
        assert lenient.bias == pytest.approx(-min(split, 0.0), abs=1e-4)
        assert lenient.info["bias_shift"] == pytest.approx(min(split, 0.0), abs=1e-4)


def test_separation_tells_one_hump_from_two():
    """One Gaussian hump of log-odds reads as weak, two humps 3 and 6 sd apart as clear;
    the measure does not depend on the units (scale and offset) of the log-odds."""
    rng = np.random.default_rng(1)
    one = rng.normal(0, 1, 3000)
    two = np.concatenate([rng.normal(-1.5, 1, 1500), rng.normal(1.5, 1, 1500)])
    far = np.concatenate([rng.normal(-3, 1, 1500), rng.normal(3, 1, 1500)])
    assert separation(one) < WEAK_SEPARATION < separation(two) < separation(far)
    assert separation(4 * two - 7) == pytest.approx(separation(two), rel=1e-6)
    assert separation(np.ones(50)) == np.inf and separation(one[:5]) == np.inf


def test_crowded_field_with_a_weak_ranking_keeps_most_candidates():
    """Only a crowded field (the map keeps at least CROWDED_SHARE) with a weak ranking (one
    hump) moves 0.5 down, to keep CROWDED_WEAK_KEEP of the candidates; a clear ranking, a
    sparse field, or a threshold that already keeps more leave the ranker as it was."""
    rng = np.random.default_rng(2)
    ranker = Ranker(np.zeros(3), 0.4, {"bias_shift": 0.1})
    weak = rng.normal(-0.5, 1, 4000)
    moved = lenient_when_crowded_and_weak(ranker, weak, CROWDED_SHARE + 0.05)
    assert moved.info["crowded_weak"] and moved.info["separation"] < WEAK_SEPARATION
    kept = (weak + (moved.bias - ranker.bias)) >= 0  # the same candidates under the new bias
    assert kept.mean() == pytest.approx(CROWDED_WEAK_KEEP, abs=1e-3)
    assert moved.info["bias_shift"] == pytest.approx(0.1 + (ranker.bias - moved.bias), abs=1e-3)
    clear = np.concatenate([rng.normal(-3, 1, 2000), rng.normal(3, 1, 2000)])
    for logits, share in ((clear, 0.6), (weak, CROWDED_SHARE - 0.05), (weak + 5, 0.6)):
        same = lenient_when_crowded_and_weak(ranker, logits, share)
        assert same.bias == ranker.bias and same.info["bias_shift"] == 0.1
    assert not lenient_when_crowded_and_weak(ranker, clear, 0.6).info["crowded_weak"]
    assert lenient_when_crowded_and_weak(ranker, weak + 5, 0.6).info["crowded_weak"]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    return simulated_picking_micrographs(tmp_path_factory.mktemp("adapt"))


def test_adaptation_picks_well_and_is_deterministic_per_seed(simulated):
    """The survey's cluster and ranker, learned without annotation, pick the simulated
    micrographs well at the default threshold; the same seed gives the same ranker and
    picks, the picks of the surveyed micrographs equal what picking them again gives."""
    mics, d, paths = simulated
    model = load_model()
    keyed = {m.name: p for m, p in zip(mics, paths, strict=True)}
    job, picks, state = prepare_picking(model, keyed, PickJob(diameter=d, cluster=-1))
    assert job.ranker is not None and state["ranker"] is not None
    info = state["adapt"]
    assert info["micrographs"] == 2 and info["positives"] >= 20 and info["negatives"] >= 20
    again_job, again, again_state = prepare_picking(model, keyed, PickJob(diameter=d, cluster=-1))
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
    learned, the state says so, and candidates keep the particle map's score."""
    from cryosift.io.mrc import write_stack

    _, d, _ = simulated
    model = load_model()
    noise = np.random.default_rng(4).normal(size=(256, 256)).astype(np.float32)
    job = PickJob(diameter=d, cluster=0)
    ranker, info = learn_ranker(model, [(noise, embed_image(model, noise, d))], job)
    assert ranker is None
    assert info["positives"] < 20 or info["negatives"] < 20
    write_stack(tmp_path / "noise.mrc", noise, 2.0)
    job, picks, state = prepare_picking(
        model, {"noise": tmp_path / "noise.mrc"}, PickJob(diameter=d, cluster=-1)
    )
    assert job.ranker is None and state["ranker"] is None and state["adapt"] is not None
    assert picks["noise"].score.between(0, 1).all()
