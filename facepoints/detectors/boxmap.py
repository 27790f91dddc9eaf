"""Maps from a detector's box to the landmark model's box (the tight box of the 68 points, brows to chin).

Every detector draws faces its own way (Haar: forehead to mouth; dlib HOG:
brows to lip-chin; the project's CNN: trained on the tight box already). The
landmark model wants the tight box, so each backend ships a ``BoxMap`` per
sub-detector, fitted on training faces only (never on the test sets).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from facepoints.detectors.base import Detection, box_iou

BOX_MAP_ASSET = "haar_box_map.json"
BOX_MAP_FORMAT = "facepoints-haar-box-map/1"  # the first detector's name; every backend's map files use it


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


def matched_detection(detections: Sequence[Detection], tight: np.ndarray, min_iou: float) -> Detection | None:
    """The detection that overlaps an annotated face's tight box most, if at least ``min_iou``: a fitting pair."""
    if not detections:
        return None
    ious = box_iou(np.stack([d.box for d in detections]), np.asarray(tight, dtype=np.float64).reshape(1, 4))[:, 0]
    return detections[int(ious.argmax())] if ious.max() >= min_iou else None


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
                    "fit one with facepoints.detectors.fit_box_map"
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
    def load(cls, path: str | Path | None = None, asset_name: str = BOX_MAP_ASSET) -> BoxMaps:
        """A saved map file; None loads the packaged asset ``asset_name`` (the Haar maps by default)."""
        if path is None:
            asset = resources.files("facepoints") / "assets" / asset_name
            if not asset.is_file():
                raise FileNotFoundError(
                    f"the packaged box map {asset} is missing; fit it with benchmarks/fit_box_map.py"
                )
            text = asset.read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))
