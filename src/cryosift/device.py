"""Where torch work runs: the device every command that uses torch picks the same way."""

from __future__ import annotations


def pick_device(device: str | None = None) -> str:
    """``device`` when given, else CUDA when present, else CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
