"""The toy stack is deterministic per seed and its labels mean what they say."""

from cryosift.simulate.toy import TYPES, toy_stack, write_toy_dataset


def test_same_seed_same_files(tmp_path):
    a = write_toy_dataset(tmp_path / "a", n_inliers=10, n_per_outlier_type=5, seed=3)
    b = write_toy_dataset(tmp_path / "b", n_inliers=10, n_per_outlier_type=5, seed=3)
    c = write_toy_dataset(tmp_path / "c", n_inliers=10, n_per_outlier_type=5, seed=4)
    for name in ("particles.mrcs", "truth.csv"):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
    assert (a.parent / "particles.mrcs").read_bytes() != (c.parent / "particles.mrcs").read_bytes()


def test_labels_and_content():
    imgs, labels = toy_stack(
        n_inliers=20, n_per_outlier_type=10, d=64, radius=12, noise_sigma=0.0, seed=0
    )
    assert imgs.shape == (50, 64, 64) and set(labels) == set(TYPES)
    c = 32
    centre = imgs[:, c - 4 : c + 4, c - 4 : c + 4].mean(axis=(1, 2))
    assert (centre[labels == "inlier"] > 0.5).all()  # the particle sits at the centre
    assert (imgs[labels == "noise"] == 0).all()
    # a partial particle carries less of its mass inside the box than a centred one
    assert (
        imgs[labels == "partial"].sum(axis=(1, 2)).mean()
        < imgs[labels == "inlier"].sum(axis=(1, 2)).mean()
    )
