"""The report's parts without a browser: overlays keep every pick, the page embeds everything."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cryosift.report.figures import thumbnail
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
    from io import BytesIO

    from PIL import Image

    from cryosift.classify.run import gallery

    rng = np.random.default_rng(0)
    averages = rng.normal(0.5, 0.1, (3, 32, 32))
    averages[1] = 0.0
    good = np.array([True, False, True])

    def dark_share(counts):
        buf = BytesIO()
        gallery(buf, averages, ["1", "2", "3"], good, np.array(counts))
        grey = np.asarray(Image.open(BytesIO(buf.getvalue())).convert("L"), float)
        return (grey < 40).mean()

    drawn, empty = dark_share([5, 5, 5]), dark_share([5, 0, 5])
    assert empty < 0.6 * drawn
