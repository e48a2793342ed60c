"""The ``cryosift`` entry point: help at once, without the heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli, shared_path
from cryosift.cli.main import COMMANDS

HEAVY = ("torch", "scipy", "sklearn", "pandas", "matplotlib", "dask", "mrcfile", "numpy")
#: The commands that group subcommands: ``cryosift simulate micrographs --help`` and so on.
SUBCOMMANDS = {"simulate": ("particles", "micrographs"), "evaluate": ("picks",)}


def _loaded_by(args: list[str], prefixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """Run ``cryosift ARGS`` in a fresh interpreter: its output and the modules it loaded
    whose top-level name is in ``prefixes``, or that are command modules of cryosift.cli."""
    code = (
        "import sys\n"
        "from cryosift.cli.main import app\n"
        "try:\n"
        f"    app({args!r}, prog_name='cryosift')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r}"
        " or m.startswith('cryosift.cli.') and m != 'cryosift.cli.main'))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out, loaded = res.stdout.rsplit("LOADED ", 1)
    return out, ast.literal_eval(loaded)


def test_root_help_imports_no_heavy_module():
    """``cryosift --help`` lists every command from its short text, importing none of the
    commands' modules and none of the numerical libraries."""
    out, loaded = _loaded_by(["--help"], HEAVY)
    assert loaded == []
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_without_numerics(name):
    """Each command's own ``--help`` (and each subcommand's) answers in about half a second:
    torch, pandas, scipy and their kin (0.3-1.9 s each to import) load only when it runs."""
    for args in [[name], *([name, sub] for sub in SUBCOMMANDS.get(name, ()))]:
        out, loaded = _loaded_by([*args, "--help"], HEAVY)
        assert "Usage:" in out and f"cryosift {' '.join(args)}" in out
        assert not [m for m in loaded if m.split(".")[0] in HEAVY], (args, loaded)


@pytest.mark.parametrize("command", ["pick", "run", "train"])
def test_a_broken_micrograph_is_refused_before_torch_loads(command, tmp_path):
    """The micrographs are checked before the picker is loaded: a user's typo or broken
    file is answered in about a second, not after torch's import; so is a bad --jobs."""
    bad = shared_path("bad_inputs", "truncated.mrcs")
    args = [command, str(bad), "--diameter-px", "20", "-o", str(tmp_path / "out")]
    calls = [args] if command == "train" else [args, [*args, "--jobs", "0"]]
    for call in calls:
        _, loaded = _loaded_by(call, ("torch",))
        assert not [m for m in loaded if m.split(".")[0] == "torch"], (call, loaded)
    assert not (tmp_path / "out").exists()


def test_unknown_command_fails():
    res = run_cli("nosuch")
    assert res.returncode == 2 and "No such command" in res.stderr


PICKING = ["{mic}", "--diameter-px", "20"]
BAD_OPTIONS = [
    (["pick", *PICKING, "--threshold", "1.5"], "--threshold"),
    (["pick", *PICKING, "--area-fraction", "1"], "--area-fraction"),
    (["pick", *PICKING, "--threshold", "0.5", "--area-fraction", "0.2"], "not both"),
    (["run", *PICKING, "--threshold", "0.5", "--area-fraction", "0.2"], "not both"),
    (["run", *PICKING, "--jobs", "0"], "--jobs"),
    (["run", *PICKING, "--rules", "strict"], "--rules must be one of radial, paper"),
    (["clean", "{mic}", "--rules", "strict"], "--rules must be one of radial, paper"),
    (["clean", "{mic}", "--polarity", "up"], "--polarity must be one of auto"),
    (["extract", "{mic}", "{mic}", "--box-px", "40", "--format", "eman9"], "(got 'eman9')"),
    (["train", *PICKING, "--epochs", "0"], "need epochs >= 1"),
]


@pytest.mark.parametrize(("args", "words"), BAD_OPTIONS)
def test_bad_option_values_end_in_one_line(tmp_path, args, words):
    """An option value a command checks itself ends like a bad file: exit code 2, one line
    naming the command and the option, nothing written (``pick`` and ``run`` share their
    picking checks, so ``run`` also refuses a threshold together with an area fraction)."""
    from PIL import Image

    mic = tmp_path / "mic.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(mic)
    out = tmp_path / "out"
    res = run_cli(*(str(mic) if a == "{mic}" else a for a in args), "-o", out)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and lines[0].startswith(f"cryosift {args[0]}: error:"), res.stderr
    assert words in lines[0]
    assert not out.exists()
