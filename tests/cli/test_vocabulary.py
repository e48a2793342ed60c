"""One vocabulary over every command: the same option name for the same thing, and the same
thing under one name (issue 34)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from cryosift.cli.main import COMMANDS, load_command

#: Options that mean one thing wherever they appear: their help text is the same everywhere.
SAME_MEANING = ("--diameter-A", "--diameter-px", "--strict", "--strict-threshold", "--device")
#: Other spellings of the particle's size than --diameter-A / --diameter-px.
OTHER_SIZE_NAMES = {
    "--radius-px",
    "--radius-A",
    "--particle-px",
    "--diameter",
    "--particle-diameter",
}


def _commands():
    for name in COMMANDS:
        cmd = load_command(name)
        subs = getattr(cmd, "commands", None)
        if subs:
            for sub, c in subs.items():
                yield f"{name} {sub}", c
        else:
            yield name, cmd


def _options(cmd) -> dict[str, object]:
    """Visible options by long name."""
    out = {}
    for p in cmd.params:
        if p.param_type_name != "option" or getattr(p, "hidden", False):
            continue
        out[next(o for o in p.opts if o.startswith("--"))] = p
    return out


COMMAND_OPTIONS = {name: _options(cmd) for name, cmd in _commands()}


def test_every_command_is_seen():
    assert {"pick", "run", "train", "extract", "classify", "clean", "evaluate picks"} <= set(
        COMMAND_OPTIONS
    )


@pytest.mark.parametrize("name", sorted(COMMAND_OPTIONS))
def test_particle_size_in_A_and_in_px_under_the_same_two_names(name):
    opts = COMMAND_OPTIONS[name]
    sized = {"--diameter-A", "--diameter-px"} & set(opts)
    assert not sized or sized == {"--diameter-A", "--diameter-px"}, f"{name}: only {sized}"
    odd = sorted(OTHER_SIZE_NAMES & set(opts))
    assert not odd, f"{name} names the particle size {odd}: use --diameter-A / --diameter-px"


def test_commands_that_need_a_particle_size_all_take_it():
    needs = {"pick", "run", "train", "extract", "classify", "clean", "evaluate picks"}
    for name in needs:
        assert "--diameter-px" in COMMAND_OPTIONS[name], name


def test_an_option_name_means_one_thing():
    helps = defaultdict(dict)
    for name, opts in COMMAND_OPTIONS.items():
        for long, p in opts.items():
            if long in SAME_MEANING:
                helps[long][name] = p.help
    assert set(helps) >= {"--diameter-A", "--diameter-px", "--strict", "--strict-threshold"}
    for long, by_command in helps.items():
        assert len(set(by_command.values())) == 1, f"{long} differs: {by_command}"


def test_short_forms_and_switches_agree():
    """``-o`` is ``--outdir`` and ``-j`` is ``--jobs`` wherever they exist; a yes/no option
    has its ``--no-`` form wherever it is a switch."""
    for name, opts in COMMAND_OPTIONS.items():
        for long, p in opts.items():
            if long == "--outdir":
                assert "-o" in p.opts, name
            if long == "--jobs":
                assert "-j" in p.opts, name
            if long == "--phase-flip":
                assert "--no-phase-flip" in p.secondary_opts, name


def test_the_size_in_px_means_the_size_in_A_at_the_pixel_size(tmp_path):
    """``--diameter-px D`` and ``--diameter-A D * angpix`` give the same answers where a
    command only uses the size: the matching radius of ``evaluate picks`` and the background
    circle of ``extract``."""
    import pandas as pd

    from conftest import run_cli
    from cryosift.cli.extract import _background_radius
    from cryosift.io.coords import write_relion

    truth = pd.DataFrame({"x": [100.0, 300.0, 500.0], "y": [100.0, 300.0, 500.0], "score": 1.0})
    picks = truth.assign(x=truth.x.to_numpy() + np.array([5.0, 15.0, 40.0]))  # 2 of 3 within 20 px
    write_relion(tmp_path / "mic_autopick.star", picks)
    write_relion(tmp_path / "mic.star", truth)
    by_px = run_cli("evaluate", "picks", tmp_path / "mic_autopick.star", tmp_path / "mic.star",
                    "--diameter-px", "40", "-o", tmp_path / "px")  # fmt: skip
    by_a = run_cli("evaluate", "picks", tmp_path / "mic_autopick.star", tmp_path / "mic.star",
                   "--diameter-A", "80", "--angpix", "2", "-o", tmp_path / "a")  # fmt: skip
    assert by_px.returncode == 0 and by_a.returncode == 0, by_px.stderr + by_a.stderr
    rows = [pd.read_csv(tmp_path / d / "pick_metrics.csv") for d in ("px", "a")]
    assert rows[0].equals(rows[1]) and rows[0].tp.tolist() == [2, 2]
    both = run_cli("evaluate", "picks", tmp_path / "mic_autopick.star", tmp_path / "mic.star",
                   "--diameter-px", "40", "--diameter-A", "80")  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr
    assert _background_radius(None, 40.0, None, 80, 40, []) == _background_radius(
        80.0, None, 2.0, 80, 40, []
    )
