"""Tiny training runs on synthetic faces, shared by the training, resume and export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from facepoints.datasets import write_pts
from facepoints.recipe import TrainConfig, load_train_config
from tests.conftest import synthetic_face

ROOT = Path(__file__).resolve().parents[1]


def pts_dataset(folder: Path, n: int = 24, jaw_drop: float = 0.0) -> Path:
    """Synthetic faces at random positions/scales, saved as images + .pts (the real format).

    ``jaw_drop``: annotators who draw the jaw that many pixels below the feature (a markup convention).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img, pts = synthetic_face(128, seed=i)
        canvas = np.full((160, 160, 3), 40, np.uint8)
        dx, dy = rng.integers(0, 32, 2)
        canvas[dy:dy + 128, dx:dx + 128] = img
        Image.fromarray(canvas).save(folder / f"face{i:02d}.png")
        pts[:17, 1] += jaw_drop
        write_pts(folder / f"face{i:02d}.pts", pts + [dx, dy])
    return folder


def tiny_config(tmp: Path, data: Path, **over) -> TrainConfig:
    overrides = [f"data.train=[{{path: {data}, format: ibug-pts}}]", "data.val_fraction=0.25",
                 f"out_dir={tmp / 'run'}", "model.input_size=32", "model.kwargs={widths: [8, 16], hidden: [32]}",
                 "optim.batch_size=8", "optim.lr=3e-3", "workers=0", "augment.blur_p=0", "threads=1"]
    overrides += [f"{k}={v}" for k, v in over.items()]
    return load_train_config(ROOT / "configs" / "seed_baseline.yaml", overrides)


def youtube_csv(folder: Path, points: list[np.ndarray], images: bool = True) -> Path:
    """A YouTube-Faces CSV of the given faces (one person each) with their images beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join([""] + [str(i) for i in range(136)])]
    for i, pts in enumerate(points):
        img, _ = synthetic_face(128, seed=i)
        if images:
            Image.fromarray(img).save(folder / f"Person{i}_0001.png")
        rows.append(",".join([f"Person{i}_0001.png"] + [f"{v:.2f}" for v in np.asarray(pts).ravel()]))
    path = folder / "faces.csv"
    path.write_text("\n".join(rows) + "\n")
    return path
