"""``cryosift extract`` end to end: centring and scale, RELION 3.1 output that ``cryosift clean``
reads, phase flipping, off-edge picks, resume, parallel runs and every bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import BAD_MICROGRAPHS, assert_cli_rejects, run_cli, shared_path
from cryosift.errors import InputError
from cryosift.io.coords import write_relion
from cryosift.io.mrc import write_stack
from cryosift.io.particles import read_particles
from cryosift.io.star import optics_table, write_star

ANGPIX = 1.5
SHAPE = (256, 320)  # rows, cols: not square, so a swapped axis shows
SIGMA = 3.0
DEFOCUS_U, DEFOCUS_V = 30000.0, 29000.0  # Å, of mic_0; mic_i adds 0.1 i µm


def _blobs(picks: np.ndarray, shape=SHAPE, sigma=SIGMA) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.float32)
    for x, y in picks:
        out += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return out


def _picks(seed: int, n: int = 6, margin: float = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(margin, SHAPE[1] - margin, n)
    y = rng.uniform(margin, SHAPE[0] - margin, n)
    return np.stack([x, y], axis=1)


def _coords(path: Path, xy: np.ndarray) -> None:
    table = pd.DataFrame({"micrograph": path.stem, "x": xy[:, 0], "y": xy[:, 1]})
    table["score"], table["diameter"] = np.nan, np.nan
    write_relion(path, table)


def make_project(root: Path, n: int = 3, noise: float = 0.0) -> Path:
    """``root/mics/mic_i.mrc`` with Gaussian blobs at ``root/coords/mic_i.star`` and a CTF
    STAR ``root/ctf.star``."""
    (root / "mics").mkdir(parents=True)
    (root / "coords").mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        xy = _picks(i)
        image = _blobs(xy) + noise * rng.normal(size=SHAPE).astype(np.float32)
        write_stack(root / "mics" / f"mic_{i}.mrc", image, ANGPIX)
        _coords(root / "coords" / f"mic_{i}.star", xy)
        rows.append(
            {
                "rlnMicrographName": f"mics/mic_{i}.mrc",
                "rlnOpticsGroup": 1,
                "rlnDefocusU": DEFOCUS_U + 1000 * i,
                "rlnDefocusV": DEFOCUS_V + 1000 * i,
                "rlnDefocusAngle": 30.0,
            }
        )
    write_star(
        {"optics": optics_table(ANGPIX, None), "micrographs": pd.DataFrame(rows)}, root / "ctf.star"
    )
    return root


def extract(root: Path, *extra: str, out: str = "out"):
    return run_cli("extract", root / "mics", root / "coords", "-o", root / out, *extra)


@pytest.mark.parametrize("subpixel", [False, True])
def test_blobs_are_centred_and_binned(tmp_path, subpixel):
    """RELION centres a box on the pick's whole px (the fraction stays, halved by binning);
    ``--subpixel`` moves the pick itself to the centre."""
    root = make_project(tmp_path, n=2)
    extra = ["--subpixel"] if subpixel else []
    res = extract(root, "--box-px", "40", "--bin", "2", "--no-normalise", *extra)
    assert res.returncode == 0, res.stderr
    pset = read_particles(root / "out" / "particles.star")
    assert len(pset) == 12 and pset.box == 20 and pset.angpix == pytest.approx(2 * ANGPIX)
    images = pset.read(0, len(pset))
    star = starfile.read(root / "out" / "particles.star")["particles"]
    frac = star[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy()
    frac = frac - np.trunc(frac)  # where the blob sits relative to the box centre (px)
    assert frac.std() > 0.1  # the picks do have fractions
    if subpixel:
        frac = 0 * frac
    yy, xx = np.mgrid[:20, :20]
    for img, (fx, fy) in zip(images, frac, strict=True):
        w = img / img.sum()
        cx, cy = (w * xx).sum(), (w * yy).sum()
        assert cx == pytest.approx(10 + fx / 2, abs=0.05)
        assert cy == pytest.approx(10 + fy / 2, abs=0.05)
        sx = np.sqrt((w * (xx - cx) ** 2).sum())
        assert sx == pytest.approx(SIGMA / 2, rel=0.03)  # half the width after binning by 2
    with mrcfile.open(pset.stacks[0].path) as mrc:
        assert mrc.is_image_stack()
        assert float(mrc.voxel_size.x) == pytest.approx(2 * ANGPIX)
    pset.close()


def test_relion31_output_feeds_clean(tmp_path):
    """Run from a project folder (``tmp_path``): every name in the STAR is relative to it, as
    RELION reads them; ``cryosift clean`` finds the stacks from anywhere."""
    sim = tmp_path / "sim"
    assert run_cli("simulate", "micrographs", "-o", sim, "-n", "2", "--seed", "3").returncode == 0
    out = tmp_path / "ext"
    res = run_cli(
        "extract",
        "sim/micrographs_ctf.star",
        "sim/Coordinates",
        "-o",
        "ext",
        *"--box-A 176 --size 44 --phase-flip --invert --diameter-A 88".split(),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    blocks = starfile.read(out / "particles.star")
    optics, particles = blocks["optics"], blocks["particles"]
    for col in (
        "rlnImagePixelSize",
        "rlnImageSize",
        "rlnImageDimensionality",
        "rlnVoltage",
        "rlnSphericalAberration",
        "rlnAmplitudeContrast",
        "rlnCtfDataArePhaseFlipped",
    ):
        assert col in optics.columns
    assert optics.rlnImageSize[0] == 44 and optics.rlnImagePixelSize[0] == pytest.approx(4.0)
    assert optics.rlnMicrographOriginalPixelSize[0] == pytest.approx(2.0)
    names = particles.rlnImageName
    assert all(re.fullmatch(r"\d{6}@ext/Particles/mic_00[12]\.mrcs", n) for n in names)
    assert set(particles.rlnMicrographName) == {
        "sim/Micrographs/mic_001.mrc",
        "sim/Micrographs/mic_002.mrc",
    }
    for col in (
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnDefocusU",
        "rlnDefocusV",
        "rlnDefocusAngle",
    ):
        assert col in particles.columns
    truth = sum(len(starfile.read(p)) for p in (sim / "Coordinates").glob("*.star"))
    assert len(particles) == truth
    res = run_cli("clean", out / "particles.star", "--diameter-A", "88", "-o", tmp_path / "clean")
    assert res.returncode == 0, res.stderr
    scores = pd.read_csv(tmp_path / "clean" / "scores.csv")
    assert len(scores) == truth


def test_phase_flip_restores_the_particles(tmp_path):
    """Blobs blurred by a CTF: phase flipping brings the extracted boxes back towards the
    blobs (higher correlation, positive centre), and the STAR says they are flipped."""
    from scipy import fft as sfft

    from cryosift.io.particles import CtfParams
    from cryosift.preprocess.fourier import ctf_values

    root = make_project(tmp_path, n=1)
    xy = _picks(0)
    n = max(SHAPE)
    params = CtfParams(*(np.array([v]) for v in (DEFOCUS_U, DEFOCUS_V, 30.0, 300.0, 2.7, 0.1, 0.0)))
    ctf = ctf_values(params, ANGPIX, n)[0]
    ry = np.round(sfft.fftfreq(SHAPE[0]) * n).astype(int) % n
    rx = np.round(sfft.rfftfreq(SHAPE[1]) * n).astype(int)
    blurred = sfft.irfft2(sfft.rfft2(_blobs(xy)) * ctf[np.ix_(ry, rx)], s=SHAPE)
    write_stack(root / "mics" / "mic_0.mrc", blurred.astype(np.float32), ANGPIX)
    common = ("--box-px", "64", "--ctf", root / "ctf.star", "--no-normalise")
    assert extract(root, *common, out="plain").returncode == 0
    res = extract(root, *common, "--phase-flip", out="flip")
    assert res.returncode == 0, res.stderr
    centred = 32.0 + xy - np.floor(xy + 0.5)  # each blob in its box
    truth = np.stack([_blobs(c[None], (64, 64)) for c in centred])

    def corr(folder: str) -> np.ndarray:
        pset = read_particles(root / folder / "particles.star")
        imgs = pset.read(0, len(pset))
        pset.close()
        a = imgs.reshape(len(imgs), -1) - imgs.mean(axis=(1, 2))[:, None]
        b = truth.reshape(len(truth), -1) - truth.mean(axis=(1, 2))[:, None]
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1), imgs

    plain, _ = corr("plain")
    flipped, imgs = corr("flip")
    assert (flipped > plain + 0.2).all() and (flipped > 0.6).all()
    assert (imgs[:, 32, 32] > 0).all()
    optics = starfile.read(root / "flip" / "particles.star")["optics"]
    assert optics.rlnCtfDataArePhaseFlipped[0] == 1


def test_invert_negates_and_normalise_sets_the_background(tmp_path):
    root = make_project(tmp_path, n=1, noise=0.3)
    assert extract(root, "--box-px", "48", out="a").returncode == 0
    assert extract(root, "--box-px", "48", "--invert", out="b").returncode == 0
    a = mrcfile.read(root / "a" / "Particles" / "mic_0.mrcs")
    b = mrcfile.read(root / "b" / "Particles" / "mic_0.mrcs")
    np.testing.assert_array_equal(a, -b)
    yy, xx = np.mgrid[:48, :48] - 24
    bg = a[:, np.hypot(yy, xx) > int(0.375 * 48)]  # RELION's default background circle
    np.testing.assert_allclose(bg.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(bg.std(axis=1), 1, rtol=1e-3)


def test_off_edge_picks_are_reported_and_padded_or_skipped(tmp_path):
    root = make_project(tmp_path, n=2)
    xy = np.array([[5.0, 100.0], [160.0, 128.0], [300.0, 250.0]])  # two boxes leave mic_1
    write_stack(root / "mics" / "mic_1.mrc", _blobs(xy), ANGPIX)
    _coords(root / "coords" / "mic_1.star", xy)
    res = extract(root, "--box-px", "32", "--no-normalise")
    assert res.returncode == 0, res.stderr
    assert re.search(r"boxes off the edge: mic_1\.mrc \(2\)", res.stderr.replace("\n", " "))
    summary = pd.read_csv(root / "out" / "extract_summary.csv").set_index("micrograph")
    row = summary.loc[str(root / "mics" / "mic_1.mrc")]
    assert (row.picks, row.extracted, row.off_edge) == (3, 3, 2)  # RELION keeps them
    boxes = mrcfile.read(root / "out" / "Particles" / "mic_1.mrcs")
    # the first box's columns left of the micrograph repeat its column 0 (RELION's rule)
    first = boxes[0]
    np.testing.assert_array_equal(first[:, :11], np.repeat(first[:, 11:12], 11, axis=1))
    res = extract(root, "--box-px", "32", "--skip-off-edge", out="skipped")
    assert res.returncode == 0, res.stderr
    assert mrcfile.read(root / "skipped" / "Particles" / "mic_1.mrcs").shape == (32, 32)  # one


def test_rerun_resumes_and_parallel_equals_serial(tmp_path):
    root = make_project(tmp_path, n=4, noise=0.1)
    args = ("--box-px", "32", "--bin", "2")
    assert extract(root, *args, "--jobs", "1").returncode == 0
    out = root / "out"
    first = (out / "particles.star").read_bytes()
    stacks = {p.name: p.read_bytes() for p in (out / "Particles").glob("*.mrcs")}
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "Particles").glob("*.mrcs")}
    (out / "Particles" / "mic_2.mrcs").unlink()
    res = extract(root, *args, "--jobs", "3")
    assert res.returncode == 0, res.stderr
    summary = pd.read_csv(out / "extract_summary.csv")
    assert summary.status.tolist() == ["resumed", "resumed", "extracted", "resumed"]
    assert (out / "particles.star").read_bytes() == first
    for p in (out / "Particles").glob("*.mrcs"):
        assert p.read_bytes() == stacks[p.name]  # threads give the same bytes as one
        if p.name != "mic_2.mrcs":
            assert p.stat().st_mtime_ns == mtimes[p.name]
    res = extract(root, "--box-px", "40")
    assert res.returncode == 2 and "extract.json" in res.stderr and "box" in res.stderr
    assert extract(root, "--box-px", "40", "--overwrite").returncode == 0


def test_coordinate_scaling_is_explicit(tmp_path):
    root = make_project(tmp_path, n=1)
    assert extract(root, "--box-px", "32", out="ref").returncode == 0
    picks = starfile.read(root / "coords" / "mic_0.star")
    half = root / "half"
    half.mkdir()
    _coords(half / "mic_0.star", picks[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy() / 2)
    for flag, value, out in (("--scale", "2", "s"), ("--coords-angpix", str(2 * ANGPIX), "c")):
        res = run_cli(
            "extract", root / "mics", half, "-o", root / out, "--box-px", "32", flag, value
        )
        assert res.returncode == 0, res.stderr
        assert (root / out / "Particles" / "mic_0.mrcs").read_bytes() == (
            root / "ref" / "Particles" / "mic_0.mrcs"
        ).read_bytes()


def test_zero_picks_is_not_an_error(tmp_path):
    root = make_project(tmp_path, n=2)
    shutil.copy(shared_path("bad_inputs", "coords_empty.star"), root / "coords" / "mic_1.star")
    res = extract(root, "--box-px", "32")
    assert res.returncode == 0, res.stderr
    assert "micrographs with zero picks: mic_1.mrc" in res.stderr
    assert len(starfile.read(root / "out" / "particles.star")["particles"]) == 6
    assert not (root / "out" / "Particles" / "mic_1.mrcs").exists()


@pytest.mark.parametrize(("name", "words"), BAD_MICROGRAPHS)
def test_bad_micrographs(tmp_path, name, words):
    coords = tmp_path / "c.star"
    _coords(coords, np.array([[10.0, 10.0]]))
    out = tmp_path / "out"
    res = run_cli("extract", shared_path("bad_inputs", name), coords, "-o", out, "--box-px", "8")
    assert_cli_rejects(res, name, words, out)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("coords_nan.star", "NaN"),
        ("coords_outside.star", "outside"),
        ("coords_bad.csv", "non-numeric"),
        ("garbled.star", "garbled"),
    ],
)
def test_bad_coordinates(tmp_path, name, words):
    root = make_project(tmp_path, n=1)
    out = tmp_path / "out"
    res = run_cli(
        "extract",
        root / "mics" / "mic_0.mrc",
        shared_path("bad_inputs", name),
        "-o",
        out,
        "--box-px",
        "8",
    )
    assert_cli_rejects(res, name, words, out)


def test_missing_micrograph_mismatched_pixel_sizes_and_nan_pixels(tmp_path):
    root = make_project(tmp_path, n=2)
    out = tmp_path / "out"
    _coords(root / "coords" / "mic_9.star", np.array([[50.0, 50.0]]))
    assert_cli_rejects(extract(root, "--box-px", "16"), "mic_9.star", "'mic_9'", out)
    (root / "coords" / "mic_9.star").unlink()

    write_stack(root / "mics" / "mic_1.mrc", _blobs(_picks(1)), 2 * ANGPIX)
    strict = extract(root, "--box-px", "16", "--strict")
    assert_cli_rejects(strict, "mic_1.mrc", "pixel size 3 Å", out)
    res = extract(root, "--box-px", "16", out="skipping")  # named, left out; the other done
    assert res.returncode == 0 and "skipped" in res.stderr, res.stderr
    assert "mic_1.mrc: pixel size 3 Å differs from 1.5 Å" in res.stderr
    assert len(pd.read_csv(root / "skipping" / "extract_summary.csv")) == 1
    assert extract(root, "--box-px", "16", "--angpix", "1.5", out="forced").returncode == 0
    write_stack(root / "mics" / "mic_1.mrc", _blobs(_picks(1)), ANGPIX)

    ctf = starfile.read(root / "ctf.star")
    ctf["optics"]["rlnMicrographPixelSize"] = 1.0
    write_star(ctf, root / "other.star")
    res = extract(root, "--box-px", "16", "--ctf", root / "other.star")
    assert_cli_rejects(res, "other.star", "pixel size 1 Å differs", out)

    image = _blobs(_picks(1))
    image[7, 9] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):
        write_stack(root / "mics" / "mic_1.mrc", image, ANGPIX)
    assert_cli_rejects(extract(root, "--box-px", "16", "--strict"), "mic_1.mrc", "NaN", out)
    assert not out.exists()  # mic_0 was done before mic_1 failed: removed again
    res = extract(root, "--box-px", "16", out="nan")
    assert res.returncode == 0 and "mic_1.mrc: 1 NaN or infinite pixels" in res.stderr
    skipped = pd.read_csv(root / "nan" / "skipped.csv")
    assert [Path(m).name for m in skipped.micrograph] == ["mic_1.mrc"]
    assert (root / "nan" / "Particles" / "mic_0.mrcs").exists()
    assert not (root / "nan" / "Particles" / "mic_1.mrcs").exists()


def test_empiar10017_extract_then_clean(tmp_path):
    """All 20 real EMPIAR-10017 JPEGs at their 12,823 CryoPPP picks, then ``cryosift clean``."""
    data = shared_path("empiar10017")
    out = tmp_path / "ext"
    res = run_cli(
        "extract",
        data / "images",
        data / "coords",
        "-o",
        out,
        *"--angpix 1.77 --box-px 160 --size 64 --diameter-A 191 --invert".split(),
    )
    assert res.returncode == 0, res.stderr
    summary = pd.read_csv(out / "extract_summary.csv")
    assert len(summary) == 20 and summary.picks.sum() == 12823
    assert summary.extracted.sum() + summary.off_edge.sum() == 12823
    # the radial profile is what is checked: the class vote (12,000 images classified) is not
    res = run_cli("clean", out / "particles.star", "--diameter-A", "191", "--no-classes",
                  "-o", tmp_path / "clean")  # fmt: skip
    assert res.returncode == 0, res.stderr
    scores = pd.read_csv(tmp_path / "clean" / "scores.csv")
    assert len(scores) == summary.extracted.sum()
    # Every box holds a labelled particle: nearly all match the stack's radial profile.
    assert (scores.profile_z > 1).mean() > 0.9


def test_several_micrograph_paths_equal_the_folder(tmp_path):
    """``cryosift extract mics/*.mrc coords/`` (the shell's expansion) cuts what the folder
    gives; the paths may mix files and folders, and a name given twice is refused."""
    from cryosift.extract.run import find_micrographs

    root = make_project(tmp_path, n=3, noise=0.1)
    assert extract(root, "--box-px", "32").returncode == 0
    files = sorted((root / "mics").glob("*.mrc"))
    res = run_cli("extract", *files, root / "coords", "-o", root / "each", "--box-px", "32")
    assert res.returncode == 0, res.stderr
    each = (root / "each" / "particles.star").read_text()  # names hold the output folder
    assert (
        each.replace(f"{root}/each/", f"{root}/out/")
        == (root / "out" / "particles.star").read_text()
    )
    mixed = find_micrographs([files[2], root / "mics" / "mic_[01].mrc"])  # a file, a glob
    assert list(mixed.key) == ["mic_2", "mic_0", "mic_1"]
    with pytest.raises(InputError, match="share the name"):
        find_micrographs([files[0], files[0]])
    with pytest.raises(InputError, match="no micrographs given"):
        find_micrographs([])


def test_options_that_need_what_the_inputs_lack(tmp_path):
    """Phase flipping without defoci, or without a pixel size, and a diameter in Å without a
    pixel size: one line naming the input, nothing written."""
    root = make_project(tmp_path, n=1)
    out = root / "out"
    res = extract(root, "--box-px", "16", "--phase-flip")
    assert_cli_rejects(res, "mics", "--phase-flip needs defoci", out)
    write_stack(root / "mics" / "mic_0.mrc", _blobs(_picks(0)), None)  # no pixel size
    res = extract(root, "--box-px", "16", "--phase-flip", "--ctf", root / "ctf.star")
    assert_cli_rejects(res, "mics", "--phase-flip needs a pixel size", out)
    res = extract(root, "--box-px", "16", "--diameter-A", "30", out="d")
    assert_cli_rejects(res, "mics", "--diameter-A needs a pixel size", root / "d")
    assert (
        extract(root, "--box-px", "16", "--diameter-A", "30", "--angpix", "1.5", out="a").returncode
        == 0
    )
