"""The survey's 2D classes: what is common to many candidates is the particle.

At low SNR one candidate's box says little, and what it says follows contrast: a carbon edge
or a crisp ice crystal looks more like "something" than a faint particle does. An average of
N aligned boxes has about sqrt(N) times the SNR of one, so the survey's candidates are
2D-classified (:func:`cryosift.classify.align.classify`) and each class *average* is
judged by :func:`cryosift.classify.judge.judge_classes` (a line or edge, round blobs of
several sizes or a rare strong blob, or the particle, with its estimated share).

Boxes are ``(N, n, n)`` with the candidate at pixel ``n // 2``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cryosift.classify.judge import (  # noqa: F401  (re-exported for the picker's tests)
    JUNK_KINDS,
    MAX_OUTER,
    RARE,
    STRONG,
    ClassJudgement,
    judge_classes,
)

if TYPE_CHECKING:
    from cryosift.classify.align import ClassifyResult

#: Side of the boxes classified, in particle diameters, and the side they are cropped to.
BOX_DIAMETERS = 2.0
CLASS_SIZE = 40
#: Classes of the survey (fewer when there are fewer than :data:`PER_CLASS` per class).
CLASSES = 24
PER_CLASS = 40
#: Alignment iterations of the survey classification.
ITERATIONS = 4


def particle_radius(side: int) -> float:
    """The particle radius (px) in a class box of ``side`` px (:data:`BOX_DIAMETERS`)."""
    return side / (2 * BOX_DIAMETERS)


@dataclass
class SurveyClasses:
    """The survey's classification: class ``averages`` ``(K, n, n)``, each candidate's class
    ``labels`` ``(N,)``, the ``judgement``, the ``seconds`` it took and the classification
    ``result`` (:class:`cryosift.classify.align.ClassifyResult`: every image's rotation and
    shift, for averages of subsets)."""

    averages: np.ndarray
    labels: np.ndarray
    judgement: ClassJudgement
    seconds: float
    result: ClassifyResult | None = None

    @property
    def templates(self) -> np.ndarray:
        """``(P, n, n)`` float32 the particle classes' averages (5 decimals: they survive
        a JSON record exactly)."""
        return rounded(self.averages[self.judgement.particle])

    @property
    def pi(self) -> np.ndarray:
        """``(N,)`` the estimated particle share of each candidate's class."""
        return self.judgement.pi[self.labels]

    @property
    def in_particle_class(self) -> np.ndarray:
        """``(N,)`` bool: the candidate's class was judged particle."""
        return self.judgement.particle[self.labels]


def rounded(images: np.ndarray) -> np.ndarray:
    """``images`` as float32 rounded to 5 decimals."""
    return np.round(np.asarray(images, np.float64), 5).astype(np.float32)


def class_boxes(image: np.ndarray, rc: np.ndarray, diameter: float) -> np.ndarray:
    """``(N, s, s)`` boxes of :data:`BOX_DIAMETERS` particle ``diameter`` (px of ``image``
    ``(rows, cols)``) around candidates at ``rc`` ``(N, 2)`` (row, col), padded where they
    leave it, Fourier-cropped to :data:`CLASS_SIZE` (never enlarged)."""
    from cryosift.extract.boxes import crop_boxes
    from cryosift.preprocess.fourier import fourier_crop

    box = max(8, 2 * round(BOX_DIAMETERS * diameter / 2))
    xy = np.asarray(rc, np.float64).reshape(-1, 2)[:, ::-1]
    boxes = crop_boxes(image, xy, box, pad=True)
    return fourier_crop(boxes, min(CLASS_SIZE, box)) if len(boxes) else boxes


def classify_survey(boxes: np.ndarray, seed: int = 0, device: str = "cpu") -> SurveyClasses:
    """Classify the survey's candidate ``boxes`` ``(N, n, n)`` (:func:`class_boxes`) and judge
    the classes; deterministic per ``seed``."""
    from cryosift.classify.align import ClassifySettings, classify

    t0 = time.perf_counter()
    n = boxes.shape[-1]
    radius = particle_radius(n)
    k = int(min(CLASSES, max(2, len(boxes) // PER_CLASS)))
    settings = ClassifySettings(classes=k, iterations=ITERATIONS, radius=radius, seed=seed)
    result = classify(boxes, settings, device)
    judgement = judge_classes(result.averages, result.counts, radius)
    seconds = time.perf_counter() - t0
    return SurveyClasses(result.averages, result.labels, judgement, seconds, result)


def template_match(templates: np.ndarray, boxes: np.ndarray, batch: int = 1024) -> np.ndarray:
    """:func:`cryosift.classify.judge.template_match` of ``boxes`` as :func:`class_boxes`
    cuts them (the particle radius a quarter of their side)."""
    from cryosift.classify.judge import template_match as match

    return match(templates, boxes, particle_radius(boxes.shape[-1]), batch)


def held_out_matches(classes: SurveyClasses, boxes: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``(N,)`` :func:`template_match` of each survey box against the particle classes
    averaged *without* its micrograph (``group`` ``(N,)``): the match a box of a new
    micrograph would get, not inflated by its own place in the average. With one
    micrograph, the averages of all."""
    import torch

    from cryosift.classify.align import Aligner, ClassifySettings, normalise
    from cryosift.classify.run import subset_averages

    particle = classes.judgement.particle
    groups = np.unique(group)
    if len(groups) < 2 or classes.result is None:
        return template_match(classes.templates, boxes)
    n = boxes.shape[-1]
    aligner = Aligner(n, ClassifySettings(radius=particle_radius(n)), torch.device("cpu"))
    x = normalise(torch.as_tensor(np.asarray(boxes, np.float32)), aligner.mask).numpy()
    out = np.zeros(len(boxes))
    for g in groups:
        held = group == g
        averages = subset_averages(x, classes.result, ~held)[particle]
        out[held] = template_match(rounded(averages), boxes[held])
    return out


def survey_classes_figure(classes: SurveyClasses, path) -> None:
    """A PNG (to a path or a binary file) of the survey's class averages, largest first, each
    titled with its share of the candidates and its verdict and framed green (particle) or
    red (junk), with the particle diameter given as a dashed circle: what the picker took for
    a particle, and at what size."""
    from cryosift.classify.run import gallery

    j = classes.judgement
    order = np.argsort(-j.counts, kind="stable")
    total = max(int(j.counts.sum()), 1)
    titles = [f"{j.counts[k] / total:.0%} {j.verdict[k]}" for k in order]
    diameter = 2 * particle_radius(classes.averages.shape[-1])
    gallery(path, classes.averages[order], titles, j.particle[order], j.counts[order], diameter)
