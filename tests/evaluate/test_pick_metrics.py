"""Pick metrics on hand-made cases, where the right answer can be counted by eye."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryosift.evaluate.picks import (
    box_iou,
    evaluate_picks,
    match_one_to_one,
    paper_rule,
    pr_curve,
)


def test_one_to_one_counts_each_pick_once():
    truth = np.array([[100.0, 100.0], [200.0, 100.0]])
    # two picks near the first particle, one near nothing
    picks = np.array([[101.0, 100.0], [104.0, 100.0], [500.0, 500.0]])
    pairs = match_one_to_one(picks, truth, radius=10)
    assert len(pairs) == 1 and tuple(pairs[0]) == (0, 0)
    row = evaluate_picks(
        {"m": pd.DataFrame(picks, columns=["x", "y"])},
        {"m": pd.DataFrame(truth, columns=["x", "y"])},
        diameter=20,
    ).iloc[0]
    assert (row.tp, row.picks, row.truth) == (1, 3, 2)
    assert row.precision == pytest.approx(1 / 3) and row.recall == pytest.approx(1 / 2)
    assert row.f1 == pytest.approx(2 * 1 / 5)


def test_hungarian_beats_greedy_nearest():
    # Greedy nearest pairing would give pick 0 to truth 0 (distance 1) and leave truth 1
    # (9 px from pick 0, 11 px from pick 1 > radius) unmatched; the optimum matches both.
    truth = np.array([[0.0, 0.0], [9.0, 0.0]])
    picks = np.array([[1.0, 0.0], [-9.0, 0.0]])
    pairs = match_one_to_one(picks, truth, radius=10)
    assert sorted(map(tuple, pairs)) == [(0, 1), (1, 0)]


def test_match_radius_is_inclusive_and_strict_beyond():
    truth = np.array([[0.0, 0.0]])
    assert len(match_one_to_one(np.array([[10.0, 0.0]]), truth, 10)) == 1
    assert len(match_one_to_one(np.array([[10.01, 0.0]]), truth, 10)) == 0
    assert len(match_one_to_one(np.empty((0, 2)), truth, 10)) == 0


def test_box_iou_exact():
    # boxes of 10 shifted by 5 along x: overlap 5 x 10 = 50, union 150
    assert box_iou(np.array([[0.0, 0.0]]), np.array([[5.0, 0.0]]), 10)[0] == pytest.approx(1 / 3)
    assert box_iou(np.array([[0.0, 0.0]]), np.array([[0.0, 0.0]]), 10)[0] == pytest.approx(1.0)
    assert box_iou(np.array([[0.0, 0.0]]), np.array([[20.0, 0.0]]), 10)[0] == 0.0


def test_paper_rule_lets_one_pick_serve_many_particles():
    # three particles within 2 px of one pick: the paper's rule finds all three with one pick
    truth = np.array([[100.0, 100.0], [101.0, 101.0], [99.0, 100.0]])
    picks = np.array([[100.0, 100.0], [300.0, 300.0]])
    r = paper_rule(picks, truth, diameter=40)
    assert r["found"] == 3 and r["used"] == 1
    assert r["recall"] == 1.0 and r["precision"] == 0.5
    # one-to-one matching counts that pick once
    assert len(match_one_to_one(picks, truth, 20)) == 1


def test_paper_rule_iou_threshold():
    truth = np.array([[0.0, 0.0]])
    # IoU of two 10-px boxes shifted by s along x: (10 - s) / (10 + s); > 0.6 iff s < 2.5
    assert paper_rule(np.array([[2.4, 0.0]]), truth, 10)["found"] == 1
    assert paper_rule(np.array([[2.6, 0.0]]), truth, 10)["found"] == 0


def test_pooled_row_and_missing_micrograph():
    t = {"a": pd.DataFrame({"x": [10.0], "y": [10.0]}), "b": pd.DataFrame({"x": [5.0], "y": [5.0]})}
    p = {"a": pd.DataFrame({"x": [10.0], "y": [11.0]})}  # nothing picked on b
    table = evaluate_picks(p, t, diameter=10)
    pooled = table.iloc[-1]
    assert list(table.micrograph) == ["a", "b", "pooled"]
    assert (pooled.tp, pooled.picks, pooled.truth) == (1, 1, 2)


def test_pr_curve_is_monotone_in_picks():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1000, size=(50, 2))
    good = truth + rng.normal(0, 2, size=truth.shape)
    bad = rng.uniform(0, 1000, size=(50, 2))
    picks = pd.DataFrame(np.vstack([good, bad]), columns=["x", "y"])
    picks["score"] = np.r_[np.full(50, 0.9), np.full(50, 0.1)]
    curve = pr_curve({"m": picks}, {"m": pd.DataFrame(truth, columns=["x", "y"])}, 20)
    assert np.all(np.diff(curve.picks.to_numpy()) <= 0)
    strict = curve[curve.threshold > 0.1].iloc[0]
    assert strict.precision == 1.0 and strict.recall == 1.0
