"""Particle extraction: boxes cut from micrographs at picked coordinates."""

from cryosift.extract.boxes import background_mask, crop_boxes, normalise_background

__all__ = ["background_mask", "crop_boxes", "normalise_background"]
