"""``python -m cryosift ARGS`` without paying for its imports each time: a process that has
imported the commands and their libraries once forks a child per command line.

Each child is a process of its own, as ``subprocess.run`` gives: its exit code, stdout and
stderr, working folder and environment are its own, it runs ``cryosift/__main__.py`` as
``python -m`` does, and it exits through the interpreter's usual shutdown. Only the imports
are shared: a command's start costs a fork instead of 6-8 s of importing torch, scikit-learn,
pandas and SciPy. Nothing is computed before the fork, so no torch or OpenMP thread pool
exists to be copied, and :func:`_serve` checks that no Python thread runs when it forks (the
native pools that importing starts, OpenBLAS's and jemalloc's, stop and restart themselves
around a fork).

Run as a script, this module is the server: it says when its imports are done, then reads
one JSON request a line on stdin, answering on the file descriptor named by its first
argument.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

#: What the server imports before it forks anything: what the commands do and the libraries
#: that takes. Not ``cryosift.cli``: its console reads the terminal and environment when it is
#: made, and each child must make its own.
PRELOAD = (
    "cryosift.picking.run",
    "cryosift.picking.adapt",
    "cryosift.pipeline.run",
    "cryosift.extract.run",
    "cryosift.outliers.clean",
    "cryosift.classify.run",
    "cryosift.simulate.micrographs",
    "sklearn.cluster",
    "sklearn.mixture",
    "sklearn.linear_model",
    "matplotlib.figure",
)


def _child(request: dict) -> None:
    """In the forked child: become ``python -m cryosift ARGS`` as ``request`` describes it.
    Ends with :class:`SystemExit` (the command's own), which unwinds to the interpreter."""
    import runpy

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                           (2, request["stderr"], os.O_WRONLY)):  # fmt: skip
        target = os.open(path, mode)
        os.dup2(target, fd)
        os.close(target)
    sys.path[0] = os.getcwd()  # as ``python -m`` has it (the server's is this folder)
    sys.argv = ["-m", *request["args"]]  # runpy puts __main__.py's path in argv[0]
    runpy.run_module("cryosift", run_name="__main__", alter_sys=True)
    sys.exit(0)


def _serve(reply_fd: int) -> None:
    """Say ``{"ready": true}`` once :data:`PRELOAD` is imported, then answer each request
    line of stdin with ``{"pid": ...}`` once its child started and ``{"returncode": ...}``
    once it ended."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    assert "cryosift.cli.common" not in sys.modules
    reply = os.fdopen(reply_fd, "w", buffering=1)
    reply.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        assert threading.active_count() == 1
        pid = os.fork()
        if pid == 0:
            reply.close()
            sys.stdin.close()
            _child(request)
        reply.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        reply.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")


class ForkedCli:
    """A client of one server process, made once the server's imports are done (at most
    ``start_timeout`` s); :meth:`run` gives what ``subprocess.run`` would."""

    def __init__(self, start_timeout: float = 300) -> None:
        self.replies, write = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(write)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            pass_fds=(write,),
            text=True,
        )
        os.close(write)
        self.pending = b""
        assert self._reply(start_timeout)["ready"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _reply(self, timeout: float) -> dict:
        """The server's next reply line, waiting at most ``timeout`` s for it."""
        import select
        import time

        end = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                raise subprocess.TimeoutExpired("cryosift (forked)", timeout)
            chunk = os.read(self.replies, 4096)
            if not chunk:
                raise RuntimeError("the forked-CLI server died")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def run(self, args: list[str], cwd: Path | None, timeout: float) -> subprocess.CompletedProcess:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            out.touch()
            err.touch()
            request = {"args": args, "cwd": str(cwd or Path.cwd()), "env": dict(os.environ),
                       "stdout": str(out), "stderr": str(err)}  # fmt: skip
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            pid = self._reply(60)["pid"]
            try:
                code = self._reply(timeout)["returncode"]
            except subprocess.TimeoutExpired:
                os.kill(pid, 9)
                self._reply(60)
                raise
            return subprocess.CompletedProcess(
                ["cryosift", *args], code, out.read_text(), err.read_text()
            )


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
