"""Adaptation: the candidate ranker learned on the user's own micrographs, inside every run.

``cryosift pick`` and ``cryosift run`` first look at a few micrographs in full (the survey,
:data:`SURVEY` of them): their embeddings choose the particle cluster
(:func:`cryosift.picking.run.cluster_from_survey`) and then, with no annotation, teach a
ranking of candidates (:mod:`cryosift.picking.rank`):

1. every candidate the particle map finds on them is boxed (1.5 diameters) and judged by
   ``cryosift clean``'s default radial-profile detector; kept by the picker *and* accepted
   by the detector is a pseudo-particle, rejected by the detector a pseudo-negative;
2. a logistic regression learns, from the candidate's mean disc embedding and its blob
   features (:mod:`cryosift.picking.blobs`), which candidates are particles;
3. its log-odds over the survey's candidates are split by a two-component Gaussian mixture
   and the bias moved so that the split is probability 0.5 (:func:`centred_on_split`);
4. one round of self-training: the pseudo-particles become the candidates this first ranker
   keeps (instead of those the particle map keeps) that the detector accepts, and step 2 is
   repeated. More rounds drift (measured: docs/picking.md);
5. the refined ranker's probability is every candidate's score and 0.5 the default
   threshold, with the bias set so that 0.5 falls at the *lower* of its own 0.5 and the
   mixture split (:func:`centred_on_split` with ``lenient``). The F1-best cut on a
   calibrated probability is at F1/2, below 0.5, so of two estimates of the 0.5 point the
   lower is the nearer; it matters when the ranking is weak (faint or binned data: the
   mixture split then kept half the particles, measured in docs/picking.md);
6. a crowded field with a weak ranking (:func:`lenient_when_crowded_and_weak`): when the
   particle map keeps at least :data:`CROWDED_SHARE` of the survey's candidates and the
   refined ranker's log-odds hardly split in two (:func:`separation` below
   :data:`WEAK_SEPARATION`), 0.5 is moved down to keep :data:`CROWDED_WEAK_KEEP` of the
   candidates. Where about half the candidates are particles and the ranking cannot tell
   which, every candidate dropped loses a particle as often as junk: picking generously and
   letting 2D classification sort is the better default there (measured on faint copies of
   EMPIAR-10017 and held-out sets in docs/picking.md).

The survey micrographs' picks come from the embeddings already computed, so adapting costs
only the boxes, the detector and the fit (a few seconds, whatever the number of
micrographs). Boxes are cut from the resized micrograph when the particle is large enough
there (:data:`MIN_SMALL_BOX`), else from the micrograph as read. With too few labels of
either kind no ranker is learned and the particle map's score is kept. Deterministic per
``seed`` (the detector's noise calibration is its only random draw).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from cryosift.picking.blobs import NAMES as BLOB_NAMES
from cryosift.picking.model import PickerModel
from cryosift.picking.rank import (
    BOX_DIAMETERS,
    Ranker,
    box_stack,
    detector_box,
    fit_ranker,
    pseudo_labels,
)
from cryosift.picking.run import CHOOSE_FROM, Candidates, Embedded, PickJob, candidates_of

#: Micrographs looked at in full before picking (those the cluster choice looks at).
SURVEY = CHOOSE_FROM
#: Inverse L2 strength of the adapted ranker's logistic regression (standardised features;
#: strong, as the pseudo-labels are noisy and the survey small).
ADAPT_C = 0.01
#: Boxes are cut from the resized micrograph when they are at least this many px there.
MIN_SMALL_BOX = 32
#: A field is crowded when the particle map keeps at least this share of the survey's
#: candidates (0.49-0.58 on every copy of EMPIAR-10017 measured; 0.28-0.39 on sparse
#: simulations, 0.57-0.76 on crowded ones, but 0.38 on a crowded one at SNR 0.15)...
CROWDED_SHARE = 0.45
#: ... and its ranking weak when the two components of a mixture of the survey's log-odds
#: (one shared variance) lie less than this many standard deviations apart (1.2-2.1 on the
#: noisy copies of EMPIAR-10017, 2.4-2.7 on those without added noise).
WEAK_SEPARATION = 2.25
#: Share of the candidates the default threshold keeps in a crowded field with a weak ranking.
CROWDED_WEAK_KEEP = 0.90


@dataclass
class Adaptation:
    """What adapting learned: the ``ranker`` (None when too few labels), the candidates of
    every surveyed micrograph scored by it (``picks`` by micrograph key) and a record
    ``info`` (label counts, time) for ``run.json``."""

    ranker: Ranker | None
    picks: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def detector_boxes(
    image: np.ndarray, seen: Embedded, cand: Candidates, diameter: float
) -> tuple[np.ndarray, float]:
    """``(N, s, s)`` boxes around the candidates that pass the filters, and the particle
    radius in their px. ``diameter`` in px of ``image`` ``(rows, cols)``."""
    ok = cand.picks.passes.to_numpy()
    d_small = diameter / seen.plan.scale
    if BOX_DIAMETERS * d_small >= MIN_SMALL_BOX:
        xy = cand.rc[ok][:, ::-1].astype(np.float64)
        return box_stack(seen.small, xy, d_small), detector_box(d_small)[2]
    xy = cand.picks.loc[ok, ["x", "y"]].to_numpy()
    return box_stack(image, xy, diameter), detector_box(diameter)[2]


def learn_ranker(
    model: PickerModel,
    seen: Iterable[tuple[np.ndarray, Embedded]],
    job: PickJob,
    on_micrograph: Callable[[], None] | None = None,
) -> tuple[Ranker | None, dict]:
    """The ranker learned on the micrographs ``seen`` (each the image as read and its
    :class:`Embedded`), and a record of how. ``job`` gives the particle cluster, the
    diameter and the seed."""
    from cryosift.outliers.clean import clean_images
    from cryosift.outliers.rules import DEFAULT_PRESET

    features, kept, boxes = [], [], []
    n, radius = 0, 0.0
    for image, e in seen:
        cand = candidates_of(model, e, job, None)
        ok = cand.picks.passes.to_numpy()
        found, radius = detector_boxes(image, e, cand, job.diameter)  # radius: the same for all
        if len(found):
            boxes.append(found)
            features.append(cand.features()[ok])
            kept.append(cand.picks.keep.to_numpy()[ok])
        n += 1
        if on_micrograph:
            on_micrograph()
    info = {"micrographs": n, "candidates": int(sum(len(b) for b in boxes))}
    if not boxes:
        return None, {**info, "positives": 0, "negatives": 0}
    stack = np.concatenate(boxes)
    # labels to learn from: the usual threshold, never loosened for moderate separability
    judged = clean_images(stack, radius, DEFAULT_PRESET, seed=job.seed, loosen=False)
    verdict = judged["verdict"].to_numpy()
    positive, negative = pseudo_labels(np.concatenate(kept), verdict)
    info.update(positives=int(positive.sum()), negatives=int(negative.sum()))
    info["features"] = ["disc embedding", *BLOB_NAMES]
    x = np.concatenate(features)
    ranker = fit_ranker(x, positive, negative, info, n_blob=len(BLOB_NAMES), c=ADAPT_C)
    if ranker is None:
        return None, info
    ranker = centred_on_split(ranker, ranker.decision(x), job.seed)
    # one round of self-training: the first ranker's keep verdict replaces the particle map's
    positive, negative = pseudo_labels(ranker.decision(x) >= 0, verdict)
    info.update(positives=int(positive.sum()), negatives=int(negative.sum()), rounds=2)
    refined = fit_ranker(x, positive, negative, info, n_blob=len(BLOB_NAMES), c=ADAPT_C)
    if refined is None:
        return ranker, info
    refined = centred_on_split(refined, refined.decision(x), job.seed, lenient=True)
    map_share = float(np.concatenate(kept).mean())
    refined = lenient_when_crowded_and_weak(refined, refined.decision(x), map_share, job.seed)
    info.update({k: refined.info[k] for k in ("map_share", "separation", "crowded_weak")})
    return refined, info


def centred_on_split(
    ranker: Ranker, logits: np.ndarray, seed: int = 0, lenient: bool = False
) -> Ranker:
    """``ranker`` with its bias moved so that probability 0.5 falls where a two-component
    mixture of the survey's candidate ``logits`` ``(N,)`` splits them (more likely the high
    component above): the default threshold then follows how many of this dataset's
    candidates are particles, not the balance of its pseudo-labels. ``lenient``: moved only
    when the split lies below the ranker's own 0.5 (the lower of the two is kept)."""
    from cryosift.picking.pick import score_split

    split = score_split(logits, seed, float(logits.min()), float(logits.max()), fallback=0.0)
    shift = min(split, 0.0) if lenient else split
    info = {**ranker.info, "split_logit": round(split, 4), "bias_shift": round(shift, 4)}
    return Ranker(ranker.weights, ranker.bias - shift, info, ranker.blob_weights)


def separation(logits: np.ndarray, seed: int = 0) -> float:
    """How far apart, in their shared standard deviation, the means of a two-component
    Gaussian mixture (tied variance) of ``logits`` ``(N,)`` lie: how clearly the ranking
    splits the candidates in two. Infinite for fewer than 10 values or constant ones."""
    from sklearn.mixture import GaussianMixture

    if len(logits) < 10 or np.ptp(logits) == 0:
        return float("inf")
    g = GaussianMixture(2, covariance_type="tied", random_state=seed)
    g.fit(np.asarray(logits, np.float64).reshape(-1, 1))
    return float(abs(np.diff(g.means_.ravel())[0]) / np.sqrt(g.covariances_.ravel()[0]))


def lenient_when_crowded_and_weak(
    ranker: Ranker, logits: np.ndarray, map_share: float, seed: int = 0
) -> Ranker:
    """``ranker`` with 0.5 moved down to keep :data:`CROWDED_WEAK_KEEP` of the survey's
    candidates (their ``logits`` ``(N,)`` under ``ranker``) when the field is crowded (the
    particle map kept ``map_share`` >= :data:`CROWDED_SHARE` of them) and the ranking weak
    (:func:`separation` < :data:`WEAK_SEPARATION`); never moved up. Records both measures."""
    sep = separation(logits, seed)
    weak = bool(map_share >= CROWDED_SHARE and sep < WEAK_SEPARATION)
    shift = min(float(np.quantile(logits, 1 - CROWDED_WEAK_KEEP)), 0.0) if weak else 0.0
    info = {
        **ranker.info,
        "map_share": round(map_share, 4),
        "separation": round(sep, 4) if np.isfinite(sep) else None,
        "crowded_weak": weak,
        "bias_shift": round(ranker.info.get("bias_shift", 0.0) + shift, 4),
    }
    return Ranker(ranker.weights, ranker.bias - shift, info, ranker.blob_weights)


def adapt(
    model: PickerModel,
    survey: dict[str, tuple[np.ndarray, Embedded]],
    job: PickJob,
) -> Adaptation:
    """Learn the ranker on the surveyed micrographs (``{key: (image, embedded)}``) and
    score their candidates with it (the map's score when no ranker could be learned)."""
    ranker, info = learn_ranker(model, survey.values(), job)
    scorer = ranker if ranker is not None else model.ranker
    scored = replace(job, ranker=ranker)
    picks = {k: candidates_of(model, e, scored, scorer).picks for k, (_, e) in survey.items()}
    return Adaptation(ranker, picks, info)


def survey_micrographs(
    model: PickerModel, paths: dict[str, object], diameter: float, angpix: float | None = None
) -> dict[str, tuple[np.ndarray, Embedded]]:
    """The first :data:`SURVEY` micrographs of ``paths`` (``{key: path}``) read and embedded."""
    from cryosift.io.micrographs import read_micrograph
    from cryosift.picking.run import embed_image

    out = {}
    for key, path in list(paths.items())[:SURVEY]:
        image = read_micrograph(path, angpix).image
        out[key] = (image, embed_image(model, image, diameter))
    return out


def ranker_json(ranker: Ranker | None) -> dict | None:
    """``ranker`` as JSON-ready values (:meth:`Ranker.from_dict` reads them back)."""
    if ranker is None:
        return None
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in ranker.to_dict().items()}


def prepare_picking(
    model: PickerModel,
    paths: dict[str, object],
    job: PickJob,
    angpix: float | None = None,
    learn: bool = True,
    example: tuple | None = None,
) -> tuple[PickJob, dict, dict]:
    """Survey the first micrographs of ``paths`` (``{key: path}``): choose the particle
    cluster (from ``example``, an annotated micrograph and its picks, when given) and, when
    ``learn``, adapt the ranker. Returns the job to pick the rest with, the surveyed
    micrographs' candidates by key (scored as the rest will be) and the state to record
    (``cluster``, ``cluster_choice``, ``ranker``, ``adapt``)."""
    from cryosift.picking.run import active_ranker, choose_cluster, cluster_from_survey

    survey = survey_micrographs(model, paths, job.diameter, angpix)
    if example is not None:
        cluster, how = choose_cluster(model, list(paths.values()), job.diameter, example)
    else:
        cluster, how = cluster_from_survey(model, [e for _, e in survey.values()], job.diameter)
    job = replace(job, cluster=cluster)
    state = {"cluster": cluster, "cluster_choice": how, "ranker": None, "adapt": None}
    if learn:
        t0 = time.perf_counter()
        adapted = adapt(model, survey, job)
        job = replace(job, ranker=adapted.ranker)
        state["ranker"] = ranker_json(adapted.ranker)
        state["adapt"] = {**adapted.info, "seconds": round(time.perf_counter() - t0, 3)}
        return job, adapted.picks, state
    ranker = active_ranker(model, job)
    picks = {k: candidates_of(model, e, job, ranker).picks for k, (_, e) in survey.items()}
    return job, picks, state


def job_from_state(job: PickJob, state: dict) -> PickJob:
    """``job`` with the cluster and the ranker a previous run recorded (:func:`prepare_picking`)."""
    ranker = state.get("ranker")
    return replace(
        job,
        cluster=int(state["cluster"]),
        ranker=None if ranker is None else Ranker.from_dict(ranker),
    )
