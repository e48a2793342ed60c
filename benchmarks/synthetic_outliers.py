"""The radial-profile paper's Figures 9 and 10, reproduced with ``cryosift simulate``.

The ``kapnulin2024`` protocol on the 70S ribosome (``../shared/data/ribosome70s/vol_65.npy``):
1000 inliers + 1000 outliers (noise / partial / multiple), d = 33, r = 5, A = 10, for
SNR in {1/10, 1/20, 1/40, 1/70, 1/100, 1/150}, with the ``reference``, ``paper`` and default
(``radial``) presets, and r in {3, 5, 9} at SNR 1/70 for the first two. The default preset
takes the particle radius from the volume's diameter (11 px at d = 33), as a user would give
``--diameter-A``; the paper's r = 5 is a clustering radius, about half of it. Three simulation
variants run side by side:

- ``protocol``: the protocol as specified (the paper's coloured noise; partial and multiple
  outliers displaced by a length in a uniformly random direction);
- ``protocol-white``: the same with white noise;
- ``published-code``: what the paper's published script does (its noise spectrum
  ``(1 + |w|^2 / L^2) / 2`` is white to within 0.3%; outliers rolled by an integer drawn
  independently per axis, on top of the inlier offsets).

The clean images of each variant are simulated once; only the noise changes with the SNR.
Writes ``benchmarks/results/synthetic_outliers.csv``, ``synthetic_outliers_fig9.png`` (TPR
and TNR against SNR), ``synthetic_outliers_fig10.png`` (TNR per outlier type) and
``synthetic_outliers_radius.png``, and prints the table; then the default preset at SNR 1/70
on ten independent simulations (seeds 1-10) of ``protocol-white`` and ``protocol``, in
``synthetic_outliers_seeds.csv``.

Run: ``python benchmarks/synthetic_outliers.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cryosift.classify.vote import vote_if_wanted
from cryosift.evaluate.outliers import outlier_rates
from cryosift.outliers import DetectorParams, get_rules
from cryosift.outliers.clean import clean_images, judge_stack
from cryosift.outliers.rules import DEFAULT_PRESET, PRESETS
from cryosift.simulate.particles import ParticleSimulator, protocol_config
from cryosift.simulate.volume import diameter_px, load_volume, pad_and_scale

ROOT = Path(__file__).resolve().parents[1]
VOLUME = ROOT.parent / "shared" / "data" / "ribosome70s" / "vol_65.npy"
RESULTS = ROOT / "benchmarks" / "results"
SNRS = (1 / 10, 1 / 20, 1 / 40, 1 / 70, 1 / 100, 1 / 150)
RADII = (3, 5, 9)
VARIANTS = {
    "protocol": {},
    "protocol-white": {"noise": "white"},
    "published-code": {"noise": "white", "shift_model": "per-axis"},
}
D, R, A = 33, 5, 10
ANGPIX = 5.0  # Å/voxel of vol_65 (README of the shared data)


#: TNR the default preset must reach at SNR 1/70 (with TPR >= 0.95), by noise colour. The
#: targets are set on white noise, the noise of the paper's script and the setting that
#: reproduces its figure; coloured noise is reported against issue 3's 0.85.
#: Issue 21's targets at SNR 1/70: (TPR, TNR) per noise; coloured noise has a TPR target only.
TARGETS = {"white": (0.95, 0.90), "coloured": (0.90, 0.0)}


def protocol_volume() -> tuple[np.ndarray, float]:
    """The protocol's volume (edge-padded by 10 voxels, max 1) and the particle radius in px
    at d = 33, which the default preset is given: the particle's own radius (from its
    diameter), not the paper's r."""
    vol, _ = load_volume(VOLUME)
    vol = pad_and_scale(vol, 10)
    return vol, round(diameter_px(vol) / 2 * D / vol.shape[0], 2)


def run(vol: np.ndarray, particle_r: float, seed: int = 1) -> pd.DataFrame:
    rows = []
    for variant, overrides in VARIANTS.items():
        sim = ParticleSimulator(
            vol, ANGPIX, protocol_config("kapnulin2024", vol.shape[0], seed=seed, **overrides)
        )
        truth = sim.plan.labels
        for snr in SNRS:
            images = np.concatenate(list(sim.images(snr=snr)))
            radii = RADII if np.isclose(snr, 1 / 70) else (R,)
            for preset in PRESETS:
                for r in radii if preset != DEFAULT_PRESET else (particle_r,):
                    det = clean_images(images, r, preset, peaks=A)
                    rates = outlier_rates(det.verdict, truth)
                    rows.append(
                        {
                            "variant": variant,
                            "noise": sim.cfg.noise,
                            "shifts": sim.cfg.shift_model,
                            "snr": f"1/{round(1 / snr)}",
                            "snr_value": snr,
                            "snr_measured": round(sim.measured["snr_mean"], 5),
                            "snr_power": round(sim.measured["snr_power"], 5),
                            "preset": preset,
                            "r": r,
                            **{k: round(v, 3) for k, v in rates.items()},
                        }
                    )
    return pd.DataFrame(rows)


def seed_spread(
    vol: np.ndarray, particle_r: float, seeds=tuple(range(1, 11)), snr: float = 1 / 70
) -> pd.DataFrame:
    """The default preset at one SNR on independent simulations (one per seed) of the
    ``protocol`` and ``protocol-white`` variants: how much the 1/70 result moves with the
    draw of projections, amplitudes, offsets and noise. ``voted_*``: the rates of ``cryosift
    clean``'s defaults, where the 2D classes vote when the separability is not good."""
    rows = []
    for variant in ("protocol-white", "protocol"):
        for seed in seeds:
            cfg = protocol_config("kapnulin2024", vol.shape[0], seed=seed, **VARIANTS[variant])
            sim = ParticleSimulator(vol, ANGPIX, cfg)
            images = np.concatenate(list(sim.images(snr=snr)))
            params = DetectorParams(size=images.shape[-1], radius=particle_r, peaks=10)
            table, facts = judge_stack(lambda r, im=images: im[r], len(images), params,
                                       get_rules(DEFAULT_PRESET))  # fmt: skip
            rates = outlier_rates(table.verdict, sim.plan.labels)
            level = facts["separability"]["level"]
            voted = vote_if_wanted(images, table, particle_r, level) is not None
            after = outlier_rates(table.verdict, sim.plan.labels)
            rows.append({"variant": variant, "noise": cfg.noise, "seed": seed,
                         "snr": f"1/{round(1 / snr)}",
                         **{k: round(v, 3) for k, v in rates.items()},
                         "noise_pass": facts["separability"].get("noise_pass"),
                         "separability": level, "class_vote": voted,
                         "voted_TPR": round(after["TPR"], 3),
                         "voted_TNR": round(after["TNR"], 3)})  # fmt: skip
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    main = df[(df.r == R) | (df.preset == DEFAULT_PRESET)]
    tnr_colours = {
        "TNR_noise": "tab:gray",
        "TNR_partial": "tab:orange",
        "TNR_multiple": "tab:green",
    }
    figures = [
        ({"TPR": "tab:blue", "TNR": "tab:red"}, "rate", "synthetic_outliers_fig9.png",
         f"Outlier removal on synthetic 70S ribosome images (d={D}, r={R}, A={A})"),
        (tnr_colours, "fraction of outliers removed", "synthetic_outliers_fig10.png",
         "True negative rate per outlier type"),
    ]  # fmt: skip
    for colours, ylabel, name, title in figures:
        paths.append(_rate_panels(plt, main, colours, ylabel, title, name))
    # radius at SNR 1/70
    at70 = df[df.snr == "1/70"]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, tpr, tnr = [], [], []
    for (variant, preset, r), g in at70.groupby(["variant", "preset", "r"], sort=False):
        labels.append(f"{variant}\n{preset}, r={r}")
        tpr.append(float(g.TPR.iloc[0]))
        tnr.append(float(g.TNR.iloc[0]))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, tpr, 0.4, label="TPR")
    ax.bar(x + 0.2, tnr, 0.4, label="TNR")
    ax.set_xticks(x, labels, fontsize=6)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Particle radius r at SNR 1/70")
    paths.append(_save(fig, "synthetic_outliers_radius.png"))
    return paths


def _rate_panels(plt, main: pd.DataFrame, colours: dict, ylabel: str, title: str, name: str):
    """One panel per simulation variant: the rates in ``colours`` against SNR, both presets."""
    styles = {"reference": ":", "paper": "--", DEFAULT_PRESET: "-"}
    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(6 * len(VARIANTS), 4.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, variant in zip(axes, VARIANTS, strict=True):
        for preset in PRESETS:
            sub = main[(main.variant == variant) & (main.preset == preset)]
            for metric, colour in colours.items():
                label = f"{metric.removeprefix('TNR_') if len(colours) > 2 else metric} ({preset})"
                ax.plot(sub.snr_value, sub[metric], styles[preset], marker="o", color=colour,
                        label=label)  # fmt: skip
        _snr_axis(ax, variant)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    return _save(fig, name)


def _snr_axis(ax, title: str) -> None:
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks(list(SNRS), [f"1/{round(1 / s)}" for s in SNRS])
    ax.minorticks_off()
    ax.set_xlabel("SNR")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)


def _save(fig, name: str) -> Path:
    path = RESULTS / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    if not VOLUME.exists():
        sys.exit(f"needs {VOLUME} (the shared data folder beside the checkout)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vol, particle_r = protocol_volume()
    df = run(vol, particle_r)
    df.to_csv(RESULTS / "synthetic_outliers.csv", index=False)
    paths = plot(df)
    cols = ["variant", "snr", "snr_power", "preset", "r", "TPR", "TNR"]
    cols += ["TNR_noise", "TNR_partial", "TNR_multiple"]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(df[cols].to_string(index=False))
    target = df[(df.snr == "1/70") & (df.preset == DEFAULT_PRESET)]
    for _, row in target.iterrows():
        tpr, tnr = TARGETS[row.noise]
        ok = row.TPR >= tpr and row.TNR >= tnr
        print(
            f"target at 1/70 ({row.variant}): TPR {row.TPR:.3f} >= {tpr:.2f} and TNR"
            f" {row.TNR:.3f} >= {tnr:.2f}: {'met' if ok else 'NOT met'}"
        )
    spread = seed_spread(vol, particle_r)
    spread.to_csv(RESULTS / "synthetic_outliers_seeds.csv", index=False)
    print(f"\n{DEFAULT_PRESET} preset at SNR 1/70, one simulation per seed:")
    print(spread.to_string(index=False))
    for (variant, noise), g in spread.groupby(["variant", "noise"], sort=False):
        tpr, tnr = TARGETS[noise]
        met = int(((g.TPR >= tpr) & (g.TNR >= tnr)).sum())
        voted = int(((g.voted_TPR >= tpr) & (g.voted_TNR >= tnr)).sum())
        print(
            f"{variant}: mean TPR {g.TPR.mean():.3f} TNR {g.TNR.mean():.3f}; target "
            f"(TPR >= {tpr:.2f}, TNR >= {tnr:.2f}) met on {met} of {len(g)} seeds; as "
            f"cryosift clean's defaults (class vote on {int(g.class_vote.sum())} seeds): mean "
            f"TPR {g.voted_TPR.mean():.3f} TNR {g.voted_TNR.mean():.3f}, met on {voted}"
        )
    main = df[(df.r == R) | (df.preset == DEFAULT_PRESET)]
    for variant in VARIANTS:
        sub = main[main.variant == variant].pivot(index="snr", columns="preset")
        worse = sub[
            (sub.TPR[DEFAULT_PRESET] < sub.TPR["reference"] - 0.01)
            | (sub.TNR[DEFAULT_PRESET] < sub.TNR["reference"] - 0.01)
        ]
        print(
            f"{variant}: default worse than reference (by > 0.01) at SNR "
            f"{list(worse.index) or 'none'}"
        )
    print(
        f"wrote {RESULTS / 'synthetic_outliers.csv'} and {', '.join(p.name for p in paths)}"
        f" in {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
