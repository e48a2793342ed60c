"""Outlier removal on real micrographs: a labelled benchmark cut from EMPIAR-10017.

From the 20 EMPIAR-10017 micrographs and their 12,823 CryoPPP labels
(``../shared/data/empiar10017``; particle diameter D = 108 px at 1.77 Å/px), boxes of side
1.25, 1.5 and 2 D are cut with ``cryosift.extract`` and labelled:

- **inlier**: centred on a labelled particle;
- **partial**: the particle sits at the box edge, its centre 0 to 0.265 R inside it
  (R = D/2), so that a third to a half of the particle leaves the box; the edge is drawn
  at random among the four, with the particle anywhere along its middle two thirds, and
  redrawn while the box centre is within half a diameter of another labelled particle (such
  a box is a pick of that particle by the matching rule of ``cryosift.evaluate.picks``: in
  this crowded field that was 30 % of the partial boxes at 1.5 D and 41 % at 2 D, and the
  detector rightly kept most of those with a particle at the very centre);
- **noise**: the box centre is at least one diameter from every labelled particle and a
  quarter diameter from every blob of a plain Laplacian-of-Gaussian at the particle scale
  (``picking_empiar10017.log_picker``; no learning, nothing shared with the detector). The
  labels are incomplete (``../shared/data/README.md``): placed by the labels alone, 42 of the
  334 noise boxes had such a blob at their centre, by eye most of them an unlabelled
  particle, and those were most of the noise boxes every preset kept. They are redrawn from
  the other noise candidates; the boxes placed by the labels alone are still judged, for
  comparison (``real_outliers_unlabelled.csv``);
- **multiple**: centred between two labelled particles 0.6 to 1.0 D apart.

1000 inliers and 1000 outliers (334 / 333 / 333), the same particles at every box size. The
boxes are inverted (particles are dark in the JPEGs; the ``radial`` preset finds the polarity
itself), Fourier-cropped to 55 px as ``cryosift clean`` does, and judged by every preset
(``radial``, the default; ``paper``; ``reference``) with r = D/2 in cropped px and A = 10,
through the same code as ``cryosift clean`` (:func:`cryosift.outliers.clean.clean_images`).

The default preset also runs on the 1000 inliers with 5 %, 20 % and 50 % outliers
(``real_outliers_fractions.csv``), and on harder copies of the same boxes
(``real_outliers_variants.csv``): **low contrast**, noise added to every micrograph (Gaussian,
coloured with the micrograph's own rotationally averaged power spectrum, like real ice) until
the mean inlier's disc-minus-ring contrast (the mean inlier box's mean inside the particle
circle minus its mean outside, over the boxes' standard deviation outside, at 2 D) falls
from about 0.14 to each of :data:`LOW_CONTRASTS` (0.12 down to 0.02); and the micrographs
**binned by 2** (54 px particles).
For each: TPR and TNR by outlier type, and the separability the decision found; and
``voted_*``, the rates of ``cryosift clean``'s defaults, where the 2D classes vote when the
separability is not good (:mod:`cryosift.classify.vote`).
Writes ``benchmarks/results/real_outliers.csv``,
``real_outliers_gallery_<preset>_<f>d.png``
(what each verdict takes, with the true type of every box) and
``real_outliers_noise_boxes.png`` (48 "noise" boxes, to count by eye how many hold a
particle), next to ``real_outliers_inlier_boxes.png``. ``real_outliers_unlabelled.csv``
judges the noise boxes as the labels alone place them: TPR / TNR, how many noise boxes have a
LoG blob within a quarter diameter of their centre (``real_outliers_noise_with_blob.png``),
how often such boxes are kept, and TNR with them set aside;
``real_outliers_kept_noise_context.png`` shows the noise boxes the default keeps there in their
micrograph, with the labelled particles around them.
Run: ``python benchmarks/real_outliers.py`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from cryosift.classify.vote import vote_if_wanted
from cryosift.evaluate.outliers import outlier_rates
from cryosift.extract.boxes import boxes_inside, crop_boxes
from cryosift.io.coords import read_coords
from cryosift.io.micrographs import read_micrograph
from cryosift.outliers.clean import clean_images, judge_stack
from cryosift.outliers.detector import DetectorParams
from cryosift.outliers.rules import DEFAULT_PRESET, PRESETS, get_rules
from cryosift.preprocess.fourier import fourier_crop

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "empiar10017"
RESULTS = ROOT / "benchmarks" / "results"
DIAMETER = 108.0  # px of the JPEGs
FACTORS = (1.25, 1.5, 2.0)
SIZE, PEAKS = 55, 10
COUNTS = {"inlier": 1000, "noise": 334, "partial": 333, "multiple": 333}
#: TPR and TNR the default preset must reach on the boxes as recorded (issue 21).
TARGET = 0.95
#: Disc-minus-ring contrasts of the low-contrast variants: 0.10 and 0.08 bracket the real
#: low-contrast apoferritin of issue 33 (particle signal 1.65 noise sd) and exposed the
#: moderate check's blind spot; 0.12 and 0.09 were made after its fix was chosen (held
#: out); 0.05 and 0.02 go below it.
LOW_CONTRASTS = (0.12, 0.1, 0.09, 0.08, 0.05, 0.02)


@dataclass(frozen=True)
class Variant:
    """A harder copy of the benchmark: micrographs binned by ``bin``, then noise of
    ``noise`` times the micrograph's standard deviation, coloured with its own spectrum."""

    name: str
    bin: int = 1
    noise: float = 0.0


ORIGINAL = Variant("original")


def _even(x: float) -> int:
    return 2 * round(x / 2)


def candidates(picks: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> dict:
    """Candidate centres ``(n, 2)`` (x, y) in one micrograph for inliers, noise and multiples.
    Partials are drawn from the inlier candidates and moved to a box edge per box size."""
    largest = _even(max(FACTORS) * DIAMETER)
    tree = cKDTree(picks)
    inside = boxes_inside(picks, largest, shape)
    pairs = np.array(sorted(tree.query_pairs(1.0 * DIAMETER)), dtype=np.int64).reshape(-1, 2)
    if len(pairs):
        dist = np.linalg.norm(picks[pairs[:, 0]] - picks[pairs[:, 1]], axis=1)
        pairs = pairs[dist >= 0.6 * DIAMETER]
    mids = (picks[pairs[:, 0]] + picks[pairs[:, 1]]) / 2 if len(pairs) else np.zeros((0, 2))
    mids = mids[boxes_inside(mids, largest, shape)]
    trial = rng.uniform([0, 0], [shape[1], shape[0]], size=(4000, 2))
    far = tree.query(trial)[0] >= DIAMETER
    noise = trial[far & boxes_inside(trial, largest, shape)]
    return {
        "inlier": picks[inside],
        "noise": noise,
        "multiple": mids,
    }


def partial_centres(
    particles: np.ndarray, box: int, rng: np.random.Generator, diameter: float = DIAMETER
) -> np.ndarray:
    """Box centres that put each particle at a random edge of its box, its centre 0 to
    0.265 R inside the edge (a third to a half of a disc of radius R leaves the box)."""
    n = len(particles)
    t = rng.uniform(0, 0.265 * diameter / 2, n)
    side = rng.integers(0, 4, n)
    along = rng.uniform(-box / 3, box / 3, n)
    normal = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], float)[side]  # towards the edge
    tangent = normal[:, ::-1]
    return particles - normal * (box / 2 - t)[:, None] + tangent * along[:, None]


def log_blobs() -> dict[str, np.ndarray]:
    """Per micrograph (path): the centres ``(n, 2)`` (x, y) of the blobs a plain
    Laplacian-of-Gaussian at the particle scale finds (``picking_empiar10017.log_picker``: no
    learning, nothing shared with the detector)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from picking_empiar10017 import log_picker

    return {
        str(path): log_picker(read_micrograph(path).image, DIAMETER)[["x", "y"]].to_numpy()
        for path in sorted((DATA / "images").glob("*.jpg"))
    }


def build(seed: int = 0, blobs: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The sampled boxes: ``micrograph`` (path), ``type``, ``x``, ``y`` (for partials: the
    particle that :func:`cut` puts at a box edge) and ``partial_seed``.

    With ``blobs`` (:func:`log_blobs`), a noise box with a blob within a quarter diameter of
    its centre (an unlabelled particle, most often) is redrawn from the other noise
    candidates, by a generator of its own: every other box is the same as without."""
    rng = np.random.default_rng(seed)
    pools: dict[str, list[pd.DataFrame]] = {k: [] for k in ("inlier", "noise", "multiple")}
    for path in sorted((DATA / "images").glob("*.jpg")):
        picks = read_coords(DATA / "coords" / f"{path.stem}.csv")[["x", "y"]].to_numpy()
        cands = candidates(picks, (4096, 4096), rng)
        for kind, centres in cands.items():
            pools[kind].append(
                pd.DataFrame({"micrograph": str(path), "x": centres[:, 0], "y": centres[:, 1]})
            )
    pools["partial"] = pools["inlier"]
    rows = []
    for kind, n in COUNTS.items():
        pool = pd.concat(pools[kind], ignore_index=True)
        chosen = np.sort(rng.choice(len(pool), n, replace=False))
        if kind == "noise" and blobs is not None:
            chosen = _clear_of_blobs(pool, chosen, blobs, np.random.default_rng([seed, 1]))
        take = pool.iloc[chosen].copy()
        take["type"] = kind
        rows.append(take)
    table = pd.concat(rows, ignore_index=True)
    table["partial_seed"] = rng.integers(0, 2**31, len(table))
    return table


def _clear_of_blobs(
    pool: pd.DataFrame,
    chosen: np.ndarray,
    blobs: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """``chosen`` rows of the noise ``pool`` with those on a blob (:func:`blob_distance`
    below a quarter diameter) replaced by rows, drawn at random, that are not."""
    marked = blob_distance(pool, blobs) < DIAMETER / 4
    spare = np.setdiff1d(np.flatnonzero(~marked), chosen)
    bad = marked[chosen]
    out = chosen.copy()
    out[bad] = rng.choice(spare, int(bad.sum()), replace=False)
    return np.sort(out)


def coloured_noise(image: np.ndarray, seed: int) -> np.ndarray:
    """Gaussian noise ``(rows, cols)`` with the rotationally averaged power spectrum of
    ``image`` and its standard deviation (the spectrum of real ice and of the detector)."""
    from scipy import fft as sfft

    ft = sfft.rfft2(image - image.mean(), workers=-1)
    ky = sfft.fftfreq(image.shape[0])[:, None]
    kx = sfft.rfftfreq(image.shape[1])[None, :]
    side = min(image.shape)
    shell = np.minimum((np.hypot(ky, kx) * side).astype(np.int64), side // 2).ravel()
    power = np.bincount(shell, (np.abs(ft) ** 2).ravel()) / np.bincount(shell)
    white = np.random.default_rng(seed).standard_normal(image.shape, dtype=np.float32)
    shaped = sfft.rfft2(white, workers=-1) * np.sqrt(power[shell]).reshape(ft.shape)
    noise = sfft.irfft2(shaped, s=image.shape, workers=-1)
    return (noise * (image.std() / noise.std())).astype(np.float32)


def micrograph(path: str, variant: Variant) -> np.ndarray:
    """One micrograph as ``variant`` sees it (binned, noise added; the noise seeded by the
    file name, so every run is the same)."""
    image = read_micrograph(path).image
    if variant.bin > 1:
        b = variant.bin
        rows, cols = (s // b * b for s in image.shape)
        image = image[:rows, :cols].reshape(rows // b, b, cols // b, b).mean(axis=(1, 3))
    if variant.noise:
        image = image + variant.noise * coloured_noise(image, zlib.crc32(Path(path).name.encode()))
    return image.astype(np.float32)


def clear_of_others(
    centre: np.ndarray, own: np.ndarray, labels: np.ndarray, diameter: float = DIAMETER
) -> bool:
    """Whether a partial box's ``centre`` (x, y) is at least half a diameter from every
    labelled particle ``(n, 2)`` but its ``own``: nearer, the box is a pick of that other
    particle (the matching rule of :func:`cryosift.evaluate.picks.match_one_to_one`), not a
    partial one."""
    others = labels[np.linalg.norm(labels - own, axis=1) > 1.0]
    return bool(np.linalg.norm(others - centre, axis=1).min(initial=np.inf) >= diameter / 2)


def cut_all(
    table: pd.DataFrame, factors=FACTORS, variant: Variant = ORIGINAL
) -> dict[float, np.ndarray]:
    """Boxes of side ``factor`` D for every row and factor, inverted and Fourier-cropped to
    ``SIZE``, from the micrographs as ``variant`` makes them. Partials whose box would leave
    the micrograph, or whose centre would fall within half a diameter of another labelled
    particle, are redrawn (another edge / offset)."""
    diameter = DIAMETER / variant.bin
    out = {f: np.empty((len(table), SIZE, SIZE), np.float32) for f in factors}
    for mic, group in table.groupby("micrograph", sort=False):
        image = micrograph(mic, variant)
        labels = read_coords(DATA / "coords" / f"{Path(mic).stem}.csv")[["x", "y"]].to_numpy()
        labels = labels / variant.bin
        idx = group.index.to_numpy()
        for factor in factors:
            box = _even(factor * diameter)
            centres = table[["x", "y"]].to_numpy() / variant.bin
            for i in idx[group.type.to_numpy() == "partial"]:
                rng = np.random.default_rng(int(table.partial_seed[i]))
                for _ in range(100):
                    c = partial_centres(centres[[i]], box, rng, diameter)
                    inside = boxes_inside(c, box, image.shape)[0]
                    if inside and clear_of_others(c[0], centres[i], labels, diameter):
                        centres[i] = c[0]
                        break
                else:
                    raise RuntimeError(f"no room for a partial box around particle {i}")
            out[factor][idx] = fourier_crop(-crop_boxes(image, centres[idx], box), SIZE)
    return out


def cut(table: pd.DataFrame, factor: float) -> tuple[np.ndarray, pd.DataFrame]:
    """The original boxes of side ``factor`` D (see :func:`cut_all`)."""
    return cut_all(table, (factor,))[factor], table


def contrast(images: np.ndarray, radius: float) -> float:
    """Disc-minus-ring contrast of ``(B, n, n)`` particle boxes: the mean box's mean inside
    the particle circle minus its mean outside, over the boxes' mean standard deviation
    outside."""
    n = images.shape[-1]
    yy, xx = np.indices((n, n)) - n // 2
    disc = np.hypot(yy, xx) <= radius
    mean = images.mean(axis=0)
    sd = float(images[:, ~disc].std(axis=1).mean())
    return float(mean[disc].mean() - mean[~disc].mean()) / sd


def evaluate(table: pd.DataFrame, presets=PRESETS) -> tuple[pd.DataFrame, dict]:
    """Every preset at every box size: TPR / TNR by outlier type, and per (factor, preset)
    the boxes ``(B, SIZE, SIZE)`` and the detection table."""
    truth = table.type.to_numpy()
    rows, verdicts = [], {}
    boxes = cut_all(table)
    for factor in FACTORS:
        images = boxes[factor]
        box = _even(factor * DIAMETER)
        radius = DIAMETER / 2 * SIZE / box
        for preset in presets:
            det = clean_images(images, radius, preset, peaks=PEAKS)
            rates = outlier_rates(det.verdict, truth)
            rows.append(
                {
                    "box_diameters": factor,
                    "box_px": box,
                    "preset": preset,
                    "r_px": round(radius, 2),
                    **{k: round(v, 3) for k, v in rates.items()},
                }
            )
            verdicts[(factor, preset)] = (images, det)
    return pd.DataFrame(rows), verdicts


def blob_distance(table: pd.DataFrame, blobs: dict[str, np.ndarray]) -> np.ndarray:
    """Distance (px) from each row's centre ``(x, y)`` to the nearest of its micrograph's
    ``blobs`` (:func:`log_blobs`)."""
    out = np.full(len(table), np.inf)
    for path, rows in table.groupby("micrograph").indices.items():
        out[rows] = cKDTree(blobs[path]).query(table[["x", "y"]].to_numpy()[rows])[0]
    return out


def unlabelled_check(table: pd.DataFrame, verdicts: dict, blob: np.ndarray) -> pd.DataFrame:
    """The noise boxes as the labels alone place them (``table`` from ``build()`` without
    blobs, judged in ``verdicts``): are those the default keeps unlabelled particles? Per box
    size: how many noise boxes have a blob within a quarter diameter of their centre (``blob``
    ``(boxes,)``), how often those and the other noise boxes are kept, the same share for the
    labelled particles, and TPR / TNR as labelled and with those noise boxes set aside."""
    truth = table.type.to_numpy()
    noise, junk = truth == "noise", truth != "inlier"
    rows = []
    for factor in FACTORS:
        kept = verdicts[(factor, DEFAULT_PRESET)][1].verdict.to_numpy() == "inlier"
        clear = junk & ~(noise & blob)
        rows.append({
            "box_diameters": factor,
            "inliers_with_blob": round(float(blob[truth == "inlier"].mean()), 3),
            "noise_with_blob": int((noise & blob).sum()),
            "kept_noise_with_blob": round(float(blob[noise & kept].mean()), 3),
            "removed_noise_with_blob": round(float(blob[noise & ~kept].mean()), 3),
            "TPR_as_labelled": round(float(kept[truth == "inlier"].mean()), 3),
            "TNR_as_labelled": round(float((~kept[junk]).mean()), 3),
            "TNR_noise_as_labelled": round(float((~kept[noise]).mean()), 3),
            "TNR_blob_noise_aside": round(float((~kept[clear]).mean()), 3),
            "TNR_noise_blob_noise_aside": round(float((~kept[noise & ~blob]).mean()), 3),
        })  # fmt: skip
    return pd.DataFrame(rows)


def context(table: pd.DataFrame, rows: np.ndarray, blob: np.ndarray, name: str) -> Path:
    """Boxes ``rows`` of ``table`` in their micrograph, 4.4 D across: the box's particle
    circle in red, every labelled particle in green, the distance to the nearest LoG blob
    ``blob`` ``(boxes,)`` (px) in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    half = round(2.2 * DIAMETER)
    cols = 6
    n_rows = -(-len(rows) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(cols * 2.2, n_rows * 2.3 + 0.4))
    for ax, i in zip(axes.ravel(), rows, strict=False):
        mic, x, y = table.micrograph[i], int(table.x[i]), int(table.y[i])
        image = read_micrograph(mic).image
        x0, y0 = max(0, x - half), max(0, y - half)
        ax.imshow(image[y0 : y + half, x0 : x + half], cmap="gray", interpolation="antialiased")
        labels = read_coords(DATA / "coords" / f"{Path(mic).stem}.csv")[["x", "y"]].to_numpy()
        near = np.abs(labels - [x, y]).max(axis=1) < half + DIAMETER
        for lx, ly in labels[near]:
            ax.add_patch(plt.Circle((lx - x0, ly - y0), DIAMETER / 2, fill=False, ec="lime"))
        ax.add_patch(plt.Circle((x - x0, y - y0), DIAMETER / 2, fill=False, ec="red", lw=1.5))
        ax.set_title(f"box {i}: LoG blob {blob[i]:.0f} px", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(
        "'noise' boxes the default keeps (placed by the labels alone), 1.5 D, in context: "
        "red = the box's particle circle, green = labelled particles",
        fontsize=8,
    )
    fig.tight_layout()
    path = RESULTS / name
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def noise_gain(table: pd.DataFrame, trial: float = 2.0):
    """The noise (times the micrograph's standard deviation) that brings the inliers' 2 D
    contrast to a target ``c``: with ``c = c0 / sqrt(1 + k s^2)``, ``k`` is measured once at
    noise ``trial`` on the inliers of a few micrographs."""
    inliers = table[table.type == "inlier"]
    some = inliers[inliers.micrograph.isin(sorted(inliers.micrograph.unique())[:6])]
    some = some.reset_index(drop=True)
    radius = DIAMETER / 2 * SIZE / _even(2 * DIAMETER)
    c0 = contrast(cut_all(some, (2.0,))[2.0], radius)
    c1 = contrast(cut_all(some, (2.0,), Variant("trial", noise=trial))[2.0], radius)
    k = ((c0 / c1) ** 2 - 1) / trial**2
    return lambda c: float(np.sqrt(((c0 / c) ** 2 - 1) / k))


def variants(table: pd.DataFrame) -> pd.DataFrame:
    """The default preset on the low-contrast and binned copies (and the original), at
    every box size: TPR / TNR by outlier type and the separability found."""
    truth = table.type.to_numpy()
    runs = [ORIGINAL, Variant("binned by 2", bin=2)]
    gain = noise_gain(table)
    for c in LOW_CONTRASTS:
        runs.append(Variant(f"contrast {c:g}", noise=gain(c)))
    rows = []
    for variant in runs:
        boxes = cut_all(table, FACTORS, variant)
        diameter = DIAMETER / variant.bin
        for factor in FACTORS:
            radius = diameter / 2 * SIZE / _even(factor * diameter)
            params = DetectorParams(size=SIZE, radius=radius, peaks=PEAKS)
            images = boxes[factor]
            det, facts = judge_stack(lambda r, im=images: im[r], len(images), params,
                                     get_rules(DEFAULT_PRESET))  # fmt: skip
            sep = facts["separability"]
            rates = outlier_rates(det.verdict, truth)
            voted = det[["verdict", "reason", "profile_z", "kept_if_loosened"]].copy()
            by_classes = vote_if_wanted(images, voted, radius, sep["level"]) is not None
            rows.append({
                "variant": variant.name,
                "box_diameters": factor,
                "contrast": round(contrast(images[truth == "inlier"], radius), 3),
                **{k: round(v, 3) for k, v in rates.items()},
                **{f"voted_{k}": round(v, 3)
                   for k, v in outlier_rates(voted.verdict, truth).items()},
                "class_vote": by_classes,
                "signal_z": sep["signal_z"],
                "low_separability": sep["low"],
                "usual_decision_expected_TPR": sep.get("expected_tpr_of_the_usual_decision"),
                "non_noise_kept": sep.get("non_noise_kept_by_the_usual_decision"),
                "noise_pass": sep.get("noise_pass"),
                "radius_from_stack_px": facts["radius_from_stack_px"],
                "r_px": round(radius, 2),
            })  # fmt: skip
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def fraction_sweep(table: pd.DataFrame, factor: float = 1.5, seed: int = 0) -> pd.DataFrame:
    """The default preset on all 1000 inliers plus a random share of the outliers (5, 20 and
    50 %): its threshold must not depend on how much junk the stack holds."""
    images, _ = cut(table, factor)
    truth = table.type.to_numpy()
    radius = DIAMETER / 2 * SIZE / _even(factor * DIAMETER)
    inl, out = np.flatnonzero(truth == "inlier"), np.flatnonzero(truth != "inlier")
    rng = np.random.default_rng(seed)
    rows = []
    for share in (0.05, 0.2, 0.5):
        n_out = round(share / (1 - share) * len(inl))
        take = np.sort(np.r_[inl, rng.choice(out, min(n_out, len(out)), replace=False)])
        det = clean_images(images[take], radius, DEFAULT_PRESET, peaks=PEAKS)
        rates = outlier_rates(det.verdict, truth[take])
        rows.append({"box_diameters": factor, "outlier_share": share, "preset": DEFAULT_PRESET,
                     **{k: round(v, 3) for k, v in rates.items()}})  # fmt: skip
    return pd.DataFrame(rows)


COLOURS = {"inlier": "#2ca02c", "noise": "#7f7f7f", "partial": "#ff7f0e", "multiple": "#d62728"}


def gallery(
    images: np.ndarray,
    truth: np.ndarray,
    verdict: np.ndarray,
    title: str,
    name: str,
    per_row: int = 10,
    seed: int = 0,
) -> Path:
    """One row per verdict: up to ``per_row`` boxes it took, framed in the colour of their
    true type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    names = ("inlier", "noise", "partial", "multiple")
    fig, axes = plt.subplots(len(names), per_row, figsize=(per_row * 0.75, len(names) * 0.85))
    for r, v in enumerate(names):
        idx = np.flatnonzero(verdict == v)
        idx = rng.choice(idx, min(per_row, len(idx)), replace=False) if len(idx) else idx
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(idx):
                ax.imshow(images[idx[c]], cmap="gray")
                for s in ax.spines.values():
                    s.set_edgecolor(COLOURS[truth[idx[c]]])
                    s.set_linewidth(2.5)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(f"{v}\n({(verdict == v).sum()})", fontsize=7)
    handles = [plt.Line2D([], [], color=c, lw=3, label=k) for k, c in COLOURS.items()]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=4,
        fontsize=7,
        title="true type",
        title_fontsize=7,
        frameon=False,
    )
    fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.1, bottom=0.12, top=0.92)
    path = RESULTS / name
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def grid(images: np.ndarray, title: str, name: str, cols: int = 8) -> Path:
    """Boxes in a grid, each with a circle of the particle diameter, for counting by eye."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.3 + 0.4))
    radius = DIAMETER / 2 * SIZE / _even(1.5 * DIAMETER)
    for ax, img in zip(axes.ravel(), images, strict=False):
        ax.imshow(img, cmap="gray")
        ax.add_patch(plt.Circle((SIZE // 2, SIZE // 2), radius, fill=False, color="y", lw=0.6))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(wspace=0.03, hspace=0.03, top=0.94, bottom=0.01, left=0.01, right=0.99)
    path = RESULTS / name
    fig.savefig(path, dpi=55)
    plt.close(fig)
    return path


def main() -> None:
    if not DATA.exists():
        sys.exit(f"real data not available: {DATA} is absent")
    RESULTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    blobs = log_blobs()
    table = build(blobs=blobs)
    df, verdicts = evaluate(table)
    df.to_csv(RESULTS / "real_outliers.csv", index=False)
    truth = table.type.to_numpy()
    for (factor, preset), (images, det) in verdicts.items():
        gallery(
            images,
            truth,
            det.verdict.to_numpy(),
            f"{preset} preset, box {factor:g} D: boxes by verdict",
            f"real_outliers_gallery_{preset}_{factor:g}d.png",
        )
    images, _ = verdicts[(1.5, DEFAULT_PRESET)]
    grid(
        images[np.flatnonzero(truth == "noise")[:48]],
        "48 'noise' boxes (centre >= 1 D from every label, no LoG blob within D/4), box 1.5 D",
        "real_outliers_noise_boxes.png",
    )
    grid(
        images[np.flatnonzero(truth == "inlier")[:48]],
        "48 inlier boxes (centred on labels), box 1.5 D, for comparison",
        "real_outliers_inlier_boxes.png",
    )
    labelled = build()
    _, as_labelled = evaluate(labelled, (DEFAULT_PRESET,))
    blob_px = blob_distance(labelled, blobs)
    blob = blob_px < DIAMETER / 4
    unlabelled = unlabelled_check(labelled, as_labelled, blob)
    unlabelled.to_csv(RESULTS / "real_outliers_unlabelled.csv", index=False)
    truth_labelled = labelled.type.to_numpy()
    boxes_labelled, det = as_labelled[(1.5, DEFAULT_PRESET)]
    grid(
        boxes_labelled[np.flatnonzero((truth_labelled == "noise") & blob)[:48]],
        "'noise' boxes (labels alone) with a LoG blob within D/4 of the centre, 1.5 D",
        "real_outliers_noise_with_blob.png",
    )
    kept_noise = np.flatnonzero((truth_labelled == "noise") & (det.verdict.to_numpy() == "inlier"))
    context(labelled, kept_noise[:24], blob_px, "real_outliers_kept_noise_context.png")
    sweep = fraction_sweep(table)
    sweep.to_csv(RESULTS / "real_outliers_fractions.csv", index=False)
    harder = variants(table)
    harder.to_csv(RESULTS / "real_outliers_variants.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False))
        print(sweep.to_string(index=False))
        print(harder.to_string(index=False))
        print(unlabelled.to_string(index=False))
    for _, row in df[df.preset == DEFAULT_PRESET].iterrows():
        ok = row.TPR >= TARGET and row.TNR >= TARGET
        print(f"target at {row.box_diameters:g} D: TPR {row.TPR:.3f} and TNR {row.TNR:.3f} "
              f">= {TARGET}: {'met' if ok else 'NOT met'}")  # fmt: skip
    for _, row in unlabelled.iterrows():
        print(f"  noise boxes placed by the labels alone, at {row.box_diameters:g} D: TPR "
              f"{row.TPR_as_labelled:.3f}, TNR {row.TNR_as_labelled:.3f}; "
              f"{int(row.noise_with_blob)} hold a LoG blob within D/4, "
              f"{row.kept_noise_with_blob:.0%} of the kept noise boxes, "
              f"{row.removed_noise_with_blob:.0%} of the removed, "
              f"{row.inliers_with_blob:.0%} of the labelled particles")  # fmt: skip
    for _, row in harder[harder.variant.str.startswith("contrast")].iterrows():
        # issue 33's target on low-contrast copies: TPR >= 0.90 with TNR >= 0.70
        ok = row.voted_TPR >= 0.90 and row.voted_TNR >= 0.70
        print(f"target {row.variant} at {row.box_diameters:g} D (clean's defaults): TPR "
              f"{row.voted_TPR:.3f} >= 0.90 and TNR {row.voted_TNR:.3f} >= 0.70: "
              f"{'met' if ok else 'NOT met'}")  # fmt: skip
    print(f"{time.perf_counter() - start:.0f} s; results in {RESULTS}")


if __name__ == "__main__":
    main()
