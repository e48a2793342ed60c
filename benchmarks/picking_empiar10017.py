"""Picking accuracy on the 20 EMPIAR-10017 micrographs, side by side in one run.

Pickers: a Laplacian-of-Gaussian blob picker (the floor, written here), cryosift with the
shipped model (no training on these micrographs), the same with the reference code's blurs
in place of the Wiener and guided filters, and cryosift after ``cryosift train`` on
them (starting from the shipped model: the MAE fine-tuned, then the candidate ranker learned
from the radial-profile detector's verdicts), also with its ranker switched off
(``--no-rank``) to show what each part gives. Each picker's score threshold is chosen on the
first half of the micrographs (sorted by name) and F1 (one-to-one matching within half a
diameter) is reported on the second half; F1 at cryosift's default threshold (no tuning)
and the paper's IoU rule are shown too. Needs ``../shared/data/empiar10017``.

    python benchmarks/picking_empiar10017.py [--train-epochs 3]

Writes ``benchmarks/results/picking_empiar10017.{csv,txt}`` and overlay PNGs (shipped model,
and after training).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from cryosift.evaluate.picks import best_threshold, evaluate_picks, pr_curve
from cryosift.io.micrographs import read_micrograph
from cryosift.picking.model import load_model
from cryosift.picking.pick import find_peaks
from cryosift.picking.run import PickJob, choose_cluster, pick_image
from cryosift.picking.train import FINE_TUNE, train, train_ranker
from cryosift.preprocess.micrograph import plan_resize, preprocess, resize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "empiar10017"
RESULTS = Path(__file__).resolve().parent / "results"


def results_dir(partial: bool) -> Path:
    """Where a run writes its tables: :data:`RESULTS`, the stored record, for a whole run;
    ``_work/partial`` (not committed) for a run of some sets (``--only``), so that it does
    not replace the stored table of every set with a table of a few."""
    out = RESULTS.parent / "_work" / "partial" if partial else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    return out


DIAMETER = 108.0  # px at 4096


def log_picker(image: np.ndarray, diameter: float) -> pd.DataFrame:
    """The floor: dark blobs by a Laplacian of Gaussian at the particle scale, at 1024 px."""
    plan = plan_resize(image.shape)
    small = resize(image, plan)
    d = diameter / plan.scale
    response = ndimage.gaussian_laplace(small, d / (2 * np.sqrt(2)))
    response = (response - response.mean()) / response.std()
    rc = find_peaks(np.clip(response, 0, None), d / 2)
    e = d / 2
    ok = (rc[:, 0] >= e) & (rc[:, 0] < small.shape[0] - e)
    ok &= (rc[:, 1] >= e) & (rc[:, 1] < small.shape[1] - e)
    rc = rc[ok]
    x, y = plan.to_original(rc[:, 1], rc[:, 0])
    score = response[rc[:, 0], rc[:, 1]]
    return pd.DataFrame({"x": x, "y": y, "score": score, "passes": True, "keep": True})


def load() -> tuple[list[str], dict, dict]:
    names = sorted(p.stem for p in (DATA / "images").glob("*.jpg"))
    images = {n: read_micrograph(DATA / "images" / f"{n}.jpg").image for n in names}
    truth = {}
    for n in names:
        c = pd.read_csv(DATA / "coords" / f"{n}.csv")
        truth[n] = pd.DataFrame({"x": c["X-Coordinate"], "y": c["Y-Coordinate"]})
    return names, images, truth


def cryosift_picks(model, images: dict, names: list[str]) -> tuple[dict, float]:
    paths = [DATA / "images" / f"{n}.jpg" for n in names]
    cluster, _ = choose_cluster(model, paths, DIAMETER)
    job = PickJob(diameter=DIAMETER, cluster=cluster)
    out, t = {}, time.perf_counter()
    for n in names:
        out[n] = pick_image(model, images[n], job)
    return out, (time.perf_counter() - t) / len(names)


def score(picks: dict, truth: dict, tune: list[str], test: list[str]) -> dict:
    cand = {n: p[p.passes] for n, p in picks.items()}
    curve = pr_curve({n: cand[n] for n in tune}, {n: truth[n] for n in tune}, DIAMETER)
    thr = best_threshold(curve)
    held = {n: cand[n][cand[n].score >= thr] for n in test}
    tuned = evaluate_picks(held, {n: truth[n] for n in test}, DIAMETER).iloc[-1]
    default = evaluate_picks(
        {n: picks[n][picks[n].keep] for n in test}, {n: truth[n] for n in test}, DIAMETER
    ).iloc[-1]
    return {
        "threshold": thr,
        "precision": tuned.precision,
        "recall": tuned.recall,
        "F1": tuned.f1,
        "paper_F1": tuned.paper_f1,
        "F1_default_threshold": default.f1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-epochs", type=int, default=FINE_TUNE.epochs)
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"needs {DATA}")
    names, images, truth = load()
    tune, test = names[: len(names) // 2], names[len(names) // 2 :]
    rows = []
    t = time.perf_counter()
    log = {n: log_picker(images[n], DIAMETER) for n in names}
    rows.append({"picker": "LoG blob (floor)", "s_per_mic": (time.perf_counter() - t) / 20})
    rows[-1].update(score(log, truth, tune, test))
    shipped = load_model()
    picks, secs = cryosift_picks(shipped, images, names)
    rows.append({"picker": "cryosift, shipped model", "s_per_mic": secs})
    rows[-1].update(score(picks, truth, tune, test))
    # does doing the Wiener and guided filters properly matter? the reference code's blurs
    blurred = load_model()
    blurred.preprocess["filters"] = "reference"
    picks_ref, secs_ref = cryosift_picks(blurred, images, names)
    rows.append({"picker": "cryosift, shipped model, reference blurs", "s_per_mic": secs_ref})
    rows[-1].update(score(picks_ref, truth, tune, test))
    work = RESULTS.parent / "_work" / "model_empiar10017"
    shutil.rmtree(work, ignore_errors=True)  # train afresh, never resume an older run
    t = time.perf_counter()
    pre = [preprocess(images[n], DIAMETER)[0] for n in names]
    trained = train(
        pre,
        shipped.mae.config,
        dataclasses.replace(FINE_TUNE, epochs=args.train_epochs),
        work,
        init=shipped,
    )
    trained.ranker = train_ranker(trained, [DATA / "images" / f"{n}.jpg" for n in names], DIAMETER)
    train_s = time.perf_counter() - t
    picks_t, secs = cryosift_picks(trained, images, names)
    rows.append(
        {
            "picker": f"cryosift, trained {args.train_epochs} epochs + ranker ({train_s:.0f} s)",
            "s_per_mic": secs,
        }
    )
    rows[-1].update(score(picks_t, truth, tune, test))
    ranker, trained.ranker = trained.ranker, None
    picks_u, secs = cryosift_picks(trained, images, names)
    rows.append({"picker": "cryosift, trained, ranker off (--no-rank)", "s_per_mic": secs})
    rows[-1].update(score(picks_u, truth, tune, test))
    write_table(rows, "picking_empiar10017")
    print(f"target F1 >= 0.72 with the shipped model: {rows[1]['F1']:.3f}")
    print(f"proper filters vs reference blurs: F1 {rows[1]['F1']:.3f} vs {rows[2]['F1']:.3f}")
    print(f"target <= 5 s per micrograph: {rows[1]['s_per_mic']:.2f} s")
    print(f"more after training: F1 {rows[3]['F1']:.3f} vs {rows[1]['F1']:.3f} shipped")
    print(f"ranker: {ranker.info if ranker is not None else 'too few pseudo-labels'}")
    overlay(images[test[0]], picks[test[0]], truth[test[0]], RESULTS / "picking_empiar10017.png")
    trained_png = RESULTS / "picking_empiar10017_trained.png"
    overlay(images[test[0]], picks_t[test[0]], truth[test[0]], trained_png)


def write_table(rows: list[dict], name: str) -> None:
    """``RESULTS/<name>.csv`` and ``.txt`` of the benchmark's rows, printed too."""
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / f"{name}.csv", index=False)
    text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    (RESULTS / f"{name}.txt").write_text(text + "\n")
    print(text)


def overlay(image: np.ndarray, picks: pd.DataFrame, truth: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 10))
    ax.imshow(image[::4, ::4], cmap="gray")
    kept = picks[picks.keep]
    ax.plot(truth.x / 4, truth.y / 4, "o", mfc="none", mec="lime", ms=10, label="truth")
    ax.plot(kept.x / 4, kept.y / 4, "+", color="red", ms=8, label="cryosift (default)")
    ax.legend(loc="upper right")
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
