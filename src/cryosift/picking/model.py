"""The picker model on disk: the MAE, its input statistics and its k-means, in one folder.

``DIR/model.pt`` holds everything ``cryosift pick`` needs (format ``cryosift-picker/1``):

| key | what |
|---|---|
| ``config`` | :class:`~cryosift.picking.mae.MaeConfig` as a dict |
| ``state`` | the MAE's weights (encoder and decoder, so ``cryosift train`` can adapt it) |
| ``mean``, ``std`` | training statistics of the preprocessed tiles |
| ``centroids`` | ``(4, width)`` k-means centres fitted on training embeddings |
| ``preprocess`` | ``filters``; ``diameter_px`` at work (default 28; None: ``long_side``) |
| ``info`` | training record: seed, epochs, micrographs, final loss, versions |
| ``ranker`` | ``None`` or the candidate ranker learned by ``cryosift train`` (a dict) |

``DIR/train_state.pt`` (optimiser, epoch) lets an interrupted ``cryosift train`` resume; it is
not needed to pick. Both are written to a temporary file and renamed. The package ships one
trained model (:func:`shipped_model_dir`), loaded with no network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from cryosift.errors import InputError
from cryosift.io.atomic import write_all_or_nothing
from cryosift.picking.mae import MaeConfig, MaskedAutoencoder
from cryosift.picking.rank import Ranker

FORMAT = "cryosift-picker/1"
MODEL_FILE = "model.pt"
STATE_FILE = "train_state.pt"


@dataclass
class PickerModel:
    """A loaded picker: the MAE (eval mode) and what goes with it."""

    mae: MaskedAutoencoder
    mean: float
    std: float
    centroids: np.ndarray | None
    preprocess: dict = field(default_factory=lambda: {"long_side": 1024, "filters": "proper"})
    info: dict = field(default_factory=dict)
    ranker: Ranker | None = None

    def to(self, device: str | torch.device) -> PickerModel:
        self.mae.to(device)
        return self

    def kmeans(self) -> np.ndarray:
        """The k-means ``centroids`` ``(K, width)``; a model saved before its k-means was
        fitted has none to pick with."""
        if self.centroids is None:
            raise ValueError("the picker model has no k-means centroids: train it to the end")
        return self.centroids


def shipped_model_dir() -> Path:
    """The pretrained model inside the package (``cryosift/picking/pretrained``)."""
    return Path(str(resources.files("cryosift.picking").joinpath("pretrained")))


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` through :func:`~cryosift.io.atomic.write_all_or_nothing` (a temporary
    file renamed into place: never half-written)."""
    write_all_or_nothing({path: lambda tmp: torch.save(obj, tmp)})


def save_model(model: PickerModel, directory: str | os.PathLike[str], half: bool = False) -> Path:
    """Write ``directory/model.pt``; ``half`` stores the weights as float16 (shipping)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.mae.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "config": model.mae.config.to_dict(),
        "state": state,
        "mean": float(model.mean),
        "std": float(model.std),
        "centroids": None if model.centroids is None else np.asarray(model.centroids, np.float32),
        "preprocess": dict(model.preprocess),
        "info": dict(model.info),
        "ranker": None if model.ranker is None else model.ranker.to_dict(),
    }
    path = directory / MODEL_FILE
    atomic_torch_save(payload, path)
    return path


def load_model(directory: str | os.PathLike[str] | None = None, device: str = "cpu") -> PickerModel:
    """Load ``directory/model.pt`` (the shipped model when ``directory`` is None)."""
    directory = shipped_model_dir() if directory is None else Path(directory)
    path = directory / MODEL_FILE if directory.is_dir() else directory
    if not path.is_file():
        raise InputError(path, "no picker model here (train one with cryosift train)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds on a damaged file
        raise InputError(path, f"not a readable picker model ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, f"not a cryosift picker model (expected format {FORMAT})")
    mae = MaskedAutoencoder(MaeConfig(**payload["config"]))
    mae.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    mae.eval()
    return PickerModel(
        mae,
        payload["mean"],
        payload["std"],
        payload["centroids"],
        payload["preprocess"],
        payload["info"],
        None if payload.get("ranker") is None else Ranker.from_dict(payload["ranker"]),
    ).to(device)


#: Models already loaded in this process, by (folder, device).
_LOADED: dict[tuple[str, str], PickerModel] = {}


def cached_model(directory: str | None, device: str) -> PickerModel:
    """:func:`load_model`, once per process: pool and Dask workers keep the model between
    micrographs."""
    key = (directory or "", device)
    if key not in _LOADED:
        _LOADED[key] = load_model(directory, device)
    return _LOADED[key]
