"""The candidate ranker: disc means, its fast path, the folded scaler, learning through noisy
pseudo-labels, and the ranker that ``train_ranker`` learns on simulated micrographs."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import simulated_picking_micrographs
from cryosift.evaluate.picks import evaluate_picks
from cryosift.picking.model import load_model, save_model
from cryosift.picking.rank import (
    MIN_LABELS,
    Ranker,
    box_stack,
    candidate_features,
    detector_box,
    disc_means,
    fit_ranker,
)


def test_disc_means_match_a_brute_force_mean():
    """Every token within the radius, and only those on the grid, enter the mean."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(12, 15, 3))
    tokens = np.array([[0, 0], [5, 7], [11, 14], [3, 0], [11, 2]])
    radius = 2.5
    got = disc_means(values, tokens, radius)
    rows, cols = np.mgrid[:12, :15]
    for (r, c), g in zip(tokens, got, strict=True):
        inside = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
        np.testing.assert_allclose(g, values[inside].mean(0), rtol=1e-6)
    # a single channel map gives the same as the channel of a stacked one
    np.testing.assert_allclose(disc_means(values[..., 1], tokens, radius), got[:, 1], rtol=1e-6)


def test_probability_projects_first_and_equals_the_feature_path():
    """Scoring projects the embeddings to one channel before averaging over the disc; by
    linearity it must equal the logistic of the decision on the full disc-mean features."""
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 30, 8)).astype(np.float32)
    ranker = Ranker(rng.normal(size=8), 0.3)
    rc = rng.integers(0, [160, 120], size=(25, 2))  # preprocessed px, tokens of 4 px
    fast = ranker.probability(emb, rc, 4, 27.0)
    slow = 1 / (1 + np.exp(-ranker.decision(candidate_features(emb, rc, 4, 27.0))))
    np.testing.assert_allclose(fast, slow, rtol=1e-5)
    assert ranker.probability(emb, np.empty((0, 2), int), 4, 27.0).shape == (0,)


def test_fit_ranker_folds_the_scaler_into_its_weights():
    """The folded linear map equals scikit-learn's standardise-then-regress pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from cryosift.picking.rank import C

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 6)) * [1, 10, 0.1, 5, 2, 1] + [0, 3, -2, 0, 1, 100]
    y = x[:, 0] + 0.1 * x[:, 1] + rng.normal(size=300) > 0.3
    neg = ~y
    neg[:20] = False  # unlabelled candidates are left out of the fit
    pos = y.copy()
    pos[:20] = False
    ranker = fit_ranker(x, pos, neg)
    use = pos | neg
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    ref.fit(x[use], pos[use])
    np.testing.assert_allclose(ranker.decision(x), ref.decision_function(x), atol=1e-6)
    assert ranker.info["positives"] == pos.sum()
    # too few of either kind: no ranker
    few = np.zeros(300, bool)
    few[: MIN_LABELS - 1] = True
    assert fit_ranker(x, few, ~few) is None


def test_ranker_learns_through_noisy_pseudo_labels():
    """Labels from another view that are wrong a third of the time still teach the direction
    that carries the truth: the ranking beats the labels it learned from."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    n = 4000
    truth = rng.random(n) < 0.6
    x = rng.normal(size=(n, 20))
    x[:, 3] += 1.5 * truth  # the particle direction
    flip = rng.random(n) < 0.33
    label = truth ^ flip
    ranker = fit_ranker(x, label, ~label)
    auc = roc_auc_score(truth, ranker.decision(x))
    assert auc > 0.8
    assert auc > roc_auc_score(truth, label) + 0.1
    assert np.argmax(np.abs(ranker.weights)) == 3


@pytest.mark.parametrize(
    ("diameter", "size", "radius"), [(108.0, 55, 54 * 55 / 162), (20.0, 30, 10)]
)
def test_box_stack_centres_the_particle(diameter, size, radius):
    """Boxes of 1.5 diameters, Fourier-cropped to 55 px only when larger; the dark disc at
    the pick is at the box centre, and a box over the edge is padded, not refused."""
    image = np.zeros((600, 500), np.float32)
    yy, xx = np.mgrid[:600, :500]
    image[(yy - 300) ** 2 + (xx - 200) ** 2 <= (diameter / 2) ** 2] = -1.0
    boxes = box_stack(image, np.array([[200.0, 300.0], [5.0, 5.0]]), diameter)
    assert boxes.shape == (2, size, size) and boxes.dtype == np.float32
    assert detector_box(diameter)[2] == pytest.approx(radius)
    c = size // 2
    assert boxes[0, c, c] < -0.9 and boxes[0, 0, 0] > -0.1
    assert np.isfinite(boxes[1]).all()


def test_model_keeps_its_ranker_through_save_and_load(tmp_path):
    model = load_model()
    assert model.ranker is None  # the shipped model ranks by its particle map
    model.ranker = Ranker(np.arange(model.mae.config.width, dtype=float), -0.5, {"cluster": 2})
    save_model(model, tmp_path)
    back = load_model(tmp_path)
    np.testing.assert_array_equal(back.ranker.weights, model.ranker.weights)
    assert back.ranker.bias == -0.5 and back.ranker.info == {"cluster": 2}


def test_learned_ranker_picks_simulated_micrographs(tmp_path):
    """``train_ranker`` on two simulated micrographs learns from the detector's verdicts a
    ranking that still picks them with F1 >= 0.9 at its default threshold."""
    from cryosift.picking.run import PickJob, choose_cluster, pick_image
    from cryosift.picking.train import train_ranker

    mics, d, paths = simulated_picking_micrographs(tmp_path)
    model = load_model()
    ranker = train_ranker(model, paths, d)
    assert ranker is not None and ranker.info["micrographs"] == 2
    model.ranker = ranker
    cluster, _ = choose_cluster(model, paths, d)
    picks = {m.name: pick_image(model, m.image, PickJob(diameter=d, cluster=cluster)) for m in mics}
    assert all(p.score.between(0, 1).all() for p in picks.values())
    kept = {k: v[v.keep] for k, v in picks.items()}
    truth = {m.name: m.coords[["x", "y"]] for m in mics}
    pooled = evaluate_picks(kept, truth, d).iloc[-1]
    assert pooled.f1 >= 0.9, pooled.to_dict()
