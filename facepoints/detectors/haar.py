"""Offline face detection with OpenCV's Haar cascades (the ``haar`` detector, the project's first).

Haar cascades ship inside the OpenCV 4.x wheels, so detection needs no download
and no torch. Their boxes follow the cascade's training convention (roughly
forehead to mouth), while the landmark model is trained on the *tight* box
around the 68 points; ``BoxMap`` is the small linear correction between the
two, fitted on training faces by ``benchmarks/fit_box_map.py`` and shipped as
``facepoints/assets/haar_box_map.json`` (``facepoints.detectors.boxmap``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facepoints.detectors.base import Detection, DetectorError, box_iou, to_grey
from facepoints.detectors.boxmap import BoxMaps

FRONTAL_CASCADE = "haarcascade_frontalface_alt2.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"


def cascade_path(name: str | Path) -> Path:
    """A cascade XML by file name (looked up in OpenCV's data folder) or by path."""
    p = Path(name)
    if p.is_file():
        return p
    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if base and (Path(base) / p.name).is_file():
        return Path(base) / p.name
    where = base if base else "nowhere: this OpenCV build has no cv2.data"
    raise DetectorError(
        f"Haar cascade {str(name)!r} not found (looked in {where}). OpenCV 5.x wheels ship no "
        "cascades: install 'opencv-python-headless<5', or pass the path of a cascade XML file."
    )


def _final_stage_threshold(path: Path) -> float:
    """Threshold of the last stage, so scores become margins (>= 0 for every detection)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    found = re.findall(r"<stage_?[tT]hreshold>\s*([-+0-9.eE]+)\s*<", text)
    return float(found[-1]) if found else 0.0


def merge_detections(
    primary: Sequence[Detection], secondary: Sequence[Detection], iou: float = 0.3, contain: float = 0.6
) -> list[Detection]:
    """Greedy NMS that prefers ``primary`` (frontal) boxes, then the best-scored ``secondary`` ones.

    Scores of different cascades are not comparable, so the cascade decides
    which box of a face survives and the score only ranks within a cascade. A
    box also counts as a duplicate when ``contain`` of the smaller box lies
    inside a kept one: the profile cascade often fires on half of a frontal
    face, a small box inside the big one that IoU alone would keep.
    """
    kept = sorted(primary, key=lambda d: -d.score)
    for det in sorted(secondary, key=lambda d: -d.score):
        if kept and _overlap(det.box, np.stack([d.box for d in kept]), iou, contain):
            continue
        kept.append(det)
    return kept


def _overlap(box: np.ndarray, others: np.ndarray, iou: float, contain: float) -> bool:
    if (box_iou(box, others) > iou).any():
        return True
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    other_area = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    smaller = np.maximum(np.minimum(area, other_area), 1e-9)
    return bool((ix * iy / smaller > contain).any())


@dataclass
class FaceDetector:
    """Multi-face Haar detector; boxes come back in the original image's pixels.

    Defaults were chosen on the annotated faces (``benchmarks/results/box_map.md``):
    ``frontalface_alt2`` with 3 neighbours finds 0.3-3 points fewer faces than
    ``frontalface_default`` but draws about a third of its false boxes (81 vs
    233 over 5,439 faces; 3 vs 40 on AFW). ``profile`` adds the profile cascade
    on the image and its mirror for turned heads: +3-5 points of faces on
    HELEN/AFW, about twice the false boxes, three passes so ~3-4x slower.
    """

    cascade: str = FRONTAL_CASCADE
    profile: bool = False
    profile_cascade: str = PROFILE_CASCADE
    min_size: int = 20  # smallest face side, in original image pixels
    scale_factor: float = 1.1
    min_neighbors: int = 3
    max_side: int = 1024  # larger images are shrunk to this longest side first: speed
    min_score: float = 0.0  # drop detections whose final-stage margin is below this
    nms_iou: float = 0.3  # profile boxes overlapping a kept box this much are duplicates ...
    nms_contain: float = 0.6  # ... as are those with this share of their area inside a kept box
    equalize: bool = False  # histogram equalisation: helped nowhere on the annotated data
    threads: int | None = None  # uniform interface only: OpenCV's own thread pool (cv2.setNumThreads) decides
    _cascades: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _box_maps: BoxMaps | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def box_maps(self) -> BoxMaps:
        """Cascade box -> tight landmark box, fitted on training faces (``benchmarks/fit_box_map.py``)."""
        if self._box_maps is None:
            self._box_maps = BoxMaps.load()
        return self._box_maps

    def _load(self, name: str) -> tuple[cv2.CascadeClassifier, float]:
        if name not in self._cascades:
            path = cascade_path(name)
            clf = cv2.CascadeClassifier(str(path))
            if clf.empty():
                raise DetectorError(f"OpenCV could not load the Haar cascade {path}")
            self._cascades[name] = (clf, _final_stage_threshold(path))
        return self._cascades[name]

    def _run(self, name: str, grey: np.ndarray, min_px: int, mirrored: bool) -> list[Detection]:
        clf, threshold = self._load(name)
        img = np.ascontiguousarray(grey[:, ::-1]) if mirrored else grey
        rects, _levels, weights = clf.detectMultiScale3(
            img,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_px, min_px),
            outputRejectLevels=True,
        )
        out = []
        width = grey.shape[1]
        for (x, y, w, h), weight in zip(np.asarray(rects).reshape(-1, 4), np.ravel(weights)):
            if mirrored:
                x = width - x - w
            # Rect covers pixel indices x..x+w-1, i.e. [x - 0.5, x + w - 0.5] in the geometry convention.
            box = np.array([x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5], dtype=np.float64)
            out.append(Detection(box, float(weight) - threshold, Path(name).name, mirrored))
        return out

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """All faces in an RGB (H, W, 3) or greyscale (H, W) uint8 image, best first."""
        if np.asarray(image_rgb).size == 0:
            return []
        grey = to_grey(image_rgb)
        h, w = grey.shape
        scale = min(1.0, self.max_side / max(h, w)) if self.max_side > 0 else 1.0
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        sx, sy = grey.shape[1] / w, grey.shape[0] / h
        if self.equalize:
            grey = cv2.equalizeHist(grey)
        min_px = max(1, math.ceil(self.min_size * min(sx, sy)))

        found = self._run(self.cascade, grey, min_px, False)
        if self.profile:
            prof = self._run(self.profile_cascade, grey, min_px, False)
            prof += self._run(self.profile_cascade, grey, min_px, True)
            found = merge_detections(found, prof, self.nms_iou, self.nms_contain)
        else:
            found = sorted(found, key=lambda d: -d.score)
        found = [d for d in found if d.score >= self.min_score]
        for d in found:  # back to original pixels: u -> (u + 0.5) / s - 0.5
            d.box = np.array(
                [(d.box[0] + 0.5) / sx - 0.5, (d.box[1] + 0.5) / sy - 0.5,
                 (d.box[2] + 0.5) / sx - 0.5, (d.box[3] + 0.5) / sy - 0.5]
            )
        return found


