"""Train the picker model that ships inside cryosift (``src/cryosift/picking/pretrained``).

Training data the project may use: synthetic micrographs from ``cryosift simulate
micrographs`` (the built-in phantom at three particle sizes) and the two raw micrographs of
``../shared/data/real_micrographs`` (BSD-3, mrcfile's test data). EMPIAR-10017 is kept out:
it is the test set. Run from the repository root:

    python scripts/train_shipped_model.py --epochs 12 --lr 4e-3 --seed 0

It writes ``model_shipped/`` (full precision, resumable) and the float16 copy in the package.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from cryosift.io.micrographs import read_micrograph
from cryosift.picking.mae import PRESETS
from cryosift.picking.model import save_model, shipped_model_dir
from cryosift.picking.train import TrainSettings, train
from cryosift.preprocess.micrograph import preprocess
from cryosift.simulate.micrographs import MicrographSimConfig, simulate_micrograph
from cryosift.simulate.volume import diameter_px, phantom_volume

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_micrographs"
#: Raw micrographs and an assumed particle diameter in Å (they have no labels; the diameter
#: only sets the preprocessing scale).
REAL_FILES = {"epu2.9_example.mrc": 150.0, "fei-extended.mrc": 150.0}


def training_images(seed: int) -> list[np.ndarray]:
    images = []
    base = phantom_volume(64, seed=seed)
    for i, zoom in enumerate((0.5, 0.75, 1.0)):
        vol = ndimage.zoom(base, zoom, order=1) if zoom != 1 else base
        d = diameter_px(vol)
        cfg = MicrographSimConfig(
            shape=(1024, 1024),
            particles=int(0.25 * 1024**2 / (np.pi * (d / 2) ** 2)),
            min_spacing=1.05,
            snr=0.3,
            seed=seed + i,
        )
        for k in range(3):
            mic = simulate_micrograph(vol, cfg, k, f"sim{i}_{k}")
            images.append(preprocess(mic.image, d, diameter_px=None)[0])
    for name, d_A in REAL_FILES.items():
        mic = read_micrograph(REAL / name)
        images.append(preprocess(mic.image, d_A / mic.angpix, diameter_px=None)[0])
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--out", type=Path, default=Path("model_shipped"))
    args = ap.parse_args()
    t = time.time()
    images = training_images(args.seed)
    print(f"{len(images)} training micrographs preprocessed in {time.time() - t:.0f} s")
    model = train(
        images,
        PRESETS["small"],
        TrainSettings(
            epochs=args.epochs, warmup=min(5, args.epochs // 4), lr=args.lr, seed=args.seed
        ),
        args.out,
        info={"data": "synthetic phantom x9 + real_micrographs x2", "script": __file__},
        on_epoch=lambda e, loss, dt: print(f"epoch {e}: loss {loss:.4f} ({dt:.0f} s)", flush=True),
    )
    path = save_model(model, shipped_model_dir(), half=True)
    print(f"shipped model: {path} ({path.stat().st_size / 1e6:.2f} MB), {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
