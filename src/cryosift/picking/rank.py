"""Ranking candidates by what the user's own micrographs teach: the picker's learned ranker.

The k-means particle map finds candidates well (on EMPIAR-10017 they hold 87% of the
labelled particles) but ranks them poorly. Every run (:mod:`cryosift.picking.adapt`) and
``cryosift train`` therefore learn a ranking on the user's micrographs without annotation,
from two views of every candidate:

- **labels from the image**: the candidate's box, cut from the micrograph and Fourier-cropped
  (:func:`box_stack`), is judged by the radial-profile detector (``cryosift clean``'s default
  preset, its threshold calibrated on simulated noise), and its 2D class by the survey's
  class judgement (:mod:`cryosift.picking.classes`). A candidate the detector accepts in a
  particle class is a pseudo-positive, any other a pseudo-negative
  (:mod:`cryosift.picking.adapt`);
- **features**: the mean centred token embedding over the particle's disc, and optionally
  (``blob_weights``) the candidate's blob responses (:mod:`cryosift.picking.blobs`);
- optionally, the candidate's best match to the survey's particle class averages
  (``templates``, ``match_weight``).

A logistic regression on the features (standardised, L2) learns the direction that
separates them; the scaler is folded into the weights, so the ranker is one vector ``w``
(and ``blob_weights``) and a bias ``b``, and a candidate's score is
``sigmoid(b + mean over the disc of (embedding . w) + blobs . blob_weights + match_weight .
match)``. The features
never include the radial profiles the labels came from, so the classifier cannot copy the
detector's mistakes (with the profiles as features too, F1 fell from 0.786 to 0.760).

Token grid: token ``(i, j)`` covers preprocessed px rows ``i p .. i p + p - 1``; a candidate
at preprocessed px ``(row, col)`` sits on token ``(row // p, col // p)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Inverse L2 strength of the logistic regression (features standardised first).
C = 0.1
#: Pseudo-labels of each kind needed to fit a ranker.
MIN_LABELS = 20
#: A ranked candidate is kept when its probability of being a particle reaches this.
THRESHOLD = 0.5
#: Box side cut around each candidate for the detector, in particle diameters.
BOX_DIAMETERS = 1.5
#: Side the boxes are Fourier-cropped to (as ``cryosift clean`` does; never enlarged).
BOX_SIZE = 55


def disc_offsets(radius: float) -> np.ndarray:
    """``(K, 2)`` int (drow, dcol) of the tokens whose centres lie within ``radius`` tokens
    of a token's centre (the token itself included)."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dy**2 + dx**2 <= radius**2
    return np.stack([dy[inside], dx[inside]], axis=1)


def disc_means(values: np.ndarray, tokens: np.ndarray, radius: float) -> np.ndarray:
    """Mean of ``values`` ``(h, w, ...)`` over the tokens within ``radius`` tokens of each of
    ``tokens`` ``(N, 2)`` (row, col): ``(N, ...)``. Tokens off the grid are left out of the
    mean."""
    tokens = np.asarray(tokens, np.int64).reshape(-1, 2)
    off = disc_offsets(radius)
    rows = tokens[:, :1] + off[None, :, 0]  # (N, K)
    cols = tokens[:, 1:] + off[None, :, 1]
    valid = (rows >= 0) & (rows < values.shape[0]) & (cols >= 0) & (cols < values.shape[1])
    gathered = values[np.clip(rows, 0, values.shape[0] - 1), np.clip(cols, 0, values.shape[1] - 1)]
    weight = valid.reshape(valid.shape + (1,) * (values.ndim - 2)).astype(np.float32)
    return (gathered * weight).sum(1) / np.maximum(weight.sum(1), 1.0)


def candidate_tokens(rc: np.ndarray, patch: int) -> np.ndarray:
    """Token ``(N, 2)`` (row, col) under each candidate at preprocessed px ``rc`` ``(N, 2)``."""
    return np.floor_divide(np.asarray(rc, np.int64).reshape(-1, 2), patch)


def candidate_features(emb: np.ndarray, rc: np.ndarray, patch: int, diameter: float) -> np.ndarray:
    """``(N, D)`` features of candidates at preprocessed px ``rc`` ``(N, 2)``: the mean of the
    embeddings ``(h, w, D)`` over the particle's disc (``diameter`` preprocessed px)."""
    return disc_means(emb, candidate_tokens(rc, patch), diameter / 2 / patch)


@dataclass(frozen=True)
class Ranker:
    """A linear ranking of candidates: ``weights`` ``(D,)`` over token embeddings,
    ``blob_weights`` ``(B,)`` over the candidate's blob features
    (:func:`cryosift.picking.blobs.blob_features`; None: a ranker of embeddings only),
    ``bias``; ``info`` records how it was fitted (pseudo-label counts, micrographs).

    With ``templates`` ``(P, n, n)`` (the survey's particle class averages,
    :mod:`cryosift.picking.classes`), each candidate's best match to them (its ``matches``,
    :func:`cryosift.picking.classes.template_match`) adds ``match_weight`` times itself to
    the log-odds."""

    weights: np.ndarray
    bias: float
    info: dict = field(default_factory=dict)
    blob_weights: np.ndarray | None = None
    templates: np.ndarray | None = None
    match_weight: float = 0.0

    @property
    def all_weights(self) -> np.ndarray:
        """``(D + B,)`` the weights over the columns of
        :meth:`cryosift.picking.run.Candidates.features`."""
        if self.blob_weights is None:
            return np.asarray(self.weights, np.float64)
        return np.concatenate([self.weights, self.blob_weights])

    def decision(self, features: np.ndarray, matches: np.ndarray | None = None) -> np.ndarray:
        """Log-odds ``(N,)`` of being a particle for features ``(N, D)`` or ``(N, D + B')``,
        ``B' >= B`` (a ranker of fewer blob features, from an earlier cryosift, uses the
        first ``B``), and the candidates' template ``matches`` ``(N,)`` when it uses them."""
        w = self.all_weights
        z = np.asarray(features, np.float64)[:, : len(w)] @ w + self.bias
        return z + self._matched(matches)

    @property
    def uses_templates(self) -> bool:
        return self.templates is not None and self.match_weight != 0.0

    def _matched(self, matches: np.ndarray | None) -> np.ndarray | float:
        if not self.uses_templates:
            return 0.0
        if matches is None:
            raise ValueError("this ranker needs the candidates' template matches")
        return self.match_weight * np.asarray(matches, np.float64)

    def probability(
        self,
        emb: np.ndarray,
        rc: np.ndarray,
        patch: int,
        diameter: float,
        blobs: np.ndarray | None = None,
        matches: np.ndarray | None = None,
    ) -> np.ndarray:
        """Probability ``(N,)`` that each candidate at preprocessed px ``rc`` ``(N, 2)`` is a
        particle; ``blobs`` ``(N, B)`` its blob features and ``matches`` ``(N,)`` its
        template matches when the ranker uses them. The projection comes first (one channel
        to average, not ``D``); it equals ``sigmoid(decision(Candidates.features(),
        matches))``."""
        if not len(rc):
            return np.empty(0, np.float64)
        projected = emb.astype(np.float64) @ self.weights  # (h, w)
        z = disc_means(projected, candidate_tokens(rc, patch), diameter / 2 / patch)
        if self.blob_weights is not None:
            if blobs is None:
                raise ValueError("this ranker needs the candidates' blob features")
            b = len(self.blob_weights)
            z = z + np.asarray(blobs, np.float64)[:, :b] @ self.blob_weights
        z = z + self._matched(matches)
        return 1.0 / (1.0 + np.exp(-(z + self.bias)))

    def to_dict(self) -> dict:
        return {
            "weights": np.asarray(self.weights, np.float64),
            "bias": float(self.bias),
            "info": dict(self.info),
            "blob_weights": None
            if self.blob_weights is None
            else np.asarray(self.blob_weights, np.float64),
            "templates": None
            if self.templates is None
            else np.asarray(self.templates, np.float32).round(5),
            "match_weight": float(self.match_weight),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Ranker:
        blob, templates = d.get("blob_weights"), d.get("templates")
        return cls(
            np.asarray(d["weights"], np.float64),
            float(d["bias"]),
            dict(d["info"]),
            None if blob is None else np.asarray(blob, np.float64),
            None if templates is None else np.asarray(templates, np.float32),
            float(d.get("match_weight", 0.0)),
        )


def fit_ranker(
    features: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    info: dict | None = None,
    n_blob: int = 0,
    c: float = C,
) -> Ranker | None:
    """Logistic regression of ``positive`` against ``negative`` (``(N,)`` masks) on standardised
    ``features`` ``(N, D + n_blob)`` (the last ``n_blob`` columns blob features), the scaler
    folded into the weights. None when either kind has fewer than :data:`MIN_LABELS`
    members."""
    from sklearn.linear_model import LogisticRegression

    positive, negative = np.asarray(positive, bool), np.asarray(negative, bool)
    if positive.sum() < MIN_LABELS or negative.sum() < MIN_LABELS:
        return None
    use = positive | negative
    x = np.asarray(features, np.float64)[use]
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, positive[use])
    w = clf.coef_.ravel() / scale
    b = float(clf.intercept_[0] - (w * mean).sum())
    record = {"positives": int(positive.sum()), "negatives": int(negative.sum()), **(info or {})}
    split = len(w) - n_blob
    return Ranker(w[:split], b, record, w[split:] if n_blob else None)


def detector_box(diameter: float) -> tuple[int, int, float]:
    """For a particle ``diameter`` px of the micrograph: the box side cut (:data:`BOX_DIAMETERS`
    diameters, even, at least 8 px), the side it is Fourier-cropped to (:data:`BOX_SIZE`, or
    the box when smaller) and the particle radius in px of the cropped box."""
    box = max(8, 2 * round(BOX_DIAMETERS * diameter / 2))
    size = min(BOX_SIZE, box)
    return box, size, diameter / 2 * size / box


def box_stack(image: np.ndarray, xy: np.ndarray, diameter: float) -> np.ndarray:
    """``(N, s, s)`` float32 boxes around ``xy`` ``(N, 2)`` (x, y) in px of ``image``
    ``(rows, cols)``, padded where they leave it, cut and cropped as :func:`detector_box`
    says."""
    from cryosift.extract.boxes import crop_boxes
    from cryosift.preprocess.fourier import fourier_crop

    box, size, _ = detector_box(diameter)
    return fourier_crop(crop_boxes(image, xy, box, pad=True), size)
