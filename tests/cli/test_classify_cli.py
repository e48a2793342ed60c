"""``cryosift classify`` on the shared inputs that must simply work (its one-line errors on
the broken ones are tested with ``clean``'s in ``test_clean_cli.py``)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import starfile

from conftest import GOOD_PARTICLES, run_cli, shared_path


@pytest.mark.parametrize("name", GOOD_PARTICLES)
def test_good_inputs_classify_with_the_default_size(tmp_path, name):
    """Without --diameter-A the particle is taken to fill 60% of the box, whatever the box
    (these stacks are 32 px, smaller than the 64 px the default radius was set for)."""
    out = tmp_path / "out"
    res = run_cli("classify", shared_path("bad_inputs", name), "--classes", "2",
                  "--iterations", "2", "-o", out)  # fmt: skip
    assert res.returncode == 0, res.stderr
    classes = mrcfile.read(out / "classes.mrcs")
    assert classes.shape[0] == 2 and np.isfinite(classes).all()
    parts = starfile.read(out / "particles.star", always_dict=True)["particles"]
    assert set(parts.rlnClassNumber) <= {1, 2} and np.isfinite(parts.rlnAnglePsi).all()
