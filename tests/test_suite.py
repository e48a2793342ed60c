"""The test suite's own arrangement: the files it schedules first exist, a folder shared by
the workers is made once, and a command run by ``run_cli`` (forked from a process that
imported the commands once) behaves as one run in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import SLOW_FILES, TESTS, fresh_cli, run_cli, shared_once


def test_every_file_scheduled_first_exists():
    """A renamed or removed slow file would silently drop out of the order."""
    assert len(set(SLOW_FILES)) == len(SLOW_FILES)
    for name in SLOW_FILES:
        assert (TESTS / name).is_file(), name


def test_a_shared_folder_is_made_once_and_kept(tmp_path_factory):
    made = []

    def make(folder):
        made.append(folder)
        (folder / "result.txt").write_text("done")

    first = shared_once(tmp_path_factory, "suite_check", make)
    again = shared_once(tmp_path_factory, "suite_check", make)
    assert first == again and made == [first]
    assert (again / "result.txt").read_text() == "done"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="run_cli forks only on Linux")
def test_a_forked_command_says_and_does_what_a_fresh_interpreter_does(tmp_path, monkeypatch):
    """run_cli's forked child and ``python -m cryosift`` agree on exit code, stdout and stderr;
    the child takes the caller's working folder and environment."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("COLUMNS", "40")  # set now, after the server started: both see it
    commands = (
        ["nosuch"],
        ["pick", "gone.mrc", "--diameter-px", "20", "-o", "out"],
        ["simulate", "micrographs", "-o", "sim", "-n", "1", "--shape", "256x256"],
    )
    for args in commands:
        forked, fresh = run_cli(*args, cwd=tmp_path / "a"), fresh_cli(*args, cwd=tmp_path / "b")
        assert forked.returncode == fresh.returncode, (forked.stderr, fresh.stderr)
        assert forked.stdout.replace("/a/", "/b/") == fresh.stdout.replace("/a/", "/b/")
        assert forked.stderr.replace("/a/", "/b/") == fresh.stderr.replace("/a/", "/b/")
    assert forked.returncode == 0 and (tmp_path / "a/sim/micrographs_ctf.star").is_file()
    said = forked.stderr.splitlines()  # "wrote 1 micrographs, ... into sim": 40 columns wide
    assert len(said) > 1 and max(map(len, said)) <= 40 and "wrote 1 micrographs" in said[0]
    assert (tmp_path / "a/sim/Micrographs/mic_001.mrc").read_bytes() == (
        tmp_path / "b/sim/Micrographs/mic_001.mrc"
    ).read_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="run_cli forks only on Linux")
def test_a_forked_command_past_its_time_is_killed_and_the_server_goes_on(tmp_path):
    from forked_cli import ForkedCli

    server = ForkedCli()
    with pytest.raises(subprocess.TimeoutExpired):
        server.run(["simulate", "micrographs", "-o", "sim", "-n", "3"], tmp_path, timeout=0.05)
    res = server.run(["nosuch"], tmp_path, timeout=60)
    assert res.returncode == 2 and "No such command" in res.stderr
