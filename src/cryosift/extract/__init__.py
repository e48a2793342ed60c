"""Particle extraction: boxes cut from micrographs at picked coordinates."""

from cryosift._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__, {"boxes": ("background_mask", "crop_boxes", "normalise_background")}
)
