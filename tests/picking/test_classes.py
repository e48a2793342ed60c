"""The survey's 2D classes: junk classes (a line, an empty class, a rare strong blob) are told
from the classes of a faint particle that most candidates hold, on averages built by hand and
on a stack classified for real; the expected-F1 cut and the figure."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, special

from cryosift.classify.judge import (
    JUNK_KINDS,
    MAX_OUTER,
    OFF_CENTRE,
    ROUND,
    ROUND_BLOB,
    asymmetry,
    half_radius,
    recentred,
)
from cryosift.picking.adapt import expected_f1
from cryosift.picking.classes import (
    RARE,
    STRONG,
    classify_survey,
    judge_classes,
    survey_classes_figure,
)

N, R = 40, 10.0  # box side and particle radius (2 diameters per box)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.indices((N, N)) - N // 2
    return yy.astype(float), xx.astype(float)


def particle(amplitude: float = 1.0) -> np.ndarray:
    """A soft dark disc of radius R at the centre."""
    yy, xx = _grid()
    return -amplitude * np.exp(-(yy**2 + xx**2) / (2 * (0.6 * R) ** 2))


def crisp_blob(amplitude: float, size: float = 0.6, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
    """A sharp-edged (0.7 px) dark disc of ``size`` R (an ice crystal), its centre ``(dy, dx)``
    px from the box's."""
    yy, xx = _grid()
    return -amplitude * special.expit((size * R - np.hypot(yy - dy, xx - dx)) / 0.7)


def line(angle: float = 0.4) -> np.ndarray:
    """A step across the whole box (a carbon edge) through the centre."""
    yy, xx = _grid()
    return np.where(np.cos(angle) * xx + np.sin(angle) * yy > 0, -1.0, 1.0)


def _masked(a: np.ndarray) -> np.ndarray:
    yy, xx = _grid()
    return a * (np.hypot(yy, xx) <= 1.3 * R)


def test_judgement_of_hand_made_averages():
    """Twelve classes of one faint particle at slightly different strengths, one empty class,
    one line through the box and one rare strong blob: the particle classes are accepted,
    the three junk classes rejected for their own reasons."""
    rng = np.random.default_rng(0)
    amps = np.linspace(0.6, 1.2, 12)
    averages = [_masked(particle(a) + rng.normal(0, 0.02, (N, N))) for a in amps]
    averages += [_masked(rng.normal(0, 0.02, (N, N)))]  # empty
    averages += [_masked(0.5 * line())]
    averages += [_masked(crisp_blob(3 * STRONG))]
    counts = np.array([100] * 12 + [100, 100, 30])
    j = judge_classes(np.stack(averages), counts, R)
    assert j.verdict[12] == "weak" and j.pi[12] == 0
    assert j.verdict[13] == "line or edge" and j.pi[13] == 0
    assert j.verdict[14] == "rare strong blob" and j.pi[14] == 0
    assert counts[14] / counts.sum() < RARE
    assert sum(v == "particle" for v in j.verdict[:12]) >= 6
    assert all(v in ("particle", "weak") for v in j.verdict[:12])
    assert j.verdict[11] == "particle" and j.pi[11] == 1.0  # the strongest particle class
    assert 0.3 < j.particle_share < 0.8
    summary = j.summary()
    assert summary["particle_classes"] == int(j.particle.sum()) and summary["classes"] == 15


def test_strong_classes_holding_many_candidates_are_the_particle():
    """A sparse field of clear particles: most candidates are background and the particle's
    classes, strong against them, hold a third of the candidates. They are not rare, so they
    are the particle, and the background classes are weak."""
    rng = np.random.default_rng(1)
    averages = [_masked(particle(1.0) + rng.normal(0, 0.02, (N, N))) for _ in range(4)]
    averages += [_masked(particle(0.1) + rng.normal(0, 0.02, (N, N))) for _ in range(8)]
    j = judge_classes(np.stack(averages), np.full(12, 50), R)
    assert j.verdict[:4] == ["particle"] * 4 and set(j.verdict[4:]) == {"weak"}
    assert j.amplitude[0] > STRONG


def views(amplitude: float, angle: float) -> np.ndarray:
    """A particle with features: a soft disc with a dense lobe off its centre at ``angle``."""
    yy, xx = _grid()
    lobe = np.exp(-((yy - 0.5 * R * np.sin(angle)) ** 2 + (xx - 0.5 * R * np.cos(angle)) ** 2)
                  / (2 * (0.3 * R) ** 2))  # fmt: skip
    return amplitude * (particle(0.6) - lobe)


def test_asymmetry_and_half_radius_of_simple_shapes():
    """A disc is round (asymmetry under half ROUND: the rings' pixels leave a little) and its
    half radius is its radius; a
    particle with a lobe off its centre is not round; the noise of a mean of few images is not
    counted as structure."""
    rng = np.random.default_rng(5)
    for size in (0.4, 0.6, 0.9):
        disc = crisp_blob(3.0, size)
        assert abs(asymmetry(_masked(disc), 10**6, R)) < ROUND / 2
        assert half_radius(_masked(disc), R) == pytest.approx(size * R, abs=0.75)
    assert asymmetry(_masked(views(3.0, 0.3)), 10**6, R) > 4 * ROUND
    noisy = _masked(crisp_blob(1.0) + rng.normal(0, 1 / np.sqrt(20), (N, N)))  # mean of 20
    assert asymmetry(noisy, 20, R) < ROUND < asymmetry(noisy, 10**6, R)


def test_round_blobs_of_several_sizes_are_ice_whatever_their_share():
    """Large faint particles among many ice crystals: strong featureless discs of three sizes
    hold a fifth of the candidates, more than RARE, so rarity cannot call them junk; being round
    and of several sizes they are round blobs, and the faint particle's classes are the
    particle. Strong classes with features (a sparse field's clear particle views), as many,
    stay the particle; so do strong round classes of one size (a spherical particle)."""
    rng = np.random.default_rng(6)
    pairs = zip(np.linspace(0.3, 0.5, 12), np.linspace(0, 6, 12), strict=True)
    faint = [_masked(views(a, t) + rng.normal(0, 0.02, (N, N))) for a, t in pairs]
    ice = [_masked(crisp_blob(3 * STRONG, size)) for size in (0.4, 0.6, 0.9)]
    counts = np.array([60] * 12 + [60] * 3)
    assert counts[12:].sum() / counts.sum() > RARE
    j = judge_classes(np.stack([*faint, *ice]), counts, R)
    assert j.verdict[12:] == [ROUND_BLOB] * 3 and not j.pi[12:].any()
    assert ROUND_BLOB in JUNK_KINDS
    assert sum(v == "particle" for v in j.verdict[:12]) >= 6
    background = [_masked(particle(0.1) + rng.normal(0, 0.02, (N, N))) for _ in range(12)]
    for strong in ([_masked(views(6.0, t)) for t in (0.0, 2.0, 4.0)],
                   [_masked(crisp_blob(3 * STRONG)) for _ in range(3)]):  # fmt: skip
        j = judge_classes(np.stack([*background, *strong]), counts, R)
        assert j.verdict[12:] == ["particle"] * 3


def test_crystals_left_off_centre_are_judged_about_their_own_centre():
    """The alignment leaves a large crystal a pixel or two off the box's centre; about the
    box's centre that offset reads as structure (asymmetry over ROUND), about its own it does
    not. Recentring moves a disc's centre onto the box's, keeps its size, and leaves a
    particle's features as they were; two such crystals of two sizes, beside the classes of a
    clear particle that most candidates hold, are round blobs whatever their share."""
    yy, xx = _grid()
    for size, (dy, dx) in ((0.6, (1.3, -0.9)), (0.85, (-1.6, 0.4))):
        moved = crisp_blob(3.0, size, dy, dx)
        assert asymmetry(_masked(moved), 10**6, R) > ROUND
        back = recentred(_masked(moved), R)
        assert abs(asymmetry(back, 10**6, R)) < ROUND / 2
        inside = np.hypot(yy, xx) <= 0.9 * size * R
        assert np.abs(back - crisp_blob(3.0, size))[inside].max() < 0.15
        assert half_radius(back, R) == pytest.approx(size * R, abs=0.75)
    lobed = _masked(views(3.0, 0.3))
    assert asymmetry(recentred(lobed, R), 10**6, R) > 3 * ROUND
    rng = np.random.default_rng(7)
    clear = [_masked(views(1.0, t) + rng.normal(0, 0.02, (N, N))) for t in np.linspace(0, 6, 10)]
    ice = [_masked(crisp_blob(3 * STRONG, s, d, -d)) for s, d in ((0.6, 1.3), (0.85, -1.6))]
    counts = np.array([60] * 10 + [70, 70])
    assert counts[10:].sum() / counts.sum() > RARE
    j = judge_classes(np.stack([*clear, *ice]), counts, R)
    assert j.verdict[10:] == [ROUND_BLOB] * 2
    assert sum(v == "particle" for v in j.verdict[:10]) >= 5


def test_rare_strong_classes_with_features_are_the_clearest_views_not_ice():
    """A sparse field among ice: the particle's clearest views, strong and with features, hold
    under RARE of the candidates, as does one crisp featureless crystal. Rare and featureless
    is ice; rare with features is the particle, and its views lead the particle share."""
    rng = np.random.default_rng(8)
    background = [_masked(particle(a) + rng.normal(0, 0.02, (N, N)))
                  for a in np.linspace(0.05, 0.4, 14)]  # fmt: skip
    clear = [_masked(views(6.0, t)) for t in (0.5, 3.0)]
    counts = np.array([60] * 14 + [25, 25, 30])
    assert counts[14:].sum() / counts.sum() < RARE
    j = judge_classes(np.stack([*background, *clear, _masked(crisp_blob(3 * STRONG))]), counts, R)
    assert j.verdict[14:] == ["particle", "particle", "rare strong blob"]
    assert j.pi[14:16].tolist() == [1.0, 1.0] and j.pi[16] == 0
    assert j.verdict[0] == "weak" and j.spread


def test_no_spread_keeps_every_class():
    """Classes that all hold the same faint particle cannot be told apart: all are particle."""
    rng = np.random.default_rng(2)
    averages = np.stack([_masked(particle(1.0) + rng.normal(0, 0.01, (N, N))) for _ in range(10)])
    j = judge_classes(averages, np.full(10, 60), R)
    assert not j.spread and j.particle.all() and j.particle_share == pytest.approx(1.0)


def test_weak_class_beside_a_neighbour_is_off_centre_unless_the_structure_is_strong():
    """A class of weak particles that share a touching neighbour at one place has more
    structure outside than its own faint particle, but less than a typical class's particle:
    off-centre structure (junk for the survey, pi 0), not a line. The same average eight times
    stronger holds more outer structure than a typical particle: a line or edge. The
    verdict follows the outer structure's strength against the classes' particle."""
    rng = np.random.default_rng(4)
    amps = np.linspace(0.6, 1.2, 12)
    averages = [_masked(particle(a) + rng.normal(0, 0.02, (N, N))) for a in amps]
    weak = particle(0.15) + ndimage.shift(particle(0.6), (0, 2 * R), order=1)
    assert OFF_CENTRE in JUNK_KINDS
    for scale in (1.0, 8.0):
        j = judge_classes(np.stack([*averages, _masked(scale * weak)]), np.full(13, 1000), R)
        assert j.outer[12] > MAX_OUTER and j.pi[12] == 0
        assert j.verdict[12] == (OFF_CENTRE if scale == 1.0 else "line or edge")
        assert sum(v == "particle" for v in j.verdict[:12]) >= 6


def _stack(rng, n_particle=420, n_empty=90, n_line=60, n_blob=30) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of a faint particle (most), pure noise, lines at random angles and a few strong
    crisp blobs, with noise of sd 1; and the kind of each (0-3)."""
    kinds = np.repeat(np.arange(4), [n_particle, n_empty, n_line, n_blob])
    boxes = rng.normal(0, 1, (len(kinds), N, N))
    boxes[kinds == 0] += particle(0.8)
    for i in np.flatnonzero(kinds == 2):
        boxes[i] += 1.0 * line(rng.uniform(0, 2 * np.pi))
    boxes[kinds == 3] += crisp_blob(4.0)
    return boxes.astype(np.float32), kinds


def test_classified_stack_rejects_junk_and_keeps_the_faint_particle():
    """Classified for real: the classes made mostly of lines are called lines or edges, those
    of strong blobs rare strong blobs, and most of the faint particles land in particle
    classes while few of the pure-noise boxes do; the same seed gives the same classes."""
    rng = np.random.default_rng(3)
    boxes, kinds = _stack(rng)
    sc = classify_survey(boxes, seed=0)
    j = sc.judgement
    for c in range(len(j.counts)):
        members = kinds[sc.labels == c]
        if len(members) < 10:
            continue
        major = np.bincount(members, minlength=4).argmax()
        if major == 2:
            assert j.verdict[c] == "line or edge"
        if major == 3:
            assert j.verdict[c] == "rare strong blob"
    inside = sc.in_particle_class
    assert inside[kinds == 0].mean() > 0.6
    assert inside[kinds == 1].mean() < 0.3
    assert not inside[kinds == 2].any() and not inside[kinds == 3].any()
    again = classify_survey(boxes, seed=0)
    np.testing.assert_array_equal(again.labels, sc.labels)
    assert again.judgement.verdict == j.verdict


def test_survey_figure_decodes():
    rng = np.random.default_rng(4)
    boxes, _ = _stack(rng, 120, 20, 20, 10)
    sc = classify_survey(boxes, seed=0)
    buf = io.BytesIO()
    survey_classes_figure(sc, buf)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        im.load()
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 50


def test_expected_f1_cut():
    """A ranking that puts the particles first has its best expected F1 (1.0) where it has
    kept exactly them; a ranking unrelated to them is best keeping everything."""
    pi = np.r_[np.ones(30), np.zeros(70)]
    f1 = expected_f1(np.r_[np.linspace(2, 1, 30), np.linspace(0, -1, 70)], pi)
    assert np.argmax(f1) == 29 and f1.max() == pytest.approx(1.0)
    flat = expected_f1(np.zeros(100), np.full(100, 0.4))
    assert np.argmax(flat) == 99
