"""The masked autoencoder: shapes, position embedding, masking loss, training and stitching."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from cryosift.picking.embed import embed_micrograph
from cryosift.picking.mae import MaeConfig, MaskedAutoencoder, attention, patchify, sincos_2d
from cryosift.picking.model import PickerModel, load_model, save_model
from cryosift.picking.train import TrainSettings, learning_rate, train

TINY = MaeConfig(tile=32, patch=4, width=32, depth=2, heads=2, decoder_width=32, decoder_depth=1)


@pytest.fixture
def windowed() -> MaskedAutoencoder:
    """An untrained MAE with the default 64-px windows (12 x 12 kept tokens with margin 8)."""
    torch.manual_seed(0)
    return MaskedAutoencoder(dataclasses.replace(TINY, tile=64)).eval()


def test_patchify_orders_rows_then_columns():
    tiles = torch.arange(64.0).reshape(1, 1, 8, 8)
    tok = patchify(tiles, 4)
    assert tok.shape == (1, 4, 16)
    assert tok[0, 1, 0] == 4.0  # second token starts at column 4 of row 0
    assert tok[0, 2, 0] == 32.0  # third token starts at row 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_equals_torch_fused_kernel(dtype):
    """The written-out bfloat16 form equals torch's fused attention in float32 to bf16
    precision; rows of the attention weights sum to one (a uniform value gives itself)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 64, 32, generator=g) for _ in range(3))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    got = attention(q.to(dtype), k.to(dtype), v.to(dtype)).float()
    tol = 1e-5 if dtype == torch.float32 else 0.03
    assert (got - want).abs().max() < tol * want.abs().max()
    ones = attention(q.to(dtype), k.to(dtype), torch.ones_like(v, dtype=dtype)).float()
    assert torch.allclose(ones, torch.ones_like(ones), atol=1e-2)


def test_sincos_distinct_positions_and_shape():
    pos = sincos_2d(5, 7, 32)
    assert pos.shape == (35, 32)
    d = torch.cdist(pos, pos)
    assert (d + torch.eye(35) * 10).min() > 0.1  # every position different


def test_loss_only_on_hidden_tokens():
    torch.manual_seed(0)
    m = MaskedAutoencoder(TINY)
    x = torch.randn(4, 1, 32, 32)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert float(m(x, g1).detach()) == float(
        m(x, g2).detach()
    )  # the mask follows the generator's seed
    with pytest.raises(ValueError):
        sincos_2d(4, 4, 30)


def test_embed_any_tile_size():
    m = MaskedAutoencoder(TINY).eval()
    e = m.embed(torch.randn(2, 1, 48, 64))
    assert e.shape == (2, 12, 16, TINY.width)


def test_warmup_then_cosine():
    s = TrainSettings(epochs=10, warmup=2, batch=256, lr=1e-3)
    lrs = [learning_rate(i, 10, s) for i in range(100)]
    assert lrs[0] < lrs[19] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs[20:]))
    assert lrs[-1] < 1e-5


def _smooth_images(n: int, seed: int) -> list[np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = ndimage.gaussian_filter(rng.normal(size=(128, 128)), 2)
        out.append(((im - im.mean()) / im.std()).astype(np.float32))
    return out


def test_training_lowers_the_loss_resumes_and_is_deterministic(tmp_path):
    images = _smooth_images(3, 0)
    s = TrainSettings(epochs=4, warmup=1, batch=16, lr=4e-3, seed=3)
    a = train(images, TINY, s, tmp_path / "a")
    hist = a.info["loss_history"]
    assert hist[-1] < 0.9 * hist[0]
    assert a.centroids.shape == (4, TINY.width)
    b = train(images, TINY, s, tmp_path / "b")
    assert b.info["loss_history"] == hist  # same seed, same run
    # an interrupted run (state after 2 of 4 epochs) resumes to the same result
    short = TrainSettings(epochs=2, warmup=1, batch=16, lr=4e-3, seed=3)
    c_dir = tmp_path / "c"
    train(images, TINY, short, c_dir)
    state = torch.load(c_dir / "train_state.pt", weights_only=False)
    state["key"]["settings"] = s.__dict__  # pretend it was the 4-epoch run, stopped at 2
    torch.save(state, c_dir / "train_state.pt")
    steps = []
    c = train(images, TINY, s, c_dir, on_step=lambda: steps.append(1))
    assert len(steps) == 2 * (3 * 128 * 128 // 32**2 // 16)  # only epochs 3 and 4 ran
    assert len(c.info["loss_history"]) == 4


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = MaskedAutoencoder(TINY).eval()
    model = PickerModel(m, 0.5, 2.0, np.ones((4, TINY.width), np.float32))
    save_model(model, tmp_path)
    back = load_model(tmp_path)
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(back.mae.embed(x), m.embed(x))
    assert back.mean == 0.5 and back.std == 2.0


def test_stitched_embeddings_have_no_seams(windowed):
    m = windowed
    rng = np.random.default_rng(0)
    image = rng.normal(size=(200, 260)).astype(np.float32)
    emb = embed_micrograph(m, image, margin=8)
    assert emb.shape == (50, 65, 32)
    # neighbouring token differences across window seams (every 12 tokens) look like the rest
    diff = np.linalg.norm(np.diff(emb, axis=1), axis=-1)  # between columns j and j + 1
    seam = np.zeros(diff.shape[1], bool)
    seam[11::12] = True
    ratio = diff[:, seam].mean() / diff[:, ~seam].mean()
    assert 0.85 < ratio < 1.15
    # and a token's embedding hardly depends on which window computed it
    shifted = embed_micrograph(m, image[4:, 4:], margin=8)  # windows move by one token
    a, b = emb[1 + 10 : 40, 1 + 10 : 50], shifted[10:39, 10:49]
    # (re-tiling moves an embedding less than moving to the next token does)
    assert np.median(np.linalg.norm(a - b, axis=-1)) < 0.5 * np.median(diff)


def test_centring_removes_the_position_in_window_pattern(windowed):
    m = windowed
    rng = np.random.default_rng(1)
    image = rng.normal(size=(200, 260)).astype(np.float32)  # 5 x 6 windows of 12 x 12 tokens
    raw = embed_micrograph(m, image, margin=8, centre=False)
    centred = embed_micrograph(m, image, margin=8)
    # what centring removes depends only on where a token sat in its window
    removed = raw - centred
    np.testing.assert_allclose(removed[:-12], removed[12:], atol=1e-5)
    np.testing.assert_allclose(removed[:, :-12], removed[:, 12:], atol=1e-5)
    # a featureless image leaves nothing but that pattern: centred, it is (almost) all zero
    flat = np.zeros((200, 260), np.float32)
    raw_flat = embed_micrograph(m, flat, margin=8, centre=False)
    centred_flat = embed_micrograph(m, flat, margin=8)
    assert raw_flat.reshape(-1, 32).std(0).mean() > 0.1
    assert np.abs(centred_flat).max() < 1e-3 * raw_flat.reshape(-1, 32).std(0).mean() + 1e-5
    # too few windows to average: left as it is
    small = image[:60, :60]
    np.testing.assert_array_equal(
        embed_micrograph(m, small, margin=8), embed_micrograph(m, small, margin=8, centre=False)
    )
