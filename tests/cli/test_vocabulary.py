"""One vocabulary over every command: the same option name for the same thing, and the same
thing under one name (issue 34)."""

from __future__ import annotations

from collections import defaultdict

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
