"""What the class vote costs on top of the 2D classification it reads (issue 33's target: at
most 10 s per 10,000 images of 64 px on 2 cores).

A labelled toy stack of 10,000 images of 64 x 64 (:func:`cryosift.simulate.toy.toy_stack`,
6,000 particles and 4,000 outliers) is classified into 20 classes as ``cryosift run`` and
``cryosift clean`` do; then, measured side by side in one run:

- the radial detector on the same images (:func:`cryosift.outliers.clean.clean_images`);
- the class vote (:func:`cryosift.classify.vote.class_vote`: the class judgement, every
  image's matched filter against the particle classes, the noise null) and :func:`combine`;
- the classification itself, for scale.

Prints the seconds of each, the vote's seconds per 10,000 images, its ratio to the radial
detector's, TPR / TNR before and after the vote, and writes them to
``benchmarks/results/class_vote_cost.txt``.

    python benchmarks/class_vote_cost.py [--n 10000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cryosift.classify.align import ClassifySettings, classify
from cryosift.classify.vote import class_vote, combine
from cryosift.evaluate.outliers import outlier_rates
from cryosift.outliers.clean import clean_images
from cryosift.simulate.toy import toy_stack

RESULTS = Path(__file__).resolve().parent / "results"
SIDE, RADIUS, CLASSES = 64, 12.0, 20
TARGET_S_PER_10K = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    n_in = int(0.6 * args.n)
    images, truth = toy_stack(n_in, (args.n - n_in) // 3, d=SIDE, radius=RADIUS, seed=5)
    t0 = time.perf_counter()
    table = clean_images(images, RADIUS)
    radial_s = time.perf_counter() - t0
    before = outlier_rates(table.verdict, truth)
    t0 = time.perf_counter()
    result = classify(images, ClassifySettings(classes=CLASSES, radius=RADIUS, seed=0))
    classify_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vote = class_vote(images, result, RADIUS, seed=0)
    combine(table, vote)
    vote_s = time.perf_counter() - t0
    after = outlier_rates(table.verdict, truth)
    per_10k = vote_s * 10_000 / len(images)
    lines = [
        f"{len(images):,} images of {SIDE} px, {CLASSES} classes, 2 cores",
        f"radial detector: {radial_s:.1f} s",
        f"2D classification: {classify_s:.1f} s",
        f"class vote (judgement, matched filter, noise null, combine): {vote_s:.1f} s "
        f"= {per_10k:.1f} s per 10,000 images ({vote_s / radial_s:.1f}x the radial detector)",
        f"target <= {TARGET_S_PER_10K:g} s per 10,000: "
        f"{'met' if per_10k <= TARGET_S_PER_10K else 'NOT met'}",
        f"TPR / TNR: radial {before['TPR']:.3f} / {before['TNR']:.3f}, "
        f"with the vote {after['TPR']:.3f} / {after['TNR']:.3f} "
        f"({vote.changed[0]} kept, {vote.changed[1]} removed by their class)",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "class_vote_cost.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
