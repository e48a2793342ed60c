"""Image preprocessing: Fourier cropping, CTF phase flipping."""

from cryosift._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {"fourier": ("fourier_crop", "phase_flip_and_crop")})
