"""The report's parts without a browser: overlays keep every pick, the page embeds everything."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
from PIL import Image

from cryosift.report import figures
from cryosift.report.figures import COLOURS, micrograph_overlay, thumbnail
from cryosift.report.html import overlay_picks, typed_inputs


def test_overlay_marks_picks_that_were_not_extracted():
    scores = pd.DataFrame(
        {"x_px": [10.0, 50.0], "y_px": [20.0, 60.0], "verdict": ["inlier", "noise"]}
    )
    coords = pd.DataFrame({"x": [10.0, 50.0, 3.0], "y": [20.0, 60.0, 4.0]})
    picks = overlay_picks(scores, coords)
    assert len(picks) == 3
    assert picks.set_index("x").verdict.to_dict() == {
        10.0: "inlier",
        50.0: "noise",
        3.0: "not extracted",
    }


def test_overlay_of_a_micrograph_with_no_pick():
    """Zero picks is normal: an empty micrograph draws as an overlay of nothing."""
    empty = pd.DataFrame({"x_px": [], "y_px": [], "verdict": []})
    picks = overlay_picks(empty, pd.DataFrame({"x": [], "y": []}))
    assert len(picks) == 0 and {"x", "y", "verdict"} <= set(picks.columns)


def _has_colour(rgb: np.ndarray, hex_colour: str, tol: int = 40) -> bool:
    from matplotlib.colors import to_rgb

    want = 255 * np.array(to_rgb(hex_colour))
    return bool((np.abs(rgb.astype(int) - want).max(axis=-1) < tol).any())


def test_overlay_draws_a_circle_of_each_verdicts_colour_where_its_pick_is():
    """Each pick is a ring of its verdict's colour around the pick, not a filled disc; an
    overlay of no pick decodes too."""
    image = np.zeros((1200, 1200))  # drawn as a thumbnail of a third of its size
    image[::2] = 1.0  # stripes: a grey image with a grey range
    picks = pd.DataFrame({"x": [300.0, 900.0], "y": [300.0, 900.0],
                          "verdict": ["inlier", "multiple"]})  # fmt: skip
    rgb = np.asarray(Image.open(io.BytesIO(micrograph_overlay(image, picks, 120, "t"))))[..., :3]
    h, w = rgb.shape[:2]
    quarter = rgb[: h // 2, : w // 2]  # the inlier's quarter: green, never the other's red
    assert _has_colour(quarter, COLOURS["inlier"])
    assert not _has_colour(quarter, COLOURS["multiple"])
    assert _has_colour(rgb[h // 2 :, w // 2 :], COLOURS["multiple"])
    centre = rgb[int(h * 0.25) - 2 : int(h * 0.25) + 3, int(w * 0.25) - 2 : int(w * 0.25) + 3]
    assert not _has_colour(centre, COLOURS["inlier"])  # a ring: the centre shows the image
    empty = micrograph_overlay(image, picks.iloc[:0], 120, "none")
    assert Image.open(io.BytesIO(empty)).size[0] > 100


def test_thumbnail_is_a_block_mean():
    image = np.arange(64 * 96, dtype=float).reshape(64, 96)
    small, f = thumbnail(image, longest=32)
    assert f == 3 and small.shape == (21, 32)
    assert small[0, 0] == image[:3, :3].mean()


def test_report_is_self_contained(reference_run):
    html = (reference_run / "report.html").read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html


def test_report_counts_the_picks_left_out_on_dark_areas(reference_run):
    """The note appears exactly when the run's summary counts such picks, with their number
    (the simulated micrographs have contamination and carbon edges)."""
    html = (reference_run / "report.html").read_text()
    left = pd.read_csv(reference_run / "pick_summary.csv").on_dark_areas.sum()
    note = re.search(r'id="dark-left-out">(\d+) picks', html)
    assert (note is None) == (left == 0)
    assert note is None or int(note.group(1)) == left


def test_title_shows_the_input_as_typed_not_a_python_list():
    expanded = [f"Micrographs/mic_{i:03d}.mrc" for i in range(12)]
    assert typed_inputs(expanded) == "Micrographs/*.mrc (12 files)"
    assert typed_inputs(["a/x.mrc", "b/y.tif"]) == "a/x.mrc and 1 more"
    assert typed_inputs(["CtfFind/job003/micrographs_ctf.star"]).endswith("micrographs_ctf.star")
    assert typed_inputs("Micrographs/") == "Micrographs/"


def test_report_title_of_a_run_is_not_a_list(reference_run):
    title = re.search(r"<h1>(.*?)</h1>", (reference_run / "report.html").read_text()).group(1)
    assert "[" not in title and "'" not in title and "&#39;" not in title


def test_an_empty_class_is_drawn_as_the_word_empty_not_a_black_square():
    """The middle class has no image: its (all-zero) average would be a black square."""
    from cryosift.classify.run import gallery

    rng = np.random.default_rng(0)
    averages = rng.normal(0.5, 0.1, (3, 32, 32))
    averages[1] = 0.0
    good = np.array([True, False, True])

    def dark_share(counts):
        buf = io.BytesIO()
        gallery(buf, averages, ["1", "2", "3"], good, np.array(counts))
        grey = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), float)
        return (grey < 40).mean()

    drawn, empty = dark_share([5, 5, 5]), dark_share([5, 0, 5])
    assert empty < 0.6 * drawn


def test_stacked_histogram_counts_each_verdict_once_on_shared_bins():
    rng = np.random.default_rng(0)
    groups = [rng.normal(size=300), rng.normal(1, 1, size=50), np.array([np.nan, 0.5, np.inf])]
    tops, edges = figures.stacked_counts(groups, 40)
    assert tops.shape == (4, 40) and len(edges) == 41
    for i, g in enumerate(groups):  # each band is that group's own histogram, NaN/inf left out
        g = g[np.isfinite(g)]
        assert np.array_equal(tops[i + 1] - tops[i], np.histogram(g, edges)[0])
    assert tops[-1].sum() == 300 + 50 + 1
    assert edges[0] == min(g[np.isfinite(g)].min() for g in groups)
    png = figures.histogram_by_verdict(
        pd.DataFrame({"verdict": ["inlier"] * 3 + ["noise"] * 2, "s": [0.0, 1, 2, np.nan, 3]}),
        "s", "score")  # fmt: skip
    assert Image.open(io.BytesIO(png)).size[0] > 100
