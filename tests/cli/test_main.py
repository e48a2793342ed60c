"""The ``cryosift`` entry point: help at once, without the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import run_cli
from cryosift.cli.main import COMMANDS

HEAVY = ("torch", "scipy", "sklearn", "pandas", "matplotlib", "dask", "mrcfile")


def test_root_help_imports_no_heavy_module():
    """``cryosift --help`` lists every command from its short text, importing none of the
    commands' modules and none of the numerical libraries."""
    code = (
        "import sys\n"
        "from cryosift.cli.main import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}"
        " or m.startswith('cryosift.cli.') and m != 'cryosift.cli.main'))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "LOADED []" in res.stdout
    for name in COMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name):
    res = run_cli(name, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout and f"cryosift {name}" in res.stdout


def test_unknown_command_fails():
    res = run_cli("nosuch")
    assert res.returncode == 2 and "No such command" in res.stderr
