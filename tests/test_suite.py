"""The test suite's own arrangement: the files it schedules first exist, and a folder shared
by the workers is made once."""

from __future__ import annotations

from conftest import SLOW_FILES, TESTS, shared_once


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
