"""Offline face detection with OpenCV's Haar cascades, and the map to the landmark model's box.

Haar cascades ship inside the OpenCV 4.x wheels, so detection needs no download
and no torch. Their boxes follow the cascade's training convention (roughly
forehead to mouth), while the landmark model is trained on the *tight* box
around the 68 points; ``BoxMap`` is the small linear correction between the
two, fitted on annotated faces by ``benchmarks/fit_box_map.py`` and shipped as
``facepoints/assets/haar_box_map.json``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

FRONTAL_CASCADE = "haarcascade_frontalface_alt2.xml"
PROFILE_CASCADE = "haarcascade_profileface.xml"
BOX_MAP_ASSET = "haar_box_map.json"
BOX_MAP_FORMAT = "facepoints-haar-box-map/1"


class DetectorError(RuntimeError):
    """The face detector cannot run (cascade missing or unreadable, bad input)."""


@dataclass(eq=False)  # identity equality: comparing numpy boxes with == would raise
class Detection:
    """One detected face in image pixels (``facepoints.geometry`` convention).

    ``score`` is the margin by which the window cleared the cascade's final
    stage: higher is more face-like, but it is not a probability and is only
    comparable between detections of the same cascade.
    """

    box: np.ndarray  # (4,) float: x0, y0, x1, y1
    score: float
    cascade: str = FRONTAL_CASCADE  # file name of the cascade that found it
    mirrored: bool = False  # found on the mirrored image (profile faces looking the other way)


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


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (N, 4) x (M, 4) -> (N, M); single boxes give a (1, 1) array."""
    return _iou_matrix(a, b)


def _to_grey(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise DetectorError(f"the detector takes uint8 images, not {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGBA2GRAY)
    raise DetectorError(f"expected an RGB (H, W, 3) or greyscale (H, W) image, got shape {img.shape}")


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
    if (_iou_matrix(box, others) > iou).any():
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
    _cascades: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
        grey = _to_grey(image_rgb)
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


@dataclass
class BoxMap:
    """Linear map from a detector box to the tight landmark box.

    ``cx' = cx + a_x * w``, ``cy' = cy + a_y * h``, ``w' = s_w * w``,
    ``h' = s_h * h``: offsets and sizes relative to the detector box, so one map
    serves faces of every size. For a mirrored detection the x offset flips.
    """

    a_x: float = 0.0
    a_y: float = 0.0
    s_w: float = 1.0
    s_h: float = 1.0

    def apply(self, box: np.ndarray, mirrored: bool = False) -> np.ndarray:
        """Map boxes (..., 4) x0, y0, x1, y1 -> tight-box estimates of the same shape."""
        b = np.asarray(box, dtype=np.float64)
        w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        cx = (b[..., 0] + b[..., 2]) / 2 + (-self.a_x if mirrored else self.a_x) * w
        cy = (b[..., 1] + b[..., 3]) / 2 + self.a_y * h
        nw, nh = self.s_w * w, self.s_h * h
        return np.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], axis=-1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BoxMap:
        return cls(**{k: float(d[k]) for k in ("a_x", "a_y", "s_w", "s_h")})


def _as_boxes(detections: Sequence[Detection] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(detections, np.ndarray):
        boxes = np.asarray(detections, dtype=np.float64).reshape(-1, 4)
        return boxes, np.zeros(len(boxes), dtype=bool)
    dets = list(detections)
    boxes = np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4)
    return boxes, np.array([d.mirrored for d in dets], dtype=bool)


def box_map_residuals(detections: Sequence[Detection] | np.ndarray, tight_boxes: np.ndarray) -> np.ndarray:
    """Per face (dx/w, dy/h, w_t/w, h_t/h): what a perfect BoxMap would be for that face alone."""
    d, mirrored = _as_boxes(detections)
    t = np.asarray(tight_boxes, dtype=np.float64).reshape(-1, 4)
    if len(d) != len(t):
        raise ValueError(f"{len(d)} detections but {len(t)} tight boxes")
    w, h = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
    dx = ((t[:, 0] + t[:, 2]) - (d[:, 0] + d[:, 2])) / 2 / w
    dy = ((t[:, 1] + t[:, 3]) - (d[:, 1] + d[:, 3])) / 2 / h
    dx = np.where(mirrored, -dx, dx)
    return np.stack([dx, dy, (t[:, 2] - t[:, 0]) / w, (t[:, 3] - t[:, 1]) / h], axis=1)


def fit_box_map(
    detections: Sequence[Detection] | np.ndarray, tight_boxes: np.ndarray, *, trim: float | None = 3.0
) -> BoxMap:
    """Least-squares BoxMap from matched detections and true tight boxes.

    Errors are measured relative to the detector box (so big faces do not
    dominate), which makes the least-squares solution the mean of the per-face
    residuals. ``trim`` refits once without faces further than that many robust
    standard deviations away: a few mismatched or half-occluded faces should
    not pull the map.
    """
    r = box_map_residuals(detections, tight_boxes)
    if len(r) == 0:
        raise ValueError("fit_box_map needs at least one matched detection")
    params = r.mean(axis=0)
    if trim is not None and len(r) >= 10:
        med = np.median(r, axis=0)
        spread = 1.4826 * np.median(np.abs(r - med), axis=0)
        keep = (np.abs(r - med) <= trim * np.maximum(spread, 1e-9)).all(axis=1)
        if keep.any():
            params = r[keep].mean(axis=0)
    return BoxMap(*(float(p) for p in params))


@dataclass
class BoxMaps:
    """One BoxMap per cascade file, so detections of any cascade map to tight boxes."""

    maps: dict[str, BoxMap]
    meta: dict = field(default_factory=dict)

    def apply(self, detections: Sequence[Detection]) -> np.ndarray:
        """Detections -> (N, 4) tight-box estimates, the landmark model's input boxes."""
        out = np.zeros((len(detections), 4), dtype=np.float64)
        for i, det in enumerate(detections):
            key = Path(det.cascade).name
            if key not in self.maps:
                raise KeyError(
                    f"no box map fitted for cascade {key!r} (have {sorted(self.maps)}); "
                    "fit one with facepoints.detect.fit_box_map or benchmarks/fit_box_map.py"
                )
            out[i] = self.maps[key].apply(det.box, mirrored=det.mirrored)
        return out

    def to_dict(self) -> dict:
        return {"format": BOX_MAP_FORMAT, "maps": {k: m.to_dict() for k, m in self.maps.items()}, **self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> BoxMaps:
        if d.get("format") != BOX_MAP_FORMAT or not isinstance(d.get("maps"), dict):
            raise ValueError(f"not a {BOX_MAP_FORMAT} file")
        meta = {k: v for k, v in d.items() if k not in ("format", "maps")}
        return cls({k: BoxMap.from_dict(v) for k, v in d["maps"].items()}, meta)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path | None = None) -> BoxMaps:
        """A saved map file; None loads the maps shipped with the package."""
        if path is None:
            asset = resources.files("facepoints") / "assets" / BOX_MAP_ASSET
            if not asset.is_file():
                raise FileNotFoundError(
                    f"the packaged box map {asset} is missing; fit it with benchmarks/fit_box_map.py"
                )
            text = asset.read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))
