"""Image preprocessing: Fourier cropping, CTF phase flipping."""

from cryosift._lazy import lazy_exports

_EXPORTS = {name: "fourier" for name in ("fourier_crop", "phase_flip_and_crop")}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
