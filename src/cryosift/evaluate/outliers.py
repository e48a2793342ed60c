"""TPR (true particles kept) and TNR (outliers removed), overall and per outlier type.

``python -m cryosift.evaluate.outliers scores.csv truth.csv`` prints them for a clean run
whose ``truth.csv`` has columns ``particle`` and ``truth`` (``inlier`` or an outlier type).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def outlier_rates(verdicts: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``{"TPR": ..., "TNR": ..., "TNR_<type>": ...}`` from verdicts and truth labels ``(N,)``.

    A particle is kept when its verdict is ``inlier``. Rates of empty classes are NaN.
    """
    verdicts, truth = np.asarray(verdicts).astype(str), np.asarray(truth).astype(str)
    kept = verdicts == "inlier"
    is_in = truth == "inlier"

    def rate(mask: np.ndarray, want_kept: bool) -> float:
        return float(np.mean(kept[mask] == want_kept)) if mask.any() else float("nan")

    out = {"TPR": rate(is_in, True), "TNR": rate(~is_in, False)}
    for kind in sorted(set(truth[~is_in])):
        out[f"TNR_{kind}"] = rate(truth == kind, False)
    return out


def _main() -> None:
    scores = pd.read_csv(sys.argv[1])
    truth = pd.read_csv(sys.argv[2])
    merged = scores.merge(truth, on="particle", how="inner")
    rates = outlier_rates(merged["verdict"], merged["truth"])
    print("  ".join(f"{k} {v:.3f}" for k, v in rates.items()))


if __name__ == "__main__":
    _main()
