"""Micrographs from MRC (every mode, FEI headers), TIFF, PNG and JPEG in one convention."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import BAD_MICROGRAPHS, assert_input_error, shared_path
from cryosift.errors import InputError
from cryosift.io.micrographs import (
    _fei_angpix,
    micrograph_key,
    probe_micrograph,
    read_micrograph,
    read_micrographs_star,
    resolve_key,
)


def _marked(dtype, shape=(40, 70)) -> np.ndarray:
    """A non-square test image with one bright pixel at row 10, column 30."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 50, size=shape).astype(dtype)
    image[10, 30] = 120
    return image


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.uint16, np.float16])
def test_mrc_modes(tmp_path, dtype):
    image = _marked(dtype)
    path = tmp_path / "mic.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(image)
        mrc.voxel_size = 1.23
    mic = read_micrograph(path)
    assert mic.image.dtype == np.float32 and mic.shape == (40, 70)
    np.testing.assert_array_equal(mic.image, image.astype(np.float32))
    assert np.unravel_index(np.argmax(mic.image), mic.shape) == (10, 30)
    assert mic.angpix == pytest.approx(1.23, rel=1e-5)
    assert read_micrograph(path, angpix=2.0).angpix == 2.0


@pytest.mark.parametrize(
    ("suffix", "dtype"),
    [(".tif", np.uint16), (".tiff", np.float32), (".png", np.uint8), (".png", np.uint16)],
)
def test_lossless_image_formats_keep_values_and_orientation(tmp_path, suffix, dtype):
    image = _marked(dtype)
    path = tmp_path / f"mic{suffix}"
    if suffix.startswith(".tif"):
        import tifffile

        tifffile.imwrite(path, image)
    else:
        from PIL import Image

        Image.fromarray(image).save(path)
    mic = read_micrograph(path)
    np.testing.assert_array_equal(mic.image, image.astype(np.float32))
    assert mic.angpix is None
    assert probe_micrograph(path).shape == (40, 70)


def test_jpeg_orientation(tmp_path):
    from PIL import Image

    image = np.full((40, 70), 30, np.uint8)
    image[8:13, 28:33] = 220
    Image.fromarray(image).save(tmp_path / "mic.jpg", quality=95)
    mic = read_micrograph(tmp_path / "mic.jpg")
    assert mic.shape == (40, 70)
    rows, cols = np.nonzero(mic.image > 125)
    assert abs(rows.mean() - 10) < 0.5 and abs(cols.mean() - 30) < 0.5


def test_rgb_grey_image_becomes_one_channel(tmp_path):
    from PIL import Image

    grey = _marked(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "mic.png")
    np.testing.assert_array_equal(read_micrograph(tmp_path / "mic.png").image, grey)


@pytest.mark.parametrize(
    ("name", "shape", "angpix"),
    [("fei-extended.mrc", (3838, 3710), 0.854), ("epu2.9_example.mrc", (4096, 4096), 0.667)],
)
def test_real_fei_micrographs(name, shape, angpix):
    path = shared_path("real_micrographs", name)
    info = probe_micrograph(path)
    assert info.shape == shape
    assert info.angpix == pytest.approx(angpix, abs=1e-3)
    with mrcfile.mmap(path, permissive=True) as mrc:
        raw = np.asarray(mrc.data[:5, :7], dtype=np.float32)
        # The FEI extended header states the same pixel size as the main header.
        assert _fei_angpix(mrc) == pytest.approx(info.angpix, rel=1e-3)
    mic = read_micrograph(path)
    assert mic.shape == shape and mic.image.dtype == np.float32
    np.testing.assert_array_equal(mic.image[:5, :7], raw)


def test_empiar_jpeg_labels_sit_on_particles():
    """The CryoPPP coordinates (x = column, y = row from the top) sit on dark particles: the
    pixels under the labels are darker than under the same labels mirrored vertically."""
    import pandas as pd

    images = shared_path("empiar10017", "images")
    path = sorted(images.glob("*.jpg"))[0]
    coords = pd.read_csv(shared_path("empiar10017", "coords", path.stem + ".csv"))
    mic = read_micrograph(path)
    assert mic.shape == (4096, 4096) and mic.angpix is None
    x = coords["X-Coordinate"].round().astype(int).to_numpy()
    y = coords["Y-Coordinate"].round().astype(int).to_numpy()
    at_labels = mic.image[y, x].mean()
    mirrored = mic.image[mic.shape[0] - 1 - y, x].mean()
    swapped = mic.image[x, y].mean()
    assert at_labels < mirrored - 5 and at_labels < swapped - 5


@pytest.mark.parametrize(("name", "words"), BAD_MICROGRAPHS)
def test_broken_micrographs(name, words):
    assert_input_error(read_micrograph, name, words)


def test_nan_pixels_and_unknown_types(tmp_path):
    image = np.ones((20, 30), np.float32)
    image[3, 4] = np.nan
    with mrcfile.new(tmp_path / "nan.mrc") as mrc, pytest.warns(RuntimeWarning, match="NaN"):
        mrc.set_data(image)
    with pytest.raises(InputError, match=r"nan.mrc: 1 NaN or infinite pixels \(first at row 3"):
        read_micrograph(tmp_path / "nan.mrc")
    (tmp_path / "mic.xyz").write_text("hello")
    with pytest.raises(InputError, match="unknown micrograph type"):
        read_micrograph(tmp_path / "mic.xyz")
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(InputError, match=r"bad\.png: not a readable image"):
        probe_micrograph(tmp_path / "bad.png")
    with pytest.raises(InputError, match="micrograph not found"):
        probe_micrograph(tmp_path / "missing.mrc")


def test_micrographs_star_with_ctf(tmp_path):
    import pandas as pd

    from cryosift.io.star import optics_table, write_star

    rows = pd.DataFrame(
        {
            "rlnMicrographName": ["Micrographs/a.mrc", "Micrographs/b.mrc"],
            "rlnOpticsGroup": [1, 1],
            "rlnDefocusU": [15000.0, 20000.0],
            "rlnDefocusV": [14000.0, 19000.0],
            "rlnDefocusAngle": [10.0, -30.0],
        }
    )
    optics = optics_table(1.5, None, voltage=200, cs=1.4, amplitude_contrast=0.07)
    write_star({"optics": optics, "micrographs": rows}, tmp_path / "mics.star")
    table = read_micrographs_star(tmp_path / "mics.star")
    assert list(table.key) == ["a", "b"] and micrograph_key("x/y/a.mrc") == "a"
    assert table.path[0] == tmp_path / "Micrographs" / "a.mrc"
    np.testing.assert_allclose(table.angpix, 1.5)
    np.testing.assert_allclose(table.rlnVoltage, 200)
    np.testing.assert_allclose(table.rlnSphericalAberration, 1.4)
    np.testing.assert_allclose(table.rlnDefocusV, [14000, 19000])
    assert (table.rlnPhaseShift == 0).all()


_NAME_CHARS = "abcXYZ019_-. "


@given(
    st.text(alphabet=_NAME_CHARS, min_size=1, max_size=24).filter(
        lambda s: s.strip(" .") == s and s not in (".", "..")
    ),
    st.sampled_from([".mrc", ".tiff", ".png", ".JPG"]),
)
def test_any_name_finds_its_micrograph_again(base, ext):
    """Dots, spaces and several extensions in a micrograph's name (``May08_03.05.02.bin.png``)
    round-trip: the micrograph's key is its name less the extension, and the names cryosift
    and RELION give its coordinates (``KEY_autopick.star``, read back as ``KEY_autopick``) and
    its particles' micrograph (the path) resolve to that key again, never to a shorter one."""
    key = micrograph_key(f"Micrographs/{base}{ext}")
    assert key == base
    others = {key, key.split(".")[0], key + "x"}  # a shorter and a longer neighbour
    for name in (f"{base}{ext}", f"/data/{base}{ext}", f"{base}_autopick.star",
                 f"{base}_autopick", f"Coordinates/{base}_manualpick.star"):  # fmt: skip
        assert resolve_key(name, others) == key, name
