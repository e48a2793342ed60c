"""Adaptation: the candidate ranker learned on the user's own micrographs, inside every run.

``cryosift pick`` and ``cryosift run`` first look at a few micrographs in full (the survey,
:data:`SURVEY` of them): their embeddings choose the particle cluster
(:func:`cryosift.picking.run.cluster_from_survey`) and then, with no annotation, teach a
ranking of candidates (:mod:`cryosift.picking.rank`) and where to cut it:

1. every candidate the particle map finds on them (generously: all that pass the filters) is
   boxed twice: at 1.5 diameters for ``cryosift clean``'s default radial-profile detector
   (one verdict per box), and at 2 diameters for a 2D classification of all of them
   (:mod:`cryosift.picking.classes`), whose class *averages* are judged: a line or edge, a
   round blob of one of several sizes or a rare strong blob (crisp ice) or weak
   (background) is junk, and each class gets an estimated particle share ``pi``;
2. a pseudo-particle is a candidate the detector accepts *and* that lies in a particle
   class; every other candidate is a pseudo-negative. At low SNR the detector's single box
   follows contrast, so a carbon edge or an ice crystal is accepted; its class is not;
3. a logistic regression learns, from the candidate's mean disc embedding and its blob
   features (:mod:`cryosift.picking.blobs`), which candidates are particles;
4. every candidate is also matched against the particle classes' averages, under every
   rotation and small shift (:func:`cryosift.picking.classes.template_match`): a matched
   filter with the particle's own views. A candidate's score is the sum of its standardised
   match and its standardised log-odds (:func:`combined_ranker`: one :class:`Ranker`);
5. **the default threshold** is the cut of that score with the best *expected* F1, the
   classes' ``pi`` standing for the truth: keeping the ``k`` best candidates is expected to
   hold ``sum pi`` of them, of the ``sum pi`` all candidates hold. The survey's scores it is
   chosen on are out of fold (each survey micrograph scored by a ranker learned on the
   others, and matched against class averages made without it), so a ranking that only
   repeats its own labels gains nothing. Where that best cut lies depends on how the
   classification happened to fall (the curve is flat near its top, and a class of mixed
   candidates moves it), so when the cut is worth making (next step) the survey is
   classified again with :data:`CUT_CLASSIFICATIONS` - 1 other seeds, each classification's
   ``pi`` proposes the share of the candidates its best cut keeps, and the median share is
   kept. Probability 0.5 falls at that cut;
6. **never worse than picking generously**: when the survey is too small to judge
   (:data:`MIN_CANDIDATES`), no class is a particle, or the best cut keeps at least
   :data:`KEEP_ALL` of the candidates or beats keeping them all by less than
   :data:`MIN_GAIN` expected F1 (the classes cannot judge the ranking), the default
   threshold keeps every candidate (``threshold 0``; the scores still rank them) and the
   run says so; unless the survey's scores themselves form two clear humps, the upper one
   a minority (:func:`mixture_cut`, :data:`CLEAR_SEPARATION`, :data:`MINORITY`), yet no
   smaller than one class of the survey's classification holds on average (a smaller hump
   is a rare kind of candidate, e.g. ice, that one class could hold): the particles of a
   sparse faint field, where the classes are mostly background and cannot
   say which candidates are particles but the ranking can; 0.5 then falls between the
   humps, at the cut with the best expected F1 when each candidate is a particle with its
   probability of the upper hump. Such humps also overrule a cut of the classes that would
   keep far more candidates than the upper hump holds (:data:`HUMP_OVERRULES`): there the
   classes took background for particles. A hump whose candidates sit in the particle
   classes no more often than the candidates overall is not the particles but a rare strong
   feature (ice crystals, :func:`hump_in_particle_classes`), and neither cuts nor overrules.
   Without such humps the single boxes get a second say before every candidate is kept:
   each candidate a particle with its probability of the upper of two Gaussians fitted to
   the detector's radial scores (:func:`radial_probability`), a cut worth making by the
   same test is made.

The survey micrographs' picks come from the embeddings already computed, so adapting costs
the boxes, the detector, the classifications and the fits (seconds, whatever the number of
micrographs). Boxes are cut from the resized micrograph when the particle is large enough
there (:data:`MIN_SMALL_BOX`), else from the micrograph as read. Deterministic per ``seed``
(the detector's noise calibration and the classes' k-means are its random draws).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cryosift.errors import InputError, SkipLog
from cryosift.picking.blobs import NAMES as BLOB_NAMES
from cryosift.picking.classes import (
    SurveyClasses,
    class_boxes,
    classify_survey,
    held_out_matches,
)
from cryosift.picking.model import PickerModel
from cryosift.picking.rank import (
    BOX_DIAMETERS,
    Ranker,
    box_stack,
    detector_box,
    fit_ranker,
)
from cryosift.picking.run import CHOOSE_FROM, Candidates, Embedded, PickJob, candidates_of
from cryosift.progress import Progress, no_progress

#: Micrographs looked at in full before picking (those the cluster choice looks at).
SURVEY = CHOOSE_FROM
#: Inverse L2 strength of the adapted ranker's logistic regression (standardised features;
#: strong, as the pseudo-labels are noisy and the survey small).
ADAPT_C = 0.01
#: Boxes are cut from the resized micrograph when they are at least this many px there.
MIN_SMALL_BOX = 32
#: When the best expected cut keeps at least this share of the candidates, keep them all ...
KEEP_ALL = 0.99
#: ... and when it is expected to beat keeping them all by less than this F1: a gain that
#: small is within what the estimate gets wrong (realised minus expected F1 of -0.03 to
#: +0.02 where the expected gain was below 0.015, benchmarks/picking_carry.md).
MIN_GAIN = 0.01
#: A ranking the classes cannot judge still cuts where its survey scores form two clear humps
#: (a tied two-component mixture, means at least this many sd apart) ...
CLEAR_SEPARATION = 2.0
#: ... the upper one a minority of at most this share: the particles of a sparse field.
MINORITY = 0.25
#: Such humps overrule the classes' cut when it would keep more than this many times the
#: upper hump's share: on sparse faint fields the classes take background for particles
#: (their cut keeps 0.79-0.92 of the candidates, 4.7-7.2 times the upper hump, where 0.19-0.34
#: are particles), while on crowded fields both see the particles (2.2-2.8 times;
#: benchmarks/picking_carry.md).
HUMP_OVERRULES = 3.0
#: Fewer survey candidates than this are too few to classify and judge: keep them all.
MIN_CANDIDATES = 100
#: Classifications of the survey (seeds) whose best cuts are pooled when a cut is made: the
#: default keeps the median share of the candidates of those that place a cut.
CUT_CLASSIFICATIONS = 5
#: The radial profiles' opinion sets the cut only when it takes the candidates of the survey's
#: particle classes for particles at least this often on average: where it does not, it follows
#: contrast (ice crystals), not the particle the classes share (``benchmarks/picking_carry.md``).
RADIAL_AGREES = 0.5


@dataclass
class Adaptation:
    """What adapting learned: the ``ranker`` (None when too few labels), the default
    ``threshold`` it sets (0.0: keep every candidate; None: the ranker's 0.5), the
    candidates of every surveyed micrograph scored by it (``picks`` by micrograph key), the
    survey's ``classes`` and a record ``info`` (labels, classes, cut, time) for
    ``run.json``."""

    ranker: Ranker | None
    threshold: float | None = None
    picks: dict = field(default_factory=dict)
    classes: SurveyClasses | None = None
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


@dataclass
class Survey:
    """Every candidate that passes the filters on the surveyed micrographs: ranker
    ``features`` ``(N, D + B)``, detector ``boxes`` and the particle ``radius`` in their px,
    2D-classification boxes ``class_stack`` and the surveyed micrograph of each (``group``)."""

    features: np.ndarray
    boxes: np.ndarray
    radius: float
    class_stack: np.ndarray
    group: np.ndarray


def gather_survey(
    model: PickerModel,
    seen: Iterable[tuple[np.ndarray, Embedded]],
    job: PickJob,
    on_micrograph: Callable[[], None] | None = None,
) -> tuple[Survey | None, int]:
    """The :class:`Survey` of the micrographs ``seen`` (each the image as read and its
    :class:`Embedded`), None when they hold no candidate, and how many were seen."""
    features, boxes, stacks, group = [], [], [], []
    radius, i = 0.0, -1
    for i, (image, e) in enumerate(seen):
        cand = candidates_of(model, e, job, None, place=False)  # as the ranker will see them
        ok = cand.picks.passes.to_numpy()
        found, radius = detector_boxes(image, e, cand, job.diameter)  # radius: the same for all
        if len(found):
            boxes.append(found)
            features.append(cand.features()[ok])
            stacks.append(class_boxes(e.small, cand.rc[ok], job.diameter / e.plan.scale))
            group.append(np.full(len(found), i))
        if on_micrograph:
            on_micrograph()
    if not boxes:
        return None, i + 1
    cat = np.concatenate
    return Survey(cat(features), cat(boxes), radius, cat(stacks), cat(group)), i + 1


def expected_f1(score: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``(N,)`` the expected F1 of keeping the ``k`` best of ``score`` ``(N,)``, ``k = 1..N``,
    when candidate ``i`` is a particle with probability ``pi[i]``: expected particles kept
    over ``k`` (precision) and over all expected particles (recall, relative to the
    candidates)."""
    order = np.argsort(-np.asarray(score), kind="stable")
    found = np.cumsum(np.asarray(pi, np.float64)[order])
    k = np.arange(1, len(order) + 1)
    total = max(found[-1] if len(found) else 0.0, 1e-12)
    precision, recall = found / k, found / total
    return 2 * precision * recall / np.maximum(precision + recall, 1e-12)


def out_of_fold_logits(
    x: np.ndarray, positive: np.ndarray, group: np.ndarray, full: Ranker
) -> np.ndarray:
    """``(N,)`` log-odds of each candidate by a ranker learned without its micrograph
    (``group``); the ``full`` ranker's where the others hold too few labels (or there is
    only one micrograph)."""
    out = full.decision(x)
    groups = np.unique(group)
    if len(groups) < 2:
        return out
    for g in groups:
        held = group == g
        r = fit_ranker(x[~held], positive[~held], ~positive[~held], n_blob=len(BLOB_NAMES),
                       c=ADAPT_C)  # fmt: skip
        if r is not None:
            out[held] = r.decision(x[held])
    return out


def learn_ranker(
    model: PickerModel,
    seen: Iterable[tuple[np.ndarray, Embedded]],
    job: PickJob,
    on_micrograph: Callable[[], None] | None = None,
) -> tuple[Ranker | None, dict, float | None, SurveyClasses | None]:
    """The ranker learned on the micrographs ``seen`` (each the image as read and its
    :class:`Embedded`), a record of how, the default threshold it sets (0.0 to keep every
    candidate, None for its 0.5) and the survey's classes. ``job`` gives the particle
    cluster, the diameter and the seed."""
    from cryosift.outliers.clean import clean_images
    from cryosift.outliers.rules import DEFAULT_PRESET

    survey, n = gather_survey(model, seen, job, on_micrograph)
    info: dict = {"micrographs": n, "candidates": 0 if survey is None else len(survey.boxes)}
    if survey is None or len(survey.boxes) < MIN_CANDIDATES:
        info.update(positives=0, negatives=0)
        info["default"] = f"every candidate: {info['candidates']} candidates are too few to judge"
        return None, info, 0.0, None
    # labels from single boxes: the usual threshold, never loosened for moderate separability
    judged = clean_images(survey.boxes, survey.radius, DEFAULT_PRESET, seed=job.seed, loosen=False)
    accepted = judged["verdict"].to_numpy() == "inlier"
    classes = classify_survey(survey.class_stack, job.seed)
    info["classes"] = {**classes.judgement.summary(), "seconds": round(classes.seconds, 3)}
    positive = accepted & classes.in_particle_class
    info.update(positives=int(positive.sum()), negatives=int((~positive).sum()))
    info["features"] = ["disc embedding", *BLOB_NAMES, "template match"]
    ranker = fit_ranker(survey.features, positive, ~positive, n_blob=len(BLOB_NAMES), c=ADAPT_C)
    if not classes.judgement.particle.any():
        info["default"] = "every candidate: no particle class"
        return ranker, info, 0.0, classes
    matches = held_out_matches(classes, survey.class_stack, survey.group)
    scores = [matches]
    if ranker is not None:
        scores.append(out_of_fold_logits(survey.features, positive, survey.group, ranker))
    combined, scales = standardised_sum(scores)
    cut, threshold = default_cut(
        combined,
        classes.pi,
        info,
        lambda: reclassified_pi(survey.class_stack, job.seed, info),
        radial_probability(judged["radial_score"].to_numpy()),
        min_hump=1.0 / len(classes.averages),
        in_particle=classes.in_particle_class,
    )
    one = combined_ranker(ranker, classes, scales, cut, survey.features.shape[1])
    record = ("micrographs", "candidates", "positives", "negatives", "keep_share")
    one.info.update({k: info[k] for k in record}, default_threshold=threshold)
    return one, info, threshold, classes


def standardised_sum(scores: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The sum ``(N,)`` of the ``scores`` ``(N,)`` each standardised (mean 0, sd 1; a
    constant one left at 0), and the (mean, sd) of each."""
    total = np.zeros(len(scores[0]))
    scales = []
    for v in scores:
        mean, sd = float(np.mean(v)), float(np.std(v))
        sd = sd if sd > 0 else 1.0
        total += (v - mean) / sd
        scales.append((mean, sd))
    return total, scales


def reclassified_pi(boxes: np.ndarray, seed: int, info: dict) -> list[np.ndarray]:
    """``(N,)`` the classes' particle share ``pi`` of each candidate box ``(N, n, n)`` by
    :data:`CUT_CLASSIFICATIONS` - 1 more classifications, with seeds drawn from ``seed``;
    their time is added to ``info["classes"]["seconds"]``."""
    t0 = time.perf_counter()
    seeds = np.random.SeedSequence(seed).generate_state(CUT_CLASSIFICATIONS - 1)
    pis = [classify_survey(boxes, int(s)).pi for s in seeds]
    record = info["classes"]
    record["seconds"] = round(record["seconds"] + time.perf_counter() - t0, 3)
    return pis


def proposed_keep(combined: np.ndarray, pi: np.ndarray) -> tuple[float, bool, float, float]:
    """The share of the survey's ``combined`` scores ``(N,)`` that the cut with the best
    expected F1 keeps (``pi`` ``(N,)`` as truth); whether that cut is worth making (it keeps
    under :data:`KEEP_ALL` and beats keeping every candidate by at least :data:`MIN_GAIN`);
    the expected F1 of the best cut and of keeping every candidate."""
    f1 = expected_f1(combined, pi)
    keep = (int(np.argmax(f1)) + 1) / len(f1)
    best, every = float(f1.max()), float(f1[-1])
    return keep, keep < KEEP_ALL and best - every >= MIN_GAIN, best, every


def radial_probability(score: np.ndarray) -> np.ndarray | None:
    """``(N,)`` each survey box's probability of the upper of two Gaussians with one shared
    variance fitted to the detector's radial-profile scores ``(N,)`` (higher: more like a
    centred particle); None when the scores are constant or not all finite."""
    from cryosift.outliers.mixture import fit_tied_mixture

    score = np.asarray(score, np.float64)
    if len(score) < 2 or not np.isfinite(score).all() or np.ptp(score) == 0:
        return None
    mixture = fit_tied_mixture(score)
    return mixture.posterior(score)[:, int(np.argmax(mixture.means))]


def default_cut(
    combined: np.ndarray,
    pi: np.ndarray,
    info: dict,
    more_pis: Callable[[], list[np.ndarray]] = list,
    radial: np.ndarray | None = None,
    min_hump: float = 0.0,
    in_particle: np.ndarray | None = None,
) -> tuple[float, float | None]:
    """The cut of the survey's ``combined`` scores ``(N,)`` and the default threshold: None
    (probability 0.5 at the cut) or 0.0 (every candidate kept). When the best expected cut
    with the classes' ``pi`` ``(N,)`` is worth making (:func:`proposed_keep`), the shares
    kept by the best cuts with ``pi`` and with each of ``more_pis()`` (other
    classifications' ``pi``; called only then) are pooled and the median kept, of those
    that place a cut (a best cut keeping :data:`KEEP_ALL` or more places none); unless the
    scores form two clear humps (:func:`mixture_cut`), the upper one a minority (but at least
    ``min_hump`` of the candidates: the survey classification's one class in K), and that
    cut would keep more than :data:`HUMP_OVERRULES` times the upper hump's share: the cut
    then falls between the humps, as it does when no cut is worth making; else every
    candidate is kept (probability 0.5 then at the best cut), unless the single boxes'
    ``radial`` ``(N,)`` probabilities (:func:`radial_probability`) propose a cut: their
    second opinion (:func:`radial_cut`, with ``in_particle`` ``(N,)``, bool: in the
    classes' particle classes), asked only where the classes could not judge. ``info``
    records it."""
    keep, worth, best, every = proposed_keep(combined, pi)
    hump_cut, separation, upper = mixture_cut(combined)
    info.update(
        keep_share=round(keep, 4),
        expected_f1=round(best, 4),
        expected_f1_every_candidate=round(every, 4),
        score_separation=round(separation, 3),
        upper_hump=round(upper, 3),
    )
    humps = (
        separation >= CLEAR_SEPARATION
        and min_hump <= upper <= MINORITY
        and hump_in_particle_classes(combined >= hump_cut, in_particle, info)
    )
    if worth and not (humps and keep > HUMP_OVERRULES * upper):
        keeps = [keep, *(proposed_keep(combined, p)[0] for p in more_pis())]
        keep = float(np.median([k for k in keeps if k < KEEP_ALL]))
        info.update(keep_share=round(keep, 4), proposed_keep_shares=[round(k, 4) for k in keeps])
        info["default"] = (
            f"probability 0.5 at the best expected cut (keeps {keep:.0%} of the survey)"
        )
        return float(np.quantile(combined, 1 - keep)), None
    if humps:
        kept = float(np.mean(combined >= hump_cut))
        info["default"] = (
            f"probability 0.5 between the two humps of the survey's scores (a sparse field: "
            f"keeps {kept:.0%} of the survey)"
        )
        info["humps_cut"] = True
        return hump_cut, None
    share, why = (None, None) if radial is None else radial_cut(combined, radial, in_particle, info)
    info["default"] = why or "every candidate: weak ranking"
    if share is not None:
        return float(np.quantile(combined, 1 - share)), None
    return float(np.quantile(combined, 1 - keep)), 0.0


def radial_cut(
    combined: np.ndarray, radial: np.ndarray, in_particle: np.ndarray | None, info: dict
) -> tuple[float | None, str | None]:
    """The single boxes' second opinion on the cut (:func:`default_cut`): the share of the
    survey's ``combined`` scores ``(N,)`` that the best expected cut keeps with ``radial``
    ``(N,)`` (:func:`radial_probability`) standing for the truth, when that cut is worth
    making and the radial profiles give the candidates ``in_particle`` ``(N,)`` a mean
    probability of at least :data:`RADIAL_AGREES` (else None), and what the default then is
    (None when the profiles propose no cut worth making). ``info`` records the opinion."""
    share, worth, best, every = proposed_keep(combined, radial)
    info.update(radial_keep_share=round(share, 4), radial_expected_gain=round(best - every, 4))
    agrees = _radial_agreement(radial, in_particle)
    if agrees is not None:
        info["radial_on_particle_classes"] = round(agrees, 4)
    if not worth:
        return None, None
    if agrees is not None and agrees < RADIAL_AGREES:
        return None, (
            f"every candidate: the radial profiles call the particle classes' candidates "
            f"particles with mean probability {agrees:.2f} (under {RADIAL_AGREES:.2f})"
        )
    info["keep_share"] = round(share, 4)
    return share, (
        f"probability 0.5 at the radial profiles' best expected cut (the classes could "
        f"not judge the ranking; keeps {share:.0%} of the survey)"
    )


def hump_in_particle_classes(hump: np.ndarray, in_particle: np.ndarray | None, info: dict) -> bool:
    """Whether the candidates of the scores' upper ``hump`` ``(N,)`` sit in the classes'
    particle classes (``in_particle`` ``(N,)``) more often than the candidates overall (True
    without classes to ask). Particles of a sparse field do (0.50-0.78 against 0.24-0.45);
    a rare strong feature that scores high, ice crystals, does not (0.53 against 0.60;
    ``benchmarks/picking_carry.md``). ``info`` records both shares."""
    if in_particle is None or not np.any(hump):
        return True
    in_particle = np.asarray(in_particle, bool)
    share, overall = float(in_particle[hump].mean()), float(in_particle.mean())
    info.update(hump_in_particle_classes=round(share, 4), in_particle_classes=round(overall, 4))
    if share > overall:
        return True
    info["hump_not_particles"] = (
        f"the upper hump of the scores ({hump.mean():.0%} of the candidates) sits in particle "
        f"classes less often ({share:.0%}) than the candidates overall ({overall:.0%}): a rare "
        "strong feature, not the particles"
    )
    return False


def radial_doubt(info: dict | None) -> str | None:
    """Why the adaptation record ``info`` doubts the single boxes' radial profiles: they gave
    the candidates of the survey's particle classes a mean probability under
    :data:`RADIAL_AGREES` (they follow contrast, not the particle); None when it does not
    (or never asked them)."""
    agrees = (info or {}).get("radial_on_particle_classes")
    if agrees is None or agrees >= RADIAL_AGREES:
        return None
    return (
        f"the picker's survey doubts the radial profiles (they call its particle classes' "
        f"candidates particles with mean probability {agrees:.2f}, under {RADIAL_AGREES:.2f})"
    )


def picks_trusted(info: dict | None) -> str | None:
    """Why the picks need no single box's radial profile to judge them, from the adaptation
    record ``info``: the default threshold fell between two clear humps of the survey's
    scores whose upper one sits in the particle classes (:func:`default_cut`), so the
    ranking already told the particles from the rest; on such sparse fields the radial
    verdicts removed particles more often than junk (``benchmarks/clean_on_picks.md``).
    None otherwise (or without a record)."""
    if not (info or {}).get("humps_cut"):
        return None
    return (
        "the picks are the upper of two clear humps of the picker's scores (a sparse field), "
        "which a radial profile alone does not overrule"
    )


def _radial_agreement(radial: np.ndarray, in_particle: np.ndarray | None) -> float | None:
    """The mean of ``radial`` ``(N,)`` over the candidates ``in_particle`` ``(N,)``; None
    without them."""
    if in_particle is None or not np.any(in_particle):
        return None
    return float(np.mean(radial[np.asarray(in_particle, bool)]))


def mixture_cut(scores: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """A two-component Gaussian mixture of ``scores`` ``(N,)`` with one shared variance: the
    score at or above which keeping candidates has the best expected F1 when each is a
    particle with its probability of the upper component (as :func:`proposed_keep` with the
    classes' ``pi``), how many standard deviations apart the means lie, and the upper
    component's weight."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(scores, np.float64).reshape(-1, 1)
    if len(x) < 10 or np.ptp(x) == 0:
        return float(np.min(x)) if len(x) else 0.0, 0.0, 1.0
    g = GaussianMixture(2, covariance_type="tied", random_state=seed).fit(x)
    means = g.means_.ravel()
    hi = int(np.argmax(means))
    separation = float(abs(means[1] - means[0]) / np.sqrt(g.covariances_.ravel()[0]))
    f1 = expected_f1(x.ravel(), g.predict_proba(x)[:, hi])
    cut = float(np.sort(x.ravel())[::-1][int(np.argmax(f1))])
    return cut, separation, float(g.weights_[hi])


def combined_ranker(
    ranker: Ranker | None,
    classes: SurveyClasses,
    scales: list[tuple[float, float]],
    cut: float,
    n_features: int,
) -> Ranker:
    """One :class:`Ranker` whose log-odds are the standardised template match plus the
    standardised log-odds of ``ranker`` (when there is one), less ``cut``: ``scales`` are
    the (mean, sd) of the match, then of the ranker's log-odds, on the survey."""
    (m_mean, m_sd), *rest = scales
    n_blob = len(BLOB_NAMES)
    weights, blob, bias = np.zeros(n_features - n_blob), np.zeros(n_blob), 0.0
    info = {} if ranker is None else dict(ranker.info)
    if ranker is not None:
        r_mean, r_sd = rest[0]
        weights = ranker.weights / r_sd
        if ranker.blob_weights is not None:
            blob = ranker.blob_weights / r_sd
        bias = (ranker.bias - r_mean) / r_sd
    info.update(match_scale=[round(m_mean, 5), round(m_sd, 5)], cut=round(cut, 4))
    return Ranker(weights, bias - m_mean / m_sd - cut, info, blob, classes.templates, 1.0 / m_sd)


def adapt(
    model: PickerModel,
    survey: dict[str, tuple[np.ndarray, Embedded]],
    job: PickJob,
) -> Adaptation:
    """Learn the ranker and the default threshold on the surveyed micrographs
    (``{key: (image, embedded)}``) and score their candidates with them (the map's score
    when no ranker could be learned); a threshold the user set (``job.threshold``) stays."""
    ranker, info, threshold, classes = learn_ranker(model, survey.values(), job)
    scorer = ranker if ranker is not None else model.ranker
    scored = replace(job, ranker=ranker, threshold=pick_threshold(job.threshold, threshold))
    picks = {k: candidates_of(model, e, scored, scorer).picks for k, (_, e) in survey.items()}
    return Adaptation(ranker, threshold, picks, classes, info)


def pick_threshold(given: float | None, adapted: float | None) -> float | None:
    """The threshold picking uses: the user's when given, else the adapted default."""
    return given if given is not None else adapted


def survey_micrographs(
    model: PickerModel,
    paths: dict[str, Path],
    diameter: float,
    angpix: float | None = None,
    skips: SkipLog | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, tuple[np.ndarray, Embedded]]:
    """The first :data:`SURVEY` micrographs of ``paths`` (``{key: path}``) read and embedded
    (``on_progress(1)`` after each); with ``skips``, one that cannot be read is left out
    through it and the next taken."""
    from cryosift.io.micrographs import read_micrograph
    from cryosift.picking.run import embed_image

    out: dict[str, tuple[np.ndarray, Embedded]] = {}
    for key, path in paths.items():
        if len(out) == SURVEY:
            break
        try:
            image = read_micrograph(path, angpix).image
        except InputError as exc:
            if skips is None:
                raise
            skips.skip(exc, path)
            continue
        out[key] = (image, embed_image(model, image, diameter))
        if on_progress:
            on_progress(1)
    if not out:
        raise (skips or SkipLog()).none_left()
    return out


def ranker_json(ranker: Ranker | None) -> dict | None:
    """``ranker`` as JSON-ready values (:meth:`Ranker.from_dict` reads them back; the
    templates to 5 decimals, their values being of order 1)."""
    if ranker is None:
        return None
    d = ranker.to_dict()
    if d["templates"] is not None:
        d["templates"] = d["templates"].astype(np.float64).round(5)
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in d.items()}


def prepare_picking(
    model: PickerModel,
    paths: dict[str, Path],
    job: PickJob,
    angpix: float | None = None,
    learn: bool = True,
    example: tuple | None = None,
    skips: SkipLog | None = None,
    progress: Progress = no_progress,
) -> tuple[PickJob, dict, dict, SurveyClasses | None]:
    """Survey the first micrographs of ``paths`` (``{key: path}``): choose the particle
    cluster (from ``example``, an annotated micrograph and its picks, when given) and, when
    ``learn``, adapt the ranker and the default threshold. Returns the job to pick the rest
    with, the surveyed micrographs' candidates by key (scored as the rest will be), the state
    to record (``cluster``, ``cluster_choice``, ``ranker``, ``threshold``, ``adapt``) and
    the survey's classes (None without adaptation). A surveyed micrograph that cannot be
    read is left out through ``skips`` (raised without it) and the next one surveyed.
    Its steps go to a "survey" task of ``progress``: each micrograph embedded and the end,
    at most :func:`survey_steps`."""
    from cryosift.picking.run import active_ranker, choose_cluster, cluster_from_survey

    done = progress("survey", survey_steps(len(paths)))
    survey = survey_micrographs(model, paths, job.diameter, angpix, skips, done)
    if example is not None:
        cluster, how = choose_cluster(model, list(paths.values()), job.diameter, example)
    else:
        cluster, how = cluster_from_survey(model, [e for _, e in survey.values()], job.diameter)
    job = replace(job, cluster=cluster)
    state = {"cluster": cluster, "cluster_choice": how, "ranker": None, "threshold": None}
    state["adapt"] = None
    if learn:
        t0 = time.perf_counter()
        adapted = adapt(model, survey, job)
        state["ranker"] = ranker_json(adapted.ranker)
        state["threshold"] = adapted.threshold
        state["adapt"] = {**adapted.info, "seconds": round(time.perf_counter() - t0, 3)}
        done(1)
        return job_from_state(job, state), adapted.picks, state, adapted.classes
    ranker = active_ranker(model, job)
    picks = {k: candidates_of(model, e, job, ranker).picks for k, (_, e) in survey.items()}
    done(1)
    return job, picks, state, None


def survey_steps(micrographs: int) -> int:
    """The steps :func:`prepare_picking` reports on ``micrographs`` micrographs: one per
    micrograph surveyed (at most :data:`SURVEY`), one for the choice and adaptation."""
    return min(SURVEY, micrographs) + 1


def job_from_state(job: PickJob, state: dict) -> PickJob:
    """``job`` with the cluster, the ranker and the default threshold a previous run recorded
    (:func:`prepare_picking`); a threshold the user set stays."""
    ranker = state.get("ranker")
    return replace(
        job,
        cluster=int(state["cluster"]),
        ranker=None if ranker is None else Ranker.from_dict(ranker),
        threshold=pick_threshold(job.threshold, state.get("threshold")),
    )
