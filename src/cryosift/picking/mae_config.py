"""The masked autoencoder's architecture and masking (:class:`MaeConfig`) and its presets,
apart from :mod:`cryosift.picking.mae` so that reading them does not import torch (the
``cryosift train`` options show them in ``--help``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MaeConfig:
    """Architecture and masking. ``tile`` and ``patch`` in px of the preprocessed micrograph."""

    tile: int = 64
    patch: int = 4
    width: int = 192
    depth: int = 14
    heads: int = 3
    decoder_width: int = 128
    decoder_depth: int = 7
    decoder_heads: int = 4
    mask_ratio: float = 0.5

    @property
    def grid(self) -> int:
        return self.tile // self.patch

    def to_dict(self) -> dict:
        return asdict(self)


#: The paper's configuration, and cryosift's default: the same tiles and tokens with a
#: narrower, shallower encoder that trains in minutes on two CPU cores (docs/picking.md).
PRESETS = {
    "paper": MaeConfig(),
    "small": MaeConfig(width=96, depth=4, heads=3, decoder_width=64, decoder_depth=2),
}
DEFAULT_PRESET = "small"
