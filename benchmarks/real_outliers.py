"""Outlier removal on real micrographs: a labelled benchmark cut from EMPIAR-10017.

From the 20 EMPIAR-10017 micrographs and their 12,823 CryoPPP labels
(``../shared/data/empiar10017``; particle diameter D = 108 px at 1.77 Å/px), boxes of side
1.25, 1.5 and 2 D are cut with ``cryosift.extract`` and labelled:

- **inlier**: centred on a labelled particle;
- **partial**: the particle sits at the box edge, its centre 0 to 0.265 R inside it
  (R = D/2), so that a third to a half of the particle leaves the box; the edge is drawn
  at random among the four, with the particle anywhere along its middle two thirds;
- **noise**: the box centre is at least one diameter from every labelled particle (the labels
  are incomplete, so some of these hold an unlabelled particle: see the noise gallery);
- **multiple**: centred between two labelled particles 0.6 to 1.0 D apart.

1000 inliers and 1000 outliers (334 / 333 / 333), the same particles at every box size. The
boxes are inverted (particles are dark in the JPEGs; the ``radial`` preset finds the polarity
itself), Fourier-cropped to 55 px as ``cryosift clean`` does, and judged by every preset
(``radial``, the default; ``paper``; ``reference``) with r = D/2 in cropped px and A = 10,
through the same code as ``cryosift clean`` (:func:`cryosift.outliers.clean.clean_images`).

The default preset also runs on the 1000 inliers with 5 %, 20 % and 50 % outliers
(``real_outliers_fractions.csv``). Writes ``benchmarks/results/real_outliers.csv``,
``real_outliers_gallery_<preset>_<f>d.png``
(what each verdict takes, with the true type of every box) and
``real_outliers_noise_boxes.png`` (48 "noise" boxes, to count by eye how many hold a
particle), next to ``real_outliers_inlier_boxes.png``.
Run: ``python benchmarks/real_outliers.py`` (about 10 s on 2 cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from cryosift.evaluate.outliers import outlier_rates
from cryosift.extract.boxes import boxes_inside, crop_boxes
from cryosift.io.coords import read_coords
from cryosift.io.micrographs import read_micrograph
from cryosift.outliers.clean import clean_images
from cryosift.outliers.rules import DEFAULT_PRESET, PRESETS
from cryosift.preprocess.fourier import fourier_crop

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "empiar10017"
RESULTS = ROOT / "benchmarks" / "results"
DIAMETER = 108.0  # px of the JPEGs
FACTORS = (1.25, 1.5, 2.0)
SIZE, PEAKS = 55, 10
COUNTS = {"inlier": 1000, "noise": 334, "partial": 333, "multiple": 333}


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


def partial_centres(particles: np.ndarray, box: int, rng: np.random.Generator) -> np.ndarray:
    """Box centres that put each particle at a random edge of its box, its centre 0 to
    0.265 R inside the edge (a third to a half of a disc of radius R leaves the box)."""
    n = len(particles)
    t = rng.uniform(0, 0.265 * DIAMETER / 2, n)
    side = rng.integers(0, 4, n)
    along = rng.uniform(-box / 3, box / 3, n)
    normal = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], float)[side]  # towards the edge
    tangent = normal[:, ::-1]
    return particles - normal * (box / 2 - t)[:, None] + tangent * along[:, None]


def build(seed: int = 0) -> pd.DataFrame:
    """The sampled boxes: ``micrograph`` (path), ``type``, ``x``, ``y`` (for partials: the
    particle that :func:`cut` puts at a box edge) and ``partial_seed``."""
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
        take = pool.iloc[np.sort(rng.choice(len(pool), n, replace=False))].copy()
        take["type"] = kind
        rows.append(take)
    table = pd.concat(rows, ignore_index=True)
    table["partial_seed"] = rng.integers(0, 2**31, len(table))
    return table


def cut(table: pd.DataFrame, factor: float) -> tuple[np.ndarray, pd.DataFrame]:
    """Boxes of side ``factor`` D for every row, inverted and Fourier-cropped to ``SIZE``.
    Partials whose box would leave the micrograph are redrawn (another edge / offset)."""
    box = _even(factor * DIAMETER)
    out = np.empty((len(table), SIZE, SIZE), np.float32)
    centres = table[["x", "y"]].to_numpy().copy()
    for mic, group in table.groupby("micrograph", sort=False):
        image = read_micrograph(mic).image
        idx = group.index.to_numpy()
        for i in idx[group.type.to_numpy() == "partial"]:
            rng = np.random.default_rng(int(table.partial_seed[i]))
            for _ in range(100):
                c = partial_centres(table.loc[[i], ["x", "y"]].to_numpy(), box, rng)
                if boxes_inside(c, box, image.shape)[0]:
                    centres[i] = c[0]
                    break
            else:
                raise RuntimeError(f"no room for a partial box around particle {i}")
        boxes = crop_boxes(image, centres[idx], box)
        out[idx] = fourier_crop(-boxes, SIZE)
    placed = table.copy()
    placed[["x", "y"]] = centres
    return out, placed


def evaluate(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    truth = table.type.to_numpy()
    rows, verdicts = [], {}
    for factor in FACTORS:
        images, _ = cut(table, factor)
        box = _even(factor * DIAMETER)
        radius = DIAMETER / 2 * SIZE / box
        for preset in PRESETS:
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
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def main() -> None:
    if not DATA.exists():
        sys.exit(f"real data not available: {DATA} is absent")
    RESULTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    table = build()
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
        "48 'noise' boxes (centre >= 1 D from every label), box 1.5 D; circle = particle size",
        "real_outliers_noise_boxes.png",
    )
    grid(
        images[np.flatnonzero(truth == "inlier")[:48]],
        "48 inlier boxes (centred on labels), box 1.5 D, for comparison",
        "real_outliers_inlier_boxes.png",
    )
    sweep = fraction_sweep(table)
    sweep.to_csv(RESULTS / "real_outliers_fractions.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False))
        print(sweep.to_string(index=False))
    for _, row in df[df.preset == DEFAULT_PRESET].iterrows():
        ok = row.TPR >= 0.90 and row.TNR >= 0.90
        print(f"target at {row.box_diameters:g} D: TPR {row.TPR:.3f} >= 0.90 and TNR "
              f"{row.TNR:.3f} >= 0.90: {'met' if ok else 'NOT met'}")  # fmt: skip
    print(f"{time.perf_counter() - start:.0f} s; results in {RESULTS}")


if __name__ == "__main__":
    main()
