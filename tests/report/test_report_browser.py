"""report.html in a real browser: Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cryosift.outliers.rules import VERDICTS

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")


def test_report_loads_cleanly_and_shows_the_counts(reference_run):
    sync_api = pytest.importorskip("playwright.sync_api")
    binary = chromium_binary()
    report = reference_run / "report.html"
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            shown = page.evaluate(
                "Object.fromEntries(Array.from(document.querySelectorAll('[data-count]'))"
                ".map(e => [e.dataset.count, e.textContent.trim()]))"
            )
            page.screenshot(path=str(reference_run / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    # self-contained: nothing but the page itself and its embedded data was requested
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert len(images) >= 8
    broken = [alt for alt, complete, width in images if not (complete and width > 0)]
    assert not broken, broken
    alts = [alt for alt, _, _ in images]
    assert "2D class averages of the inliers" in alts
    assert "2D class averages of the removed particles" in alts
    scores = pd.read_csv(reference_run / "scores.csv")
    summary = pd.read_csv(reference_run / "pick_summary.csv")
    for verdict in VERDICTS:
        assert int(shown[verdict].replace(",", "")) == (scores.verdict == verdict).sum(), verdict
    assert int(shown["particles"].replace(",", "")) == len(scores)
    assert int(shown["picks"].replace(",", "")) == summary.picks.sum()
    assert int(shown["micrographs"]) == len(summary)
