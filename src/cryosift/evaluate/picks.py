"""Picking accuracy against ground truth: one-to-one matching and the Cryo-EMMAE paper's rule.

- **One-to-one** (the default): picks and true particles are paired by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``) on centre distance, and a pair counts when the
  distance is at most ``radius`` (half a diameter by default). Each pick and each particle is
  used at most once, so precision, recall and F1 are honest.
- **Paper rule**: every true particle is matched to its nearest pick and counts as found when
  the two diameter-sized boxes overlap with IoU > 0.6. Several particles may share one pick,
  so recall can exceed what one-to-one matching gives; precision is the fraction of picks that
  are the nearest pick of some found particle.

Coordinates are px of one micrograph (x = column, y = row). Arrays are ``(N, 2)`` as (x, y).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Counts:
    """True positives, number of picks and number of true particles."""

    tp: int
    picks: int
    truth: int

    @property
    def precision(self) -> float:
        return self.tp / self.picks if self.picks else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.truth if self.truth else 0.0

    @property
    def f1(self) -> float:
        s = self.picks + self.truth
        return 2 * self.tp / s if s else 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.picks + other.picks, self.truth + other.truth)

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def match_one_to_one(picks: np.ndarray, truth: np.ndarray, radius: float) -> np.ndarray:
    """Pairs ``(M, 2)`` of (pick index, truth index) with centre distance <= ``radius``,
    chosen by minimum-cost one-to-one assignment (unpaired items cost ``radius``)."""
    picks = np.asarray(picks, np.float64).reshape(-1, 2)
    truth = np.asarray(truth, np.float64).reshape(-1, 2)
    if not len(picks) or not len(truth):
        return np.empty((0, 2), int)
    # Only pairs within the radius can count: solve on the sparse candidate graph's blocks.
    tree = cKDTree(truth)
    cand = tree.query_ball_point(picks, radius)
    big = 1e6
    cost = np.full((len(picks), len(truth)), big)
    for i, js in enumerate(cand):
        if js:
            js = np.asarray(js)
            cost[i, js] = np.hypot(*(truth[js] - picks[i]).T)
    used_p = np.flatnonzero(cost.min(axis=1) < big)
    used_t = np.flatnonzero(cost.min(axis=0) < big)
    if not len(used_p):
        return np.empty((0, 2), int)
    sub = cost[np.ix_(used_p, used_t)]
    # Each pair scores distance / radius - (K + 1), in [-(K + 1), -K] for K = the most pairs
    # possible: one more pair always beats any shorter distances, then distance decides.
    k = min(sub.shape)
    r, c = linear_sum_assignment(np.where(sub < big, sub / radius - (k + 1), 0.0))
    ok = sub[r, c] < big
    return np.stack([used_p[r[ok]], used_t[c[ok]]], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray, size: float) -> np.ndarray:
    """IoU of axis-aligned ``size x size`` boxes centred at ``a`` and ``b`` (both ``(N, 2)``)."""
    overlap = np.clip(size - np.abs(np.asarray(a) - np.asarray(b)), 0, None)
    inter = overlap[:, 0] * overlap[:, 1]
    return np.asarray(inter / (2 * size * size - inter))


def _rates(found: int, used: int, n_picks: int, n_truth: int) -> dict[str, Any]:
    """The paper rule's precision (picks used / picks), recall (found / truth) and F1."""
    p = used / n_picks if n_picks else 0.0
    r = found / n_truth if n_truth else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def paper_rule(
    picks: np.ndarray, truth: np.ndarray, diameter: float, iou: float = 0.6
) -> dict[str, Any]:
    """The paper's counts: ``found`` true particles, ``used`` picks, and the rates."""
    picks = np.asarray(picks, np.float64).reshape(-1, 2)
    truth = np.asarray(truth, np.float64).reshape(-1, 2)
    found = used = 0
    if len(picks) and len(truth):
        _, nearest = cKDTree(picks).query(truth)
        hit = box_iou(truth, picks[nearest], diameter) > iou
        found, used = int(hit.sum()), len(np.unique(nearest[hit]))
    return {"found": found, "used": used, **_rates(found, used, len(picks), len(truth))}


def _paper_columns(rates: dict[str, Any]) -> dict[str, Any]:
    return {f"paper_{k}": rates[k] for k in ("precision", "recall", "f1")}


def evaluate_picks(
    picks: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame], diameter: float
) -> pd.DataFrame:
    """Per-micrograph rows for every micrograph in ``truth`` (missing picks count as none):
    one-to-one counts (radius = diameter / 2) and the paper rule's rates; then a final
    ``pooled`` row (one-to-one counts summed; paper rates from summed counts)."""
    rows = []
    pooled = Counts(0, 0, 0)
    found = used = 0
    for name, t in truth.items():
        p = picks.get(name)
        pxy = p[["x", "y"]].to_numpy() if p is not None else np.empty((0, 2))
        txy = t[["x", "y"]].to_numpy()
        counts = Counts(len(match_one_to_one(pxy, txy, diameter / 2)), len(pxy), len(txy))
        paper = paper_rule(pxy, txy, diameter)
        rows.append({"micrograph": name, **counts.row(), **_paper_columns(paper)})
        pooled = pooled + counts
        found, used = found + paper["found"], used + paper["used"]
    rates = _rates(found, used, pooled.picks, pooled.truth)
    rows.append({"micrograph": "pooled", **pooled.row(), **_paper_columns(rates)})
    return pd.DataFrame(rows)


def pr_curve(
    picks: dict[str, pd.DataFrame],
    truth: dict[str, pd.DataFrame],
    diameter: float,
    thresholds: np.ndarray | None = None,
) -> pd.DataFrame:
    """Pooled one-to-one precision, recall and F1 keeping picks with ``score >= threshold``,
    for each threshold (default: 50 quantiles of the scores)."""
    scores = np.concatenate([p.score.to_numpy() for p in picks.values()] or [np.empty(0)])
    scores = scores[np.isfinite(scores)]
    if thresholds is None:
        qs = np.quantile(scores, np.linspace(0, 0.98, 50)) if len(scores) else np.empty(0)
        thresholds = np.unique(qs)
    rows = []
    for thr in thresholds:
        total = Counts(0, 0, 0)
        for name, t in truth.items():
            p = picks.get(name)
            pxy = (
                p.loc[p.score >= thr, ["x", "y"]].to_numpy() if p is not None else np.empty((0, 2))
            )
            txy = t[["x", "y"]].to_numpy()
            total = total + Counts(
                len(match_one_to_one(pxy, txy, diameter / 2)), len(pxy), len(txy)
            )
        rows.append({"threshold": float(thr), **total.row()})
    return pd.DataFrame(rows)


def best_threshold(curve: pd.DataFrame) -> float:
    """The score threshold of highest F1 on a :func:`pr_curve`."""
    return float(curve.threshold.iloc[int(curve.f1.to_numpy().argmax())])
