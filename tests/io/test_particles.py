"""Particle files of every flavour read into one convention and write back for RELION."""

import numpy as np
import pytest
import starfile

from conftest import assert_input_error, shared_path
from cryosift.io.particles import read_particles, write_particles_star


def _round_trip(tmp_path, star):
    pset = read_particles(star)
    rows = np.arange(0, len(pset), 2)
    out = tmp_path / "subset.star"
    write_particles_star(out, pset, rows)
    back = read_particles(out, datadir=star.parent)
    # same images, same metadata, same optics
    assert list(back.particles["rlnImageName"]) == list(pset.particles["rlnImageName"].iloc[rows])
    np.testing.assert_array_equal(back.read(0, len(back)), pset.read(0, len(pset))[rows])
    assert back.angpix == pytest.approx(pset.angpix)
    if pset.ctf is not None:
        np.testing.assert_allclose(back.ctf.defocus_u, pset.ctf.defocus_u[rows])
    return pset, back


def test_relion31_round_trip(tmp_path):
    star = shared_path("particle_stacks", "relion31.star")
    pset, back = _round_trip(tmp_path, star)
    assert pset.optics is not None and back.optics is not None
    assert pset.angpix == pytest.approx(2.806) and pset.box == 256
    assert pset.ctf.voltage[0] == pytest.approx(300)
    raw = starfile.read(tmp_path / "subset.star", always_dict=True)
    assert set(raw) == {"optics", "particles"}


def test_relion30_round_trip(tmp_path):
    star = shared_path("particle_stacks", "sample_relion_data.star")
    pset, back = _round_trip(tmp_path, star)
    assert pset.optics is None and back.optics is None
    # pixel size from detector pixel size and magnification: 5 um * 1e4 / 37369
    assert pset.angpix == pytest.approx(5.0 * 1e4 / 37369.207031, rel=1e-4)
    assert pset.ctf.defocus_u[0] == pytest.approx(21186.804688)


def test_cryosparc_cs_matches_star():
    cs = read_particles(shared_path("particle_stacks", "empiar_10076_7.cs"))
    star = read_particles(shared_path("particle_stacks", "empiar_10076_7.star"))
    assert cs.kind == "cs" and len(cs) == len(star) == 7
    np.testing.assert_array_equal(cs.read(0, 7), star.read(0, 7))
    np.testing.assert_allclose(cs.ctf.defocus_u, star.ctf.defocus_u, rtol=1e-5)
    assert cs.angpix == pytest.approx(1.31, abs=0.01)


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty_particles.star", "zero particles"),
        ("index_past_end.star", "past the end"),
        ("missing_stack.star", "not found"),
        ("no_image_name.star", "_rlnImageName"),
        ("garbled.star", "garbled"),
    ],
)
def test_bad_star_files(name, words):
    assert_input_error(read_particles, name, words)


def test_crlf_star_reads():
    pset = read_particles(shared_path("bad_inputs", "crlf.star"))
    assert len(pset) == 10 and pset.box == 32
