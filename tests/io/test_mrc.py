"""MRC stacks: every supported mode reads back, and broken files fail with a clear message."""

import mrcfile
import numpy as np
import pytest

from conftest import assert_input_error, shared_path
from cryosift.errors import InputError
from cryosift.io.mrc import open_stack, write_stack


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.uint16, np.float16])
def test_modes_read_as_float32(tmp_path, dtype):
    data = (np.arange(3 * 6 * 5) % 100).reshape(3, 6, 5).astype(dtype)
    path = tmp_path / "s.mrcs"
    with mrcfile.new(path) as m:
        m.set_data(data)
        m.voxel_size = 1.5
    st = open_stack(path)
    assert st.n == 3 and st.shape == (6, 5) and st.angpix == pytest.approx(1.5)
    out = st.read(np.array([2, 0]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data[[2, 0]].astype(np.float32))
    st.close()


def test_write_stack_round_trip(tmp_path):
    imgs = np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32)
    write_stack(tmp_path / "a.mrcs", imgs, 2.5)
    with mrcfile.open(tmp_path / "a.mrcs") as m:
        assert m.is_image_stack()
    st = open_stack(tmp_path / "a.mrcs")
    np.testing.assert_array_equal(st.read(np.arange(4)), imgs)
    assert st.angpix == pytest.approx(2.5)


@pytest.mark.parametrize(
    "name, words",
    [
        ("truncated.mrcs", "truncated"),
        ("empty.mrcs", "empty"),
        ("not_an_mrc.mrcs", "not an MRC"),
        ("bad_mode.mrcs", "mode 5"),
        ("huge_header.mrcs", "1000000 x 1000000"),
    ],
)
def test_broken_files(name, words):
    assert_input_error(open_stack, name, words)


def test_volume_is_a_stack_of_sections():
    st = open_stack(shared_path("bad_inputs", "volume_not_stack.mrc"))
    assert st.n == 32 and st.shape == (32, 32)


def test_real_stack_without_map_id():
    st = open_stack(shared_path("particle_stacks", "empiar_10076_7.mrc"))
    assert st.n == 7 and st.shape == (320, 320)
    assert np.isfinite(st.read(np.arange(7))).all()


def test_a_garbage_header_fails_without_allocating(tmp_path):
    """A header whose extended-header size is garbage (here 1.5 GB) is refused from its
    arithmetic: nothing near that size is allocated."""
    import tracemalloc

    from mrcfile.dtypes import HEADER_DTYPE

    header = np.zeros(1, dtype=HEADER_DTYPE)
    header["mode"], header["nx"], header["ny"], header["nz"] = 2, 8, 8, 1
    header["nsymbt"] = 1_500_000_000
    path = tmp_path / "garbage.mrc"
    path.write_bytes(header.tobytes() + bytes(512))
    tracemalloc.start()
    with pytest.raises(InputError, match="truncated or corrupt header"):
        open_stack(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10_000_000


def test_big_endian_file_reads_as_written(tmp_path):
    """A big-endian MRC (machine stamp 0x11 0x11) is checked and read in its byte order."""
    images = np.random.default_rng(0).normal(size=(2, 6, 5)).astype(np.float32)
    little = tmp_path / "little.mrcs"
    write_stack(little, images, 1.5)
    with mrcfile.open(little) as mrc:
        header = mrc.header.copy()
    big_header = header.astype(header.dtype.newbyteorder(">"))
    big_header["machst"] = [0x11, 0x11, 0, 0]
    big = tmp_path / "big.mrcs"
    big.write_bytes(big_header.tobytes() + images.astype(">f4").tobytes())
    stack = open_stack(big)
    np.testing.assert_array_equal(stack.read(np.arange(2)), images)
    assert stack.angpix == pytest.approx(1.5)
    stack.close()
