"""A 4-point toy scheme, two faces with hand-computed errors, and their metrics: shared by metric and report tests."""

from __future__ import annotations

import numpy as np

from facepoints.metrics import EvalResult, compute_metrics
from facepoints.schemes import PointScheme

# 4-point toy scheme: points 0 and 1 are the "eye corners" 10 px apart.
TOY = PointScheme(
    name="toy4",
    points=("eye_a", "eye_b", "nose", "mouth"),
    regions={"eyes": (0, 1), "lower": (2, 3)},
    normalise=(0, 1),
)


GT = np.array(
    [
        [[0.0, 0.0], [10.0, 0.0], [5.0, 5.0], [5.0, 10.0]],  # normaliser 10
        [[0.0, 0.0], [0.0, 20.0], [5.0, 5.0], [5.0, 10.0]],  # normaliser 20
    ]
)


# Offsets: face 0 -> errors 1, 0, 3 (3-4-5 triangle: 5), 2  => mean 2.0 px / 10
#          face 1 -> errors 0, 0, 0, 4                       => mean 1.0 px / 20
OFFSETS = np.array(
    [
        [[1.0, 0.0], [0.0, 0.0], [3.0, 4.0], [0.0, -2.0]],
        [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [4.0, 0.0]],
    ]
)


def toy_result() -> EvalResult:
    pred = GT + OFFSETS
    return compute_metrics(pred, GT, None, TOY, name="modelA", dataset="toyset", sources=["a.png", "b.png"])
