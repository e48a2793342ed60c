"""Particle extraction: boxes cut from micrographs at picked coordinates."""

from cryosift._lazy import lazy_exports

_EXPORTS = {name: "boxes" for name in ("background_mask", "crop_boxes", "normalise_background")}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
