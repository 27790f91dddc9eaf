"""dlib's HOG + linear SVM face detector (the ``dlib`` detector), through the optional extra ``facepoints[dlib]``.

For comparison and for users who prefer it: it finds more frontal faces than
the Haar cascade, at a higher cost. Its five sub-detectors (frontal, left,
right, and two tilted) draw slightly different boxes, so each has its own
``BoxMap`` to the tight landmark box, fitted on training faces
(``benchmarks/fit_dlib_box_map.py``, shipped as ``assets/dlib_box_map.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepoints.detectors.base import Detection, DetectorError, to_rgb
from facepoints.detectors.boxmap import BoxMap, BoxMaps

BOX_MAP_ASSET = "dlib_box_map.json"
SUBDETECTORS = ("dlib-hog-0", "dlib-hog-1", "dlib-hog-2", "dlib-hog-3", "dlib-hog-4")


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise DetectorError("the 'dlib' detector needs dlib: pip install 'facepoints[dlib]' "
                            "(installs dlib-bin)") from None
    return dlib


@dataclass
class DlibHogDetector:
    """dlib's ``get_frontal_face_detector``; ``upsample`` doubles the image that many times (finds ~40 px faces at 0,
    ~20 px at 1, 4x slower)."""

    upsample: int = 1
    threshold: float = 0.0  # dlib's adjust_threshold: lower finds more faces and more false ones
    threads: int | None = None  # uniform interface only: dlib's HOG runs on one thread
    _detector: Any = field(default=None, init=False, repr=False, compare=False)
    _box_maps: BoxMaps | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.upsample < 0:
            raise DetectorError("upsample must be 0 or more")
        self._detector = import_dlib().get_frontal_face_detector()

    @property
    def box_maps(self) -> BoxMaps:
        if self._box_maps is None:
            try:
                self._box_maps = BoxMaps.load(asset_name=BOX_MAP_ASSET)
            except FileNotFoundError:
                self._box_maps = BoxMaps({k: BoxMap() for k in SUBDETECTORS})
        return self._box_maps

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """All faces, best first; dlib rectangles cover pixel indices [left, right], hence the half-pixel shift."""
        img = to_rgb(image_rgb)
        if img.size == 0:
            return []
        rects, scores, kinds = self._detector.run(img, self.upsample, self.threshold)
        out = [Detection(np.array([r.left() - 0.5, r.top() - 0.5, r.right() + 0.5, r.bottom() + 0.5], dtype=np.float64),
                         float(s), SUBDETECTORS[int(k)] if 0 <= int(k) < len(SUBDETECTORS) else SUBDETECTORS[0])
               for r, s, k in zip(rects, scores, kinds)]
        return sorted(out, key=lambda d: -d.score)
