"""Errors cross process boundaries whole: a worker's InputError reaches the driver as itself."""

from __future__ import annotations

import pickle

from cryosift.errors import InputError
from cryosift.executors import run_pool


def _fail(path: str) -> None:
    raise InputError(path, "truncated: 10 of 4,194,304 bytes")


def test_input_error_pickles_with_its_file_and_problem():
    err = InputError("/data/mic 01.mrc", "NaN pixels\n(first at row 3)")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is InputError
    assert (back.path, back.problem, str(back)) == (err.path, err.problem, str(err))
    none = pickle.loads(pickle.dumps(InputError(None, "zero particles")))
    assert none.path is None and str(none) == "zero particles"


def test_a_worker_error_reaches_the_driver_as_itself():
    """In a spawned process pool (as cryosift runs micrographs), the error comes back as the
    InputError it was, not as a BrokenProcessPool or an unpickling TypeError."""
    try:
        list(run_pool(_fail, ["a.mrc", "b.mrc"], 2))
    except InputError as err:
        assert err.path in ("a.mrc", "b.mrc") and "truncated" in err.problem
    else:
        raise AssertionError("the worker's error was lost")


def test_every_exception_cryosift_defines_pickles():
    """Found by walking the package, so a new one is checked too."""
    import importlib
    import inspect
    import pkgutil

    import cryosift

    found = {}
    for info in pkgutil.walk_packages(cryosift.__path__, "cryosift."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    assert "cryosift.errors.InputError" in found and "cryosift.pipeline.run.Aborted" in found
    for name, cls in found.items():
        err = cls("mic.mrc", "broken") if cls is InputError else cls("stop requested")
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls and str(back) == str(err), name


def test_a_guarded_task_returns_its_error_as_a_value():
    from cryosift.executors import Failed, Guarded

    out = pickle.loads(pickle.dumps(Guarded(_fail)))("c.mrc")
    assert isinstance(out, Failed) and out.error.path == "c.mrc"
    gone = Guarded(open)("/nonexistent/mic.mrc")
    assert isinstance(gone, Failed) and "cannot be read" in gone.error.problem
