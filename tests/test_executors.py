"""How many processes per-micrograph work gets (:mod:`cryosift.executors`)."""

from __future__ import annotations

import pytest

from cryosift import executors


@pytest.mark.parametrize(("cores", "default"), [(1, 1), (2, 2), (16, 4)])
def test_default_is_a_process_per_core_at_most_four(monkeypatch, cores, default):
    monkeypatch.setattr(executors.os, "cpu_count", lambda: cores)
    assert executors.default_jobs() == default


def test_a_pool_only_where_workers_have_more_than_one_micrograph_to_pick(monkeypatch):
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 2)
    # left at the default: this process, until more micrographs must be picked than cores
    assert [executors.jobs_for(heavy, None) for heavy in range(5)] == [1, 1, 1, 2, 2]
    # what the user chose is what runs, whatever is left to pick
    assert executors.jobs_for(0, 3) == 3 and executors.jobs_for(100, 1) == 1


def test_serial_and_pooled_tasks_give_the_same_results():
    tasks = list(range(6))
    serial = dict(executors.run_tasks(abs, [-t for t in tasks], executors.jobs_for(6, 1)))
    pooled = dict(executors.run_tasks(abs, [-t for t in tasks], executors.jobs_for(6, 2)))
    assert serial == pooled == {i: i for i in tasks}
