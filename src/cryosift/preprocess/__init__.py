"""Image preprocessing: Fourier cropping, CTF phase flipping."""

from cryosift.preprocess.fourier import fourier_crop, phase_flip_and_crop

__all__ = ["fourier_crop", "phase_flip_and_crop"]
