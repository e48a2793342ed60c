"""A ViT masked autoencoder in plain torch (He et al. 2022), as Cryo-EMMAE uses it.

Tiles ``(B, 1, T, T)`` of a preprocessed micrograph are cut into ``p x p`` tokens; a fraction
``mask_ratio`` of the tokens is hidden; the encoder sees the rest (with fixed 2D sin-cos
position embeddings), the decoder rebuilds every token from the encoded ones plus learned mask
tokens, and the loss is the mean squared error on the hidden tokens only. After training only
the encoder is used: :meth:`MaskedAutoencoder.embed` gives one vector per token of an unmasked
tile of any size that is a multiple of ``p`` (the position embedding is computed for the
grid at hand). Attention is ``F.scaled_dot_product_attention``; nothing needs timm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cryosift.picking.mae_config import DEFAULT_PRESET, PRESETS, MaeConfig  # noqa: F401


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding ``(h * w, dim)``, rows then columns (MAE's)."""
    if dim % 4:
        raise ValueError("embedding width must be a multiple of 4")
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    ey = ys.reshape(-1, 1) * omega
    ex = xs.reshape(-1, 1) * omega
    return torch.cat([ey.sin(), ey.cos(), ex.sin(), ex.cos()], dim=1).float()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention of ``(B, heads, N, d)`` queries, keys and values. On CPU in bfloat16
    the written-out form is used: torch's fused kernel takes 5.7 ms for 16 windows of 256
    tokens, 3 heads, one thread, the written-out one 3.1 ms (``benchmarks/picking_peers.py``
    measures the whole); elsewhere the fused kernel is the faster."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        weights = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2), dim=-1)
        return weights.to(v.dtype) @ v
    return F.scaled_dot_product_attention(q, k, v)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention and a 4x MLP, ``(B, N, dim)`` in and out."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        att = attention(q, k, v)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


def patchify(tiles: torch.Tensor, p: int) -> torch.Tensor:
    """``(B, 1, H, W)`` to tokens ``(B, (H/p) * (W/p), p * p)``, rows then columns."""
    b, _, h, w = tiles.shape
    x = tiles.reshape(b, h // p, p, w // p, p).permute(0, 1, 3, 2, 4)
    return x.reshape(b, (h // p) * (w // p), p * p)


class MaskedAutoencoder(nn.Module):
    """The MAE. ``forward(tiles, generator)`` returns the loss on hidden tokens."""

    pos: torch.Tensor
    decoder_pos: torch.Tensor

    def __init__(self, config: MaeConfig):
        super().__init__()
        c = self.config = config
        self.embed_tokens = nn.Linear(c.patch * c.patch, c.width)
        self.blocks = nn.ModuleList(Block(c.width, c.heads) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.width)
        self.decoder_in = nn.Linear(c.width, c.decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_width))
        self.decoder = nn.ModuleList(
            Block(c.decoder_width, c.decoder_heads) for _ in range(c.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_width)
        self.head = nn.Linear(c.decoder_width, c.patch * c.patch)
        self.register_buffer("pos", sincos_2d(c.grid, c.grid, c.width), persistent=False)
        self.register_buffer(
            "decoder_pos", sincos_2d(c.grid, c.grid, c.decoder_width), persistent=False
        )
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_init)

    def _encode(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(tokens) + pos
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, tiles: torch.Tensor, generator: torch.Generator | None = None):
        """Loss (scalar) of ``tiles`` ``(B, 1, tile, tile)`` with a random mask per tile."""
        c = self.config
        tokens = patchify(tiles, c.patch)
        b, n, _ = tokens.shape
        keep = round(n * (1 - c.mask_ratio))
        noise = torch.rand(b, n, generator=generator, device="cpu").to(tiles.device)
        order = noise.argsort(dim=1)
        visible = order[:, :keep]
        gather = lambda t, idx: torch.gather(  # noqa: E731
            t, 1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1])
        )
        pos = self.pos.unsqueeze(0).expand(b, -1, -1)
        enc = self._encode(gather(tokens, visible), gather(pos, visible))
        dec = self.decoder_in(enc)
        full = self.mask_token.expand(b, n, -1).clone()
        full.scatter_(1, visible.unsqueeze(-1).expand(-1, -1, dec.shape[-1]), dec)
        x = full + self.decoder_pos
        for blk in self.decoder:
            x = blk(x)
        pred = self.head(self.decoder_norm(x))
        hidden = torch.ones(b, n, device=tiles.device)
        hidden.scatter_(1, visible, 0.0)
        err = ((pred - tokens) ** 2).mean(dim=-1)
        return (err * hidden).sum() / hidden.sum()

    @torch.no_grad()
    def embed(self, tiles: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, H/p, W/p, width)`` of unmasked tiles ``(B, 1, H, W)``."""
        p = self.config.patch
        h, w = tiles.shape[-2] // p, tiles.shape[-1] // p
        pos = sincos_2d(h, w, self.config.width).to(tiles.device)
        x = self._encode(patchify(tiles, p), pos)
        return x.reshape(tiles.shape[0], h, w, -1)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
