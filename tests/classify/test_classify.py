"""Reference-free 2D classification on constructed stacks: the geometry conventions, two
shapes separated whatever their rotation, deterministic per seed, RELION's files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cryosift.classify.align import (
    Aligner,
    ClassifySettings,
    classify,
    classify_steps,
    rotate_shift,
)

N = 64


def _blobs(spots, n=N) -> np.ndarray:
    """``(n, n)`` sum of Gaussians ``(x, y, sigma, amplitude)`` about the centre."""
    yy, xx = np.indices((n, n)) - n // 2
    return sum(a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s)) for x, y, s, a in spots)


SHAPES = {
    "dumbbell": _blobs([(-9, 0, 5, 1.0), (10, 0, 3, 0.7)]),
    "ell": _blobs([(0, 0, 4, 1.0), (0, -11, 3, 0.8), (9, 8, 3, 0.8)]),
}


def _stack(n_each: int = 150, sigma: float = 0.6, seed: int = 0):
    """Both shapes turned by uniform random angles and moved by up to 3 px, with white noise
    of ``sigma`` (the shapes peak at 1)."""
    rng = np.random.default_rng(seed)
    images, truth = [], []
    for name, shape in SHAPES.items():
        ref = torch.as_tensor(np.repeat(shape[None], n_each, 0), dtype=torch.float32)
        psi = torch.as_tensor(rng.uniform(0, 2 * np.pi, n_each), dtype=torch.float32)
        shift = torch.as_tensor(rng.uniform(-3, 3, (n_each, 2)), dtype=torch.float32)
        images.append(rotate_shift(ref, psi, shift).numpy())
        truth += [name] * n_each
    images = np.concatenate(images) + rng.normal(0, sigma, (2 * n_each, N, N))
    return images.astype(np.float32), np.array(truth)


def _best_correlation(average: np.ndarray, shape: np.ndarray) -> float:
    """Best correlation of ``average`` with ``shape`` turned in 2-degree steps and moved up to
    4 px (the class average's own frame is arbitrary)."""
    a = torch.as_tensor(average, dtype=torch.float32)[None]
    ref = torch.as_tensor(shape, dtype=torch.float32)[None]
    best = -1.0
    for deg in range(0, 360, 2):
        turned = rotate_shift(ref, torch.tensor([np.radians(deg)]), torch.zeros(1, 2))[0]
        for dx in range(-4, 5):
            for dy in range(-4, 5):
                moved = torch.roll(turned, (dy, dx), dims=(0, 1))
                best = max(best, float(np.corrcoef(moved.ravel(), a.ravel())[0, 1]))
    return best


def test_rotation_convention_is_counter_clockwise_as_displayed():
    img = torch.as_tensor(SHAPES["ell"], dtype=torch.float32)[None]
    turned = rotate_shift(img, torch.tensor([np.pi / 2]), torch.zeros(1, 2))[0].numpy()
    # about pixel n // 2: the odd-sized crop [1:, 1:] has it at its centre
    np.testing.assert_allclose(turned[1:, 1:], np.rot90(SHAPES["ell"][1:, 1:], 1), atol=1e-4)
    moved = rotate_shift(img, torch.zeros(1), torch.tensor([[3.0, -2.0]]))[0].numpy()
    np.testing.assert_allclose(
        moved[10:54, 10:54], np.roll(SHAPES["ell"], (-2, 3), (0, 1))[10:54, 10:54], atol=1e-4
    )


@pytest.mark.parametrize("deg", [0, 35, 200])
def test_polar_correlation_finds_the_rotation(deg):
    settings = ClassifySettings(classes=1, angles=72, radius=18)
    aligner = Aligner(N, settings, torch.device("cpu"))
    ref = torch.as_tensor(SHAPES["ell"], dtype=torch.float32)[None]
    img = rotate_shift(ref, torch.tensor([np.radians(deg)]), torch.zeros(1, 2))
    spec, _ = aligner.reference_spectra(ref)
    _, rot, _ = aligner.best(aligner.spectra(img), spec[:1])
    assert int(rot[0]) * 5 == deg % 360


def test_best_in_chunks_equals_all_correlations_at_once(monkeypatch):
    """The chunked search gives exactly the row, rotation and score of the plain one: every
    (image, reference row, rotation) correlation made at once and its maximum taken."""
    import cryosift.classify.align as align

    settings = ClassifySettings(classes=3, angles=36, radius=10)
    aligner = Aligner(32, settings, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(50, 32, 32, generator=gen)
    refs, _ = aligner.reference_spectra(torch.randn(3, 32, 32, generator=gen))
    spec = aligner.spectra(images)
    corr = torch.fft.irfft(torch.einsum("brf,jrf->bjf", spec, refs.conj()), n=36, dim=-1)
    per_row, rot = corr.max(dim=-1)
    score, row = per_row.max(dim=1)
    monkeypatch.setattr(align, "CORR_FLOATS", 7 * len(refs) * 36)  # chunks of 8 images
    got_row, got_rot, got_score = aligner.best(spec, refs)
    assert align.corr_rows(len(refs), 36) == 8 < len(images)
    torch.testing.assert_close(got_row, row, rtol=0, atol=0)
    torch.testing.assert_close(got_rot, rot.gather(1, row[:, None])[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(got_score, score, rtol=1e-6, atol=1e-6)


def test_two_shapes_in_any_rotation_are_separated_and_averaged():
    images, truth = _stack()
    settings = ClassifySettings(classes=2, iterations=5, radius=18, seed=1)
    res = classify(images, settings)
    for name, shape in SHAPES.items():
        labels = res.labels[truth == name]
        major = np.bincount(labels, minlength=2).argmax()
        assert (labels == major).mean() >= 0.95, name
        assert _best_correlation(res.averages[major], shape) > 0.9, name
    assert sorted(res.counts.tolist()) == sorted(np.bincount(res.labels, minlength=2).tolist())
    steps: list[int] = []
    again = classify(images, settings, on_progress=steps.append)
    np.testing.assert_array_equal(again.labels, res.labels)
    np.testing.assert_array_equal(again.psi, res.psi)
    assert len(steps) == sum(steps) == classify_steps(settings) == 6  # 5 iterations, the last


def test_classify_command_writes_what_relion_reads(tmp_path):
    """``cryosift classify`` on a stack of the two shapes: classes.mrcs, model.star and
    particles.star read back by mrcfile and starfile (and by relion_image_handler when
    installed), largest class first, every particle with a class, angle and origin."""
    import shutil
    import subprocess

    import mrcfile
    import starfile

    from conftest import run_cli
    from cryosift.io.mrc import write_stack

    images, _ = _stack(60, seed=3)
    write_stack(tmp_path / "parts.mrcs", images, 2.0)
    res = run_cli("classify", "parts.mrcs", "-o", "out", "--classes", "2", "--diameter-A", "72",
                  "--iterations", "3", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    classes = mrcfile.read(tmp_path / "out" / "classes.mrcs")
    assert classes.shape == (2, N, N) and np.isfinite(classes).all()
    model = starfile.read(tmp_path / "out" / "model.star")
    assert list(model.rlnReferenceImage) == ["000001@out/classes.mrcs", "000002@out/classes.mrcs"]
    assert (
        model.rlnClassDistribution.sum() == pytest.approx(1)
        and model.rlnClassDistribution.is_monotonic_decreasing
    )
    blocks = starfile.read(tmp_path / "out" / "particles.star", always_dict=True)
    parts = blocks["particles"]
    assert len(parts) == 120 and set(parts.rlnClassNumber) <= {1, 2}
    # a bare stack gets an optics group: RELION 3.1+ reads origins in Å only with one
    assert blocks["optics"].rlnImagePixelSize.iloc[0] == 2.0 and (parts.rlnOpticsGroup == 1).all()
    for col in ("rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst"):
        assert parts[col].between(-360, 360).all()
    assert (tmp_path / "out" / "classes.png").read_bytes()[:4] == b"\x89PNG"
    if shutil.which("relion_image_handler"):
        stats = subprocess.run(["relion_image_handler", "--i", "out/classes.mrcs", "--stats"],
                               cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
        assert stats.returncode == 0 and stats.stdout.count("avg=") == 2, stats.stderr


def _aligned_class_means(folder, star: str, labels: np.ndarray) -> np.ndarray:
    """RELION's ``relion_stack_create --apply_transformation`` on ``star`` (in ``folder``):
    the images turned and moved by their ``_rlnAnglePsi`` and origins, averaged per class
    ``labels`` (1-based): ``(K, n, n)``."""
    import subprocess

    import mrcfile

    cmd = ["relion_stack_create", "--i", star, "--o", "aligned", "--apply_transformation"]
    res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    aligned = mrcfile.read(folder / "aligned.mrcs")
    return np.stack([aligned[labels == k].mean(0) for k in range(1, labels.max() + 1)])


@pytest.mark.skipif(
    __import__("shutil").which("relion_stack_create") is None, reason="RELION is not installed"
)
def test_relion_applies_our_angles_and_origins_to_our_class_averages(tmp_path):
    """RELION turns and moves each particle by the ``_rlnAnglePsi`` and
    ``_rlnOriginX/YAngst`` that ``cryosift classify`` wrote: the particles so aligned average,
    per class, to cryosift's own class averages (correlation > 0.9); with the angles' or the
    origins' sign flipped they match less (RELION's convention, not only a consistent one)."""
    import mrcfile
    import starfile

    from conftest import run_cli
    from cryosift.io.mrc import write_stack

    images, _ = _stack(60, sigma=0.4, seed=5)
    write_stack(tmp_path / "parts.mrcs", images, 2.0)
    res = run_cli("classify", "parts.mrcs", "-o", "out", "--classes", "2", "--diameter-A", "72",
                  "--iterations", "4", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    classes = mrcfile.read(tmp_path / "out" / "classes.mrcs")
    blocks = starfile.read(tmp_path / "out" / "particles.star", always_dict=True)
    labels = blocks["particles"].rlnClassNumber.to_numpy()

    def match(flip: tuple[str, ...]) -> float:
        """The worse class's correlation with the named columns' signs flipped."""
        parts = blocks["particles"].copy()
        for col in flip:
            parts[col] *= -1
        starfile.write({**blocks, "particles": parts}, tmp_path / "t.star", overwrite=True)
        means = _aligned_class_means(tmp_path, "t.star", labels)
        return min(float(np.corrcoef(means[k].ravel(), classes[k].ravel())[0, 1]) for k in (0, 1))

    ours = match(())
    assert ours > 0.9
    assert match(("rlnAnglePsi",)) < ours - 0.1
    assert match(("rlnOriginXAngst", "rlnOriginYAngst")) < ours - 0.05


def test_relion_30_input_keeps_origins_in_px(tmp_path):
    """A RELION 3.0 particles STAR (no optics block, no origins in Å) gets its origins in px
    of its own images (``_rlnOriginX/Y``), in its own data block, and no optics block."""
    import starfile

    from conftest import run_cli
    from cryosift.io.mrc import write_stack

    images, _ = _stack(30, seed=7)
    write_stack(tmp_path / "parts.mrcs", images, 2.0)
    table = "".join(f"{i:06d}@parts.mrcs 2.0\n" for i in range(1, len(images) + 1))
    (tmp_path / "parts.star").write_text(
        "data_\nloop_\n_rlnImageName #1\n_rlnDetectorPixelSize #2\n" + table
    )
    res = run_cli("classify", "parts.star", "-o", "out", "--classes", "2", "--angpix", "2",
                  "--diameter-A", "72", "--iterations", "2", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    blocks = starfile.read(tmp_path / "out" / "particles.star", always_dict=True)
    assert "optics" not in blocks
    parts = next(iter(blocks.values()))
    assert {"rlnOriginX", "rlnOriginY"} <= set(parts) and "rlnOriginXAngst" not in parts
    assert parts.rlnOriginX.abs().max() <= 8 and parts.rlnOriginX.abs().max() > 0


def test_particles_beyond_the_sample_join_its_classes_turned_into_its_frame(tmp_path, monkeypatch):
    """``cryosift classify`` beyond its limit classifies an evenly spaced sample and lets the
    others join (each step shown): they land in their shape's class, and their angles and
    origins turn them into its average's frame as well as the sample's own do."""
    from conftest import recorded_progress
    from cryosift.classify import run
    from cryosift.io.mrc import write_stack

    images, truth = _stack(150, seed=4)
    write_stack(tmp_path / "parts.mrcs", images, 2.0)
    monkeypatch.setattr(run, "MAX_CLASSIFIED", 100)
    settings = ClassifySettings(classes=2, iterations=5, radius=18, seed=1)
    tasks, progress = recorded_progress()
    res, _, facts = run.classify_file(
        tmp_path / "parts.mrcs", tmp_path / "out", settings, progress=progress
    )
    assert facts["classified"] == 100 and facts["particles"] == len(images) == len(res.labels)
    for name, total in (("classifying", classify_steps(settings)), ("joining the classes", 1)):
        assert tasks[name][0] == sum(tasks[name][1:]) == total, name
    for name in SHAPES:
        labels = res.labels[truth == name]
        assert (labels == np.bincount(labels).argmax()).mean() >= 0.95, name

    def fit(result) -> np.ndarray:  # each image, turned back, against its class average
        back = run.aligned(images, result, np.arange(len(images)))
        pairs = zip(back, result.averages[result.labels], strict=True)
        return np.array([np.corrcoef(b.ravel(), a.ravel())[0, 1] for b, a in pairs])

    joined = ~np.isin(np.arange(len(images)), run.sample_rows(len(images), 100))
    rng = np.random.default_rng(0)
    wrong = dataclasses.replace(res, psi=rng.uniform(0, 360, len(images)))
    # the sample's own images are a part of their averages, so fit them a little better
    assert fit(res)[joined].mean() >= fit(res)[~joined].mean() - 0.05
    assert fit(res)[joined].mean() >= fit(wrong)[joined].mean() + 0.1
