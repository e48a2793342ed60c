"""The simulator's named choices, importable without numpy or scipy (``cryosift simulate
--help`` lists them)."""

from __future__ import annotations

#: Noise spectra of :func:`cryosift.simulate.noise.noise_psd`.
NOISE_COLOURS = ("white", "coloured")
#: Reference protocols of :func:`cryosift.simulate.particles.protocol_config`.
PROTOCOLS = ("kapnulin2024",)
#: How outliers are displaced: a radial shift, or the published code's per-axis integer rolls.
SHIFT_MODELS = ("radial", "per-axis")
