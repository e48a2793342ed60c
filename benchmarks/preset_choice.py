"""Which choices make the default preset: measured on labelled toy stacks.

Varies one choice at a time from the reference code's (circular correlation, stack
normalisation, multiple clusters kept, rounded-centroid border rule) and prints TPR (inliers
kept) and TNR (outliers removed, overall and per type) at several noise levels.

    python benchmarks/preset_choice.py
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cryosift.evaluate.outliers import outlier_rates
from cryosift.outliers import DetectorParams, detect, get_rules
from cryosift.simulate.toy import toy_stack

REF = get_rules("reference")
VARIANTS = {
    "reference": REF,
    "+linear": replace(REF, name="v", correlation="linear"),
    "+image-norm": replace(REF, name="v", normalise="image"),
    "+multiple": replace(REF, name="v", multiple_is_outlier=True),
    "+distance-border": replace(REF, name="v", border_rule="distance"),
    "paper+distance": replace(get_rules("paper"), name="v", border_rule="distance"),
    "paper (default)": get_rules("paper"),
}


def main() -> None:
    d, radius = 55, 10.0
    params = DetectorParams(size=d, radius=radius, peaks=10)
    print(f"toy stacks: 1000 inliers + 3 x 334 outliers, d = {d}, r = {radius:g}, A = 10")
    print(
        f"{'sigma':>5} {'variant':<18} {'TPR':>6} {'TNR':>6} {'noise':>6} {'part.':>6} {'mult.':>6}"
    )
    for sigma in (0.5, 1.0, 2.0, 3.0):
        imgs, truth = toy_stack(1000, 334, d=d, radius=radius, noise_sigma=sigma, seed=11)
        for name, rules in VARIANTS.items():
            det = detect(imgs, params, rules, stack_mean=float(imgs.astype(np.float64).mean()))
            r = outlier_rates(det.verdict, truth)
            print(
                f"{sigma:5.1f} {name:<18} {r['TPR']:6.3f} {r['TNR']:6.3f} {r['TNR_noise']:6.3f} "
                f"{r['TNR_partial']:6.3f} {r['TNR_multiple']:6.3f}"
            )


if __name__ == "__main__":
    main()
