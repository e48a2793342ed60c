"""``report.html``: one self-contained page (images embedded as PNG data, no network).

Shows the counts per verdict, precision/recall against the truth when given, micrographs with
their picks coloured by verdict, the mean image and a gallery per verdict, histograms of the
scores and of picks per micrograph, the parameters and the timings.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from cryosift import __version__
from cryosift.classify.vote import FIGURE as VOTE_FIGURE
from cryosift.classify.vote import vote_note
from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.coords import read_coords
from cryosift.io.micrographs import read_micrograph
from cryosift.outliers.clean import clean_notes
from cryosift.outliers.radial import NOISE_Z
from cryosift.outliers.rules import VERDICTS
from cryosift.report import figures

#: Micrographs drawn with their picks, particles per gallery, images per mean.
OVERLAYS, GALLERY, MEAN_OF = 12, 48, 2000


def typed_inputs(micrographs: str | list[str]) -> str:
    """The micrographs as a user would have typed them: one path (a folder, a glob or a STAR)
    as it is; the paths a shell expanded a glob into as that glob when they share a folder and
    an extension (``Micrographs/*.mrc (12 files)``), else the first and a count."""
    if isinstance(micrographs, str):
        return micrographs
    paths = [Path(m) for m in micrographs]
    if len(paths) == 1:
        return str(paths[0])
    if not paths:
        return "no micrographs"
    folders = {p.parent for p in paths}
    suffixes = {p.suffix for p in paths}
    if len(folders) == 1 and len(suffixes) == 1:
        return f"{paths[0].parent / ('*' + suffixes.pop())} ({len(paths)} files)"
    return f"{paths[0]} and {len(paths) - 1} more"


def _clean_notes(stats: dict) -> list[str]:
    """The cleaning's lines for the report: separability, warnings and the class vote."""
    vote = vote_note(stats)
    return clean_notes(stats) + ([vote] if vote else [])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices spread evenly over ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else np.zeros(0)


def overlay_picks(scores: pd.DataFrame, coords: pd.DataFrame) -> pd.DataFrame:
    """One micrograph's picks with their verdicts: ``scores`` rows (extracted particles,
    ``x_px``, ``y_px``, ``verdict``) and the picks of ``coords`` not among them."""
    done = scores[["x_px", "y_px", "verdict"]].rename(columns={"x_px": "x", "y_px": "y"})
    key = set(zip(done.x.round(2), done.y.round(2), strict=True))
    # a boolean array, not a list: an empty list would select no columns (zero picks)
    fresh = [(x, y) not in key for x, y in zip(coords.x.round(2), coords.y.round(2), strict=True)]
    rest = coords[np.asarray(fresh, bool)]
    return pd.concat([done, rest[["x", "y"]].assign(verdict="not extracted")], ignore_index=True)


def _overlays(outdir: Path, run, mics: pd.DataFrame, radius: float) -> list[dict]:
    out = []
    summary = run.summary
    for i in _spread(len(summary), OVERLAYS):
        row = summary.iloc[i]
        path = mics.path[mics.key == row.key].iloc[0]
        image = read_micrograph(path).image
        mine = run.scores[run.scores.micrograph == row.micrograph]
        picks = overlay_picks(mine, read_coords(outdir / f"Coordinates/{row.key}_autopick.star"))
        inl = int((mine.verdict == "inlier").sum())
        caption = f"{row.key}: {int(row.picks)} picks, {inl} inliers"
        out.append(
            {
                "name": row.key,
                "caption": caption,
                "png": _b64(figures.micrograph_overlay(image, picks, radius, row.key)),
            }
        )
    return out


def _images_by_verdict(run, pset, seed: int) -> tuple[list[dict], dict, dict]:
    rng = np.random.default_rng(seed)
    verdict = run.scores.verdict.to_numpy()
    galleries, means, counts = [], {}, {}
    for name in VERDICTS:
        rows = np.flatnonzero(verdict == name)
        counts[name] = len(rows)
        if not len(rows):
            continue
        sample = np.sort(rng.choice(rows, min(len(rows), MEAN_OF), replace=False))
        images = pset.read_rows(sample)
        means[name] = images.mean(axis=0)
        shown = images[np.sort(rng.choice(len(sample), min(len(sample), GALLERY), replace=False))]
        galleries.append(
            {
                "verdict": name,
                "shown": len(shown),
                "total": len(rows),
                "png": _b64(figures.gallery(shown)),
            }
        )
    return galleries, means, counts


def _classes(run) -> dict | None:
    """The 2D classes section: the two galleries and the shares in good classes."""
    facts = run.facts.get("classes")
    if not facts or not run.class_galleries:
        return None
    shares = {k: f"{v:.1%}" for k, v in facts["share_in_good_classes"].items()}
    galleries = {k: base64.b64encode(v).decode("ascii") for k, v in run.class_galleries.items()}
    return {**facts, "shares": shares, "galleries": galleries}


def _survey(outdir: Path, run) -> dict | None:
    """The survey's classes (what the picker took for a particle), when the run adapted."""
    png = outdir / "survey_classes.png"
    adapt = run.facts.get("adaptation") or {}
    classes = adapt.get("classes")
    if not png.exists() or not classes:
        return None
    return {
        "png": _b64(png.read_bytes()),
        "classes": classes["classes"],
        "particle_classes": classes["particle_classes"],
        "candidates": adapt.get("candidates"),
        "micrographs": adapt.get("micrographs"),
        "share": f"{classes['particle_share']:.0%}",
        "default": adapt.get("default", ""),
    }


def _dark_left_out(summary) -> int:
    """The picks the darkness filter left out (0 in records written before they were
    counted)."""
    return int(summary.on_dark_areas.sum())


def _vote(outdir: Path, run) -> dict | None:
    """The classes' vote on the cleaning (its picture and counts), when the run's classes
    voted."""
    png = outdir / VOTE_FIGURE
    vote = (run.facts.get("clean") or {}).get("class_vote")
    if not png.exists() or not vote:
        return None
    return {"png": _b64(png.read_bytes()), "noise_z": f"{NOISE_Z:.2f}", **vote}


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append((prefix, value))


def build_context(outdir: Path, run, pset, cfg, inputs: dict, mics: pd.DataFrame) -> dict:
    """Everything the template shows."""
    table = run.scores
    n = len(table)
    radius = cfg.diameter / 2
    galleries, means, counts = _images_by_verdict(run, pset, cfg.seed)
    histograms = [
        {
            "caption": "pick score (picker's figure of merit)",
            "png": _b64(figures.histogram_by_verdict(table, "pick_score", "pick score")),
        },
        {
            "caption": "peak score of the outlier detector",
            "png": _b64(figures.histogram_by_verdict(table, "score", "detector score")),
        },
        {
            "caption": "picks per micrograph",
            "png": _b64(figures.picks_per_micrograph(run.summary.picks.to_numpy())),
        },
    ]
    if "radial_score" in table.columns:
        histograms.insert(
            1,
            {
                "caption": "radial-profile score (the decision; kept above "
                f"{run.facts['clean'].get('radial_threshold', float('nan')):.2f})",
                "png": _b64(figures.histogram_by_verdict(table, "radial_score", "radial score")),
            },
        )
    parameters: list = []
    _flatten("", {"inputs": inputs, "parameters": cfg.describe(), "facts": run.facts}, parameters)
    angpix = f" ({cfg.diameter * cfg.angpix:.0f} Å)" if cfg.angpix else ""
    return {
        "title": typed_inputs(inputs.get("micrographs", str(outdir))),
        "version": __version__,
        "diameter": f"{cfg.diameter:.1f} px{angpix}",
        "box": f"{cfg.box} px -> {cfg.size} px",
        "n_micrographs": len(run.summary),
        "dark_left_out": _dark_left_out(run.summary),
        "clean_notes": _clean_notes(run.facts.get("clean", {})),
        "classes": _classes(run),
        "survey": _survey(outdir, run),
        "vote": _vote(outdir, run),
        "skipped": run.skipped,
        "verdicts": list(VERDICTS),
        "colours": figures.COLOURS,
        "counts": {
            "micrographs": len(run.summary),
            "picks": int(run.summary.picks.sum()),
            "particles": n,
            **counts,
        },
        "shares": {k: f"{v / max(n, 1):.1%}" for k, v in counts.items()},
        "metrics": None if run.metrics is None else run.metrics.to_dict(orient="records"),
        "overlays": _overlays(outdir, run, mics, radius),
        "n_overlays": min(OVERLAYS, len(run.summary)),
        "means": _b64(figures.mean_images(means, counts)),
        "galleries": galleries,
        "histograms": histograms,
        "parameters": parameters,
        "timings": list(run.timings.items()),
    }


def render(context: dict, template: str = "report.html.j2") -> str:
    """The HTML page for ``context`` (or one of its sections' ``template``)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cryosift.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    return env.get_template(template).render(**context)


def write_report(outdir: Path, run, pset, cfg, inputs: dict, mics: pd.DataFrame) -> Path:
    """Write ``outdir/report.html`` (atomically) and return its path."""
    page = render(build_context(Path(outdir), run, pset, cfg, inputs, mics))
    target = Path(outdir) / "report.html"
    write_all_or_nothing({target: lambda p: p.write_text(page, encoding="utf-8")})
    return target
