"""Checks what the README's first command wrote, run from the installed wheel (not the checkout).

Usage: python .ci/check_quickstart.py OUT_DIR VENV_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

out, venv = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
results = json.loads((out / "results.json").read_text(encoding="utf-8"))
images = results["images"]
assert len(images) == 1, f"one sample photo expected, got {len(images)}"
img = images[0]
source = Path(img["file"]).resolve()
assert venv in source.parents, f"the sample came from {source}, not from the installed package in {venv}"
faces = img["faces"]
assert len(faces) == 1, f"the sample photo has one face, the wheel found {len(faces)}"
points = np.asarray(faces[0]["points"], dtype=float)
assert points.shape == (68, 2) and np.isfinite(points).all(), f"68 finite points expected, got {points.shape}"
x0, y0, x1, y1 = faces[0]["box"]
inside = (points[:, 0] >= x0 - 5) & (points[:, 0] <= x1 + 5) & (points[:, 1] >= y0 - 5) & (points[:, 1] <= y1 + 5)
assert inside.all(), "points fall outside their face box"
assert points[36, 0] < points[45, 0], "point 36 (image-left eye corner) must lie left of point 45"
pictures = [p for p in out.iterdir() if p.suffix in (".png", ".jpg")]
assert pictures, "no annotated picture written"
print(f"quick start from the wheel: 1 face, 68 points, picture {pictures[0].name}")
