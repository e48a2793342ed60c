"""Coordinate formats: every writer round-trips through its reader; real and broken files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import assert_input_error, shared_path
from cryosift.errors import InputError
from cryosift.io.coords import (
    check_inside,
    guess_format,
    read_coords,
    scale_coords,
    write_box,
    write_cbox,
    write_cryoppp,
    write_particles_coords,
    write_relion,
    write_topaz,
)


@pytest.fixture
def picks() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 12
    return pd.DataFrame(
        {
            "micrograph": "mic_001",
            "x": rng.uniform(50, 900, n).round(2),
            "y": rng.uniform(50, 700, n).round(2),
            "score": rng.uniform(0, 1, n).round(4),
            "diameter": np.nan,
        }
    )


def _same(a: pd.DataFrame, b: pd.DataFrame, score: bool = True) -> None:
    np.testing.assert_allclose(a.x, b.x, atol=0.01)
    np.testing.assert_allclose(a.y, b.y, atol=0.01)
    if score:
        np.testing.assert_allclose(a.score, b.score, atol=1e-4)


@pytest.mark.parametrize(
    ("suffix", "writer", "fmt", "score"),
    [
        (".star", write_relion, "relion", True),
        (".star", write_particles_coords, "particles", True),
        (".txt", write_topaz, "topaz", True),
        (".csv", write_cryoppp, "cryoppp", False),
    ],
)
def test_round_trip(tmp_path, picks, suffix, writer, fmt, score):
    path = tmp_path / f"mic_001{suffix}"
    writer(path, picks)
    assert guess_format(path) == fmt
    back = read_coords(path)
    _same(picks, back, score)
    assert (back.micrograph == "mic_001").all()


@pytest.mark.parametrize(
    ("suffix", "writer", "fmt"), [(".box", write_box, "box"), (".cbox", write_cbox, "cbox")]
)
def test_box_formats_store_corners_and_round_trip_to_centres(tmp_path, picks, suffix, writer, fmt):
    path = tmp_path / f"mic_001{suffix}"
    writer(path, picks, 64)
    back = read_coords(path)
    _same(picks, back, score=fmt == "cbox")
    assert (back.diameter == 64).all()
    if fmt == "box":  # lower-left corner = centre - box/2
        first = path.read_text().split()
        assert float(first[0]) == pytest.approx(picks.x[0] - 32, abs=0.01)


def test_relion_coordinate_list(tmp_path, picks):
    (tmp_path / "coords").mkdir()
    write_relion(tmp_path / "coords" / "a.star", picks)
    write_relion(tmp_path / "coords" / "b.star", picks.iloc[:3])
    listing = pd.DataFrame(
        {
            "rlnMicrographName": ["Micrographs/a.mrc", "Micrographs/b.mrc"],
            "rlnMicrographCoordinates": ["coords/a.star", "coords/b.star"],
        }
    )
    starfile.write({"coordinate_files": listing}, tmp_path / "autopick.star")
    back = read_coords(tmp_path / "autopick.star")
    assert guess_format(tmp_path / "autopick.star") == "relion-list"
    assert back.micrograph.value_counts().to_dict() == {
        "Micrographs/a.mrc": 12,
        "Micrographs/b.mrc": 3,
    }


def test_cryosparc_picks(tmp_path):
    dtype = [
        ("location/micrograph_path", "S32"),
        ("location/micrograph_shape", "<u4", (2,)),
        ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"),
    ]
    rec = np.zeros(2, dtype=dtype)
    rec["location/micrograph_path"] = [b"J1/mic_a.mrc", b"J1/mic_b.mrc"]
    rec["location/micrograph_shape"] = [(3710, 3838), (3710, 3838)]  # (height, width)
    rec["location/center_x_frac"] = [0.5, 0.25]
    rec["location/center_y_frac"] = [0.1, 0.75]
    path = tmp_path / "picks.cs"
    with open(path, "wb") as fh:
        np.save(fh, rec)
    back = read_coords(path)
    np.testing.assert_allclose(back.x, [1919, 959.5], atol=0.1)
    np.testing.assert_allclose(back.y, [371, 2782.5], atol=0.1)
    assert list(back.micrograph) == ["J1/mic_a.mrc", "J1/mic_b.mrc"]


def test_scaling_is_explicit(picks):
    half = scale_coords(picks, 0.5)
    np.testing.assert_allclose(half.x, picks.x / 2)
    np.testing.assert_allclose(scale_coords(half, 2).y, picks.y)


def test_real_cryoppp_coordinates():
    folder = shared_path("empiar10017", "coords")
    files = sorted(folder.glob("*.csv"))
    total = sum(len(read_coords(f)) for f in files)
    assert len(files) == 20 and total == 12823
    one = read_coords(files[0])
    assert (one.diameter == 108).all() and one.x.between(0, 4096).all()


@pytest.mark.parametrize(
    ("name", "words"),
    [("coords_nan.star", "NaN"), ("coords_bad.csv", "non-numeric")],
)
def test_broken_coordinates_fail_naming_the_file(name, words):
    assert_input_error(read_coords, name, words)


def test_empty_coordinates_are_zero_picks():
    assert len(read_coords(shared_path("bad_inputs", "coords_empty.star"))) == 0


def test_coordinates_outside_the_micrograph():
    path = shared_path("bad_inputs", "coords_outside.star")
    picks = read_coords(path)
    with pytest.raises(InputError) as err:
        check_inside(picks, (4096, 4096), path)
    assert "2 picks outside" in err.value.message and "coords_outside.star" in err.value.message


def test_every_format_name_has_its_reader():
    """``--format``'s names (kept light in :mod:`cryosift.io.formats` for ``--help``) are
    exactly the readers', in the same order."""
    from cryosift.io import coords

    assert tuple(coords.READERS) == coords.FORMATS
