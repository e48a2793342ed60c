"""Shared fixtures: the real data beside the checkout, and a cryosift CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Under pytest-xdist the workers share the cores: each worker, and every cryosift process its
# tests start, takes its share of threads (torch's, OpenMP's, OpenBLAS's), set before numpy or
# torch is imported. Oversubscribed OpenMP threads spin and slow every worker down.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cryosift.progress import Progress  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TESTS = Path(__file__).resolve().parent

#: The slowest test files, slowest first (``pytest --durations=0``, 2 workers,
#: 2026-12-06: 176 s down to 13 s each). ``make test`` keeps this order
#: (``--no-loadscope-reorder``): each worker takes a long file while the other does, and the
#: quick files fill in at the end, so neither waits long for the other to finish.
SLOW_FILES = (
    "pipeline/test_run.py",
    "cli/test_pick_cli.py",
    "test_docs.py",
    "cli/test_clean_cli.py",
    "extract/test_extract_cli.py",
    "pipeline/test_faults.py",
    "picking/test_picker.py",
    "pipeline/test_watch.py",
    "cli/test_relion_external.py",
    "picking/test_adapt.py",
    "pipeline/test_distributed.py",
    "cli/test_relion_real.py",
    "simulate/test_particle_stacks.py",
    "picking/test_rank.py",
    "cli/test_main.py",
    "classify/test_vote.py",
    "outliers/test_radial.py",
    "classify/test_classify.py",
    "pipeline/test_names.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`SLOW_FILES` first, in its order; each file's tests, and the other
    files, keep their order."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}

    def key(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).resolve()
        name = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
        return rank.get(name, len(rank))

    items.sort(key=key)


def shared_once(tmp_path_factory, name: str, make) -> Path:
    """The folder ``name`` that ``make(folder)`` fills, made once per test session: under
    pytest-xdist the workers share one (a file lock lets the first make it and the others
    wait), so a session fixture that runs a whole command does not run it in every worker."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    out, done = root / f"shared_{name}", root / f"shared_{name}.done"
    with FileLock(str(root / f"shared_{name}.lock")):
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            make(out)
            done.touch()
    return out


#: Broken particle inputs of ``shared/data/bad_inputs`` and words their one-line error holds.
BAD_PARTICLES = [
    ("truncated.mrcs", "truncated"),
    ("empty.mrcs", "empty"),
    ("not_an_mrc.mrcs", "not an MRC"),
    ("bad_mode.mrcs", "mode 5"),
    ("huge_header.mrcs", "header"),
    ("nan_images.mrcs", "NaN"),
    ("empty_particles.star", "zero particles"),
    ("index_past_end.star", "past the end"),
    ("missing_stack.star", "not found"),
    ("no_image_name.star", "_rlnImageName"),
    ("garbled.star", "garbled"),
]
#: Particle inputs of ``shared/data/bad_inputs`` that must simply work.
GOOD_PARTICLES = [
    "good.mrcs",
    "ok.star",
    "crlf.star",
    "constant_images.mrcs",
    "volume_not_stack.mrc",
]
#: Broken files from ``bad_inputs/`` that no command may take as a micrograph, and the words
#: their one-line error must contain.
BAD_MICROGRAPHS = [
    ("truncated.mrcs", "truncated"),
    ("empty.mrcs", "empty"),
    ("not_an_mrc.mrcs", "not an MRC"),
    ("bad_mode.mrcs", "mode 5"),
    ("huge_header.mrcs", "truncated"),
    ("good.mrcs", "not one micrograph"),
    ("nan_images.mrcs", "not one micrograph"),
    ("volume_not_stack.mrc", "not one micrograph"),
]


def shared_path(*parts: str) -> Path:
    """A path under ``../shared/data``; skips the test with a reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} is absent (CI provides ../shared/data)")
    return p


def simulated_picking_micrographs(directory: Path, carbon: bool = False):
    """Two simulated 1024 x 1024 micrographs (SNR 3, seed 11; the built-in phantom) written as
    MRC at 2 Å/px into ``directory``: the micrographs (with their true coordinates), the
    particle diameter in px and the file paths."""
    from cryosift.io.mrc import write_stack
    from cryosift.simulate.micrographs import MicrographSimConfig, simulate_micrograph
    from cryosift.simulate.volume import diameter_px, phantom_volume

    vol = phantom_volume(64)
    cfg = MicrographSimConfig(shape=(1024, 1024), snr=3.0, carbon_edge=carbon, seed=11)
    mics = [simulate_micrograph(vol, cfg, i, f"m{i}") for i in range(2)]
    paths = [directory / f"{m.name}.mrc" for m in mics]
    for m, path in zip(mics, paths, strict=True):
        write_stack(path, m.image, 2.0)
    return mics, diameter_px(vol), paths


_FORKED: list = []


def fresh_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``cryosift ARGS`` as ``python -m cryosift`` in a fresh interpreter, capturing its
    output."""
    return subprocess.run([sys.executable, "-m", "cryosift", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)  # fmt: skip


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``cryosift ARGS`` in a process of its own, capturing its output: forked from one
    that imported the commands once (:mod:`forked_cli`, on Linux: elsewhere forking after
    importing torch is not safe), or :func:`fresh_cli` off Linux or where
    ``CRYOSIFT_TEST_FRESH=1``."""
    if os.environ.get("CRYOSIFT_TEST_FRESH") == "1" or not sys.platform.startswith("linux"):
        return fresh_cli(*args, cwd=cwd)
    from forked_cli import ForkedCli

    if not _FORKED or not _FORKED[0].alive():
        _FORKED[:] = [ForkedCli()]
    return _FORKED[0].run(list(map(str, args)), cwd, timeout=300)


def assert_input_error(call, name: str, words: str) -> None:
    """``call(path)`` on ``bad_inputs/name`` raises one :class:`InputError` line naming the
    file and containing ``words``."""
    from cryosift.errors import InputError

    with pytest.raises(InputError) as err:
        call(shared_path("bad_inputs", name))
    assert name in err.value.message and words in err.value.message
    assert "\n" not in err.value.message


def assert_cli_rejects(res: subprocess.CompletedProcess, name: str, words: str, out: Path):
    """A CLI run on a bad input: exit 2, one stderr line naming ``name`` with ``words``, no
    traceback and nothing written under ``out``."""
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and words in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists() or not any(out.iterdir())


def recorded_progress() -> tuple[dict[str, list[int]], Progress]:
    """A :data:`cryosift.progress.Progress` that records each task as ``[total, *steps]``
    under its name, and the record."""
    tasks: dict[str, list[int]] = {}

    def progress(name: str, total: int):
        tasks[name] = [total]
        return tasks[name].append

    return tasks, progress


def disc_blob(d: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """A smooth bright disc (Gaussian of sigma radius/2) at ``centre`` (row, col) in ``(d, d)``."""
    yy, xx = np.mgrid[:d, :d]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * (radius / 2) ** 2))


#: Image side and disc radius (px) of :func:`disc_stack`.
DISC_SIZE, DISC_RADIUS = 41, 8.0


def disc_stack(n_in: int, n_out: int, sigma: float = 1.2, seed: int = 0):
    """DISC_SIZE-px images: centred discs (radius R = DISC_RADIUS) plus equal numbers of
    noise, partial (centre 1-3 px inside an edge) and two-disc images (each disc 1.0-1.3 R
    from the centre), with white noise of ``sigma``; returns images ``(B, 41, 41)`` float32
    and the truth labels."""
    N, R = DISC_SIZE, DISC_RADIUS
    rng = np.random.default_rng(seed)
    c = N // 2
    images, truth = [], []
    for _ in range(n_in):
        dy, dx = rng.normal(0, 1, 2)
        images.append(disc_blob(N, (c + dy, c + dx), R))
        truth.append("inlier")
    for i in range(n_out):
        kind = ("noise", "partial", "multiple")[i % 3]
        if kind == "noise":
            img = np.zeros((N, N))
        elif kind == "partial":
            edge = rng.uniform(1, 3)
            img = disc_blob(N, (c + rng.uniform(-8, 8), edge), R)
            img = np.rot90(img, rng.integers(4))
        else:
            a = rng.uniform(0, 2 * np.pi)
            off = rng.uniform(1.0, 1.3) * R * np.array([np.sin(a), np.cos(a)])
            img = (disc_blob(N, (c + off[0], c + off[1]), R)
                   + disc_blob(N, (c - off[0], c - off[1]), R))  # fmt: skip
        images.append(img)
        truth.append(kind)
    images = np.array(images) + rng.normal(scale=sigma, size=(len(images), N, N))
    return images.astype(np.float32), np.array(truth)


# --------------------------------------------------------------------------- cryosift run

#: The particle of phantom_volume(64) at 2 Å/px: about 88 Å across.
DIAMETER_A = "88"


@pytest.fixture(scope="session")
def run_sim(tmp_path_factory) -> Path:
    """Five 512x512 micrographs with known particles, contamination and carbon edges."""
    from cryosift.simulate.micrographs import MicrographSimConfig, write_simulated_micrographs
    from cryosift.simulate.volume import phantom_volume

    cfg = MicrographSimConfig(n_micrographs=5, shape=(512, 512), particles=20, pairs=2, seed=3)

    def make(out: Path) -> None:
        write_simulated_micrographs(phantom_volume(64), cfg, out)

    return shared_once(tmp_path_factory, "run_sim", make)


def run_args(sim: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        sim / "micrographs_ctf.star",
        "--diameter-A",
        DIAMETER_A,
        "--truth",
        sim / "Coordinates",
        "-o",
        out,
        *extra,
    ]


@pytest.fixture(scope="session")
def reference_run(run_sim, tmp_path_factory) -> Path:
    """``cryosift run --truth`` on :func:`run_sim` in this process's way: one job, serial.
    Made once for all workers (:func:`shared_once`): tests read it, and copy it to change it."""

    def make(folder: Path) -> None:
        res = run_cli(*run_args(run_sim, folder / "run", "--jobs", "1"))
        assert res.returncode == 0, res.stderr

    return shared_once(tmp_path_factory, "reference", make) / "run"


#: Files whose content must not depend on where or how the work ran.
DETERMINISTIC = ("particles.star", "autopick.star", "inliers.star", "outliers.star", "scores.csv")


def assert_same_outputs(a: Path, b: Path) -> None:
    """Two runs wrote the same picks, particles and verdicts (images compared as arrays)."""
    import mrcfile

    def text(run: Path, name: str) -> str:  # names in STAR files hold the run's own folder
        return (run / name).read_text().replace(f"{run}/", "RUN/")

    for name in DETERMINISTIC:
        assert text(a, name) == text(b, name), name
    coords = sorted(p.name for p in (a / "Coordinates").iterdir())
    assert coords == sorted(p.name for p in (b / "Coordinates").iterdir())
    for name in coords:
        assert (a / "Coordinates" / name).read_text() == (b / "Coordinates" / name).read_text()
    stacks = sorted(p.name for p in (a / "Particles").glob("*.mrcs"))
    assert stacks == sorted(p.name for p in (b / "Particles").glob("*.mrcs"))
    for name in stacks:
        with mrcfile.open(a / "Particles" / name) as x, mrcfile.open(b / "Particles" / name) as y:
            np.testing.assert_array_equal(x.data, y.data)


def relion_project(sim: Path, root: Path, version: int) -> Path:
    """A RELION project folder ``root/project``: :func:`run_sim`'s micrographs under
    MotionCorr/job002, a CtfFind/job003 STAR naming them relative to the project folder, with
    RELION ``version``'s header line (3 and 4: 30001, 5: 50001)."""
    project = root / "project"
    shutil.copytree(sim / "Micrographs", project / "MotionCorr/job002/Micrographs")
    text = (sim / "micrographs_ctf.star").read_text()
    body = text.split("\n", 1)[1].replace("Micrographs/", "MotionCorr/job002/Micrographs/")
    star = project / "CtfFind/job003/micrographs_ctf.star"
    star.parent.mkdir(parents=True)
    star.write_text(f"\n# version {50001 if version == 5 else 30001}\n{body}")
    return project


# --------------------------------------------------------------------------- fault corpus

#: The broken micrographs of :func:`fault_corpus` and words of the line naming each one.
FAULTS = {
    "zeros.mrc": "every pixel is 0",
    "constant.mrc": "every pixel is 7",
    "nan_patch.mrc": "NaN",
    "truncated.mrc": "truncated",
    "tiny.mrc": "smaller than a box",
    "movie.mrc": "holds 3 images",
    "other_pixel_size.mrc": "pixel size 3.1",
}


def fault_corpus(good: list[Path], directory: Path) -> list[Path]:
    """The micrographs ``good`` (simulated MRCs of one pixel size) copied into
    ``directory`` with the last saved as an 8-bit PNG instead (usable: a PNG among MRCs), a
    smooth ramp with nothing to pick (``ramp.mrc``: usable, zero picks) and one broken
    micrograph of each kind in :data:`FAULTS` made from the first. Returns every path, in
    name order."""
    import warnings

    import mrcfile
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    with mrcfile.open(good[0]) as m:
        image, angpix = m.data.astype(np.float32), float(m.voxel_size.x)
    for g in good[:-1]:
        shutil.copy(g, directory / g.name)
    with mrcfile.open(good[-1]) as m:
        last = m.data.astype(np.float64)
    grey = np.clip((last - last.mean()) / (6 * last.std()) + 0.5, 0, 1) * 255
    Image.fromarray(grey.astype(np.uint8)).save(directory / f"{good[-1].stem}.png")

    def mrc(name: str, data: np.ndarray, size: float = angpix) -> Path:
        path = directory / name
        with warnings.catch_warnings(), mrcfile.new(path, overwrite=True) as m:
            warnings.simplefilter("ignore", RuntimeWarning)  # the NaN patch is meant
            m.set_data(np.asarray(data, np.float32))
            m.voxel_size = size
        return path

    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    mrc("ramp.mrc", (rows + cols) / 100.0)
    mrc("zeros.mrc", np.zeros_like(image))
    mrc("constant.mrc", np.full_like(image, 7.0))
    patch = image.copy()
    patch[100:140, 200:260] = np.nan
    mrc("nan_patch.mrc", patch)
    whole = mrc("truncated.mrc", image).read_bytes()
    (directory / "truncated.mrc").write_bytes(whole[: len(whole) // 2])
    mrc("tiny.mrc", image[:60, :60])
    mrc("movie.mrc", np.stack([image] * 3))
    mrc("other_pixel_size.mrc", image, size=3.1)
    return sorted(directory.iterdir())
