"""The project's own CNN face detector on onnxruntime (the ``facepoints`` detector; no torch).

The network (``facepoints.detector_model``, trained by ``facepoints
train-detector``) is anchor-free: every cell of strides 8, 16 and 32 scores
"a face is centred here" and regresses the face's tight box, so decoding is
a threshold, NMS and a rescale. The photo is resized so that the smallest face
asked for (``min_face`` image pixels) becomes the smallest face the network
was validated on (the sidecar's ``min_face_px``): small faces cost input
pixels, and a user who only wants big faces gets a faster detector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facepoints.detectors.base import Detection, DetectorError, box_iou, nms, onnx_session, to_rgb
from facepoints.detectors.boxmap import BoxMap, BoxMaps
from facepoints.detectors.verifier import FaceVerifier, candidate_floor, combine

MODEL_NAME = "detector"
# /2: cell centres added here, for the cells kept; /1 (before session 36) decoded every cell in the graph
SIDECAR_FORMAT = "facepoints-detector/2"
BOX_MAP_KEY = "facepoints-cnn"
FLIP_FLOOR = 0.05  # with ``flip``, each way round keeps candidates from this score up (the verifier's own floor)
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N, 4), scores (N,), five points (N, 5 or 0, 2)


def each_look_floor(floor: float) -> float:
    """The score each way round from which a face's mean over the two looks can still reach ``floor``."""
    return max(2.0 * floor - 1.0, FLIP_FLOOR)


def output_names(points: bool) -> list[str]:
    """The ONNX outputs, named once for the export (torch) and this runtime (no torch)."""
    return ["scores", "distances", "offsets"] if points else ["scores", "distances"]


def cell_centres(height: int, width: int, strides: list[int], cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres (x, y), float32, of ``cells``: indices into the stride maps of a height x width input,
    each map flattened row by row and the maps concatenated finest first (the graph's order)."""
    st = np.asarray(strides)
    widths, sizes = width // st, (height // st) * (width // st)
    ends = np.cumsum(sizes)
    level = np.searchsorted(ends, cells, side="right")
    local = cells - (ends - sizes)[level]
    step, half = st[level].astype(np.float32), np.float32(0.5)
    col, row = (local % widths[level]).astype(np.float32), (local // widths[level]).astype(np.float32)
    return (col + half) * step - half, (row + half) * step - half


def decode_cells(outputs: list[np.ndarray], keep: np.ndarray, height: int, width: int,
                 strides: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Boxes (N, 4) and five points (N, 5, 2) or None, float32 input pixels, of the ``keep`` cells of a
    ``SIDECAR_FORMAT`` graph: its sides' distances and points' offsets from each cell centre, in pixels. The
    same float32 sums the graph-decoded format did, for the few cells kept instead of all of them."""
    cells = np.flatnonzero(keep)
    cx, cy = cell_centres(height, width, strides, cells)
    d = outputs[1][0][:, cells]
    boxes = np.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], axis=1)
    if len(outputs) < 3:
        return boxes, None
    offsets = outputs[2][0][:, cells].reshape(5, 2, -1)
    return boxes, (offsets + np.stack([cx, cy])[None]).transpose(2, 0, 1)


def default_model_path() -> Path:
    return Path(str(resources.files("facepoints") / "weights" / f"{MODEL_NAME}.onnx"))


def read_detector_sidecar(onnx_path: Path) -> dict[str, Any]:
    side = onnx_path.with_suffix(".json")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DetectorError(f"detector model {onnx_path} has no sidecar {side.name} beside it "
                            "(export it with 'facepoints export-detector')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DetectorError(f"cannot read detector sidecar {side}: {e}") from None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != SIDECAR_FORMAT and str(fmt).startswith("facepoints-detector/"):
        raise DetectorError(f"{onnx_path} was exported by another facepoints version ({fmt}); export its checkpoint "
                            "again with 'facepoints export-detector CHECKPOINT --out FILE.onnx'")
    if fmt != SIDECAR_FORMAT:
        raise DetectorError(f"{side} is not a {SIDECAR_FORMAT} sidecar")
    return meta


@dataclass
class CnnDetector:
    """Multi-face CNN detector; boxes in the original image's pixels, tight-box convention, best first.

    ``threshold`` is on a probability-like score in [0, 1]; None uses the
    sidecar's default, chosen on held-out training people at a budget of one
    false detection per 20 photos.
    """

    model: str | Path | None = None  # .onnx path; None: the shipped facepoints/weights/detector.onnx
    threshold: float | None = None
    # Smallest face side to find, in image pixels. None: the network's own smallest face (the sidecar's
    # min_face_px), so photos run at their own scale, the scale its threshold was chosen at; on the held-out
    # photos that finds far more faces than halving them (benchmarks/results/detector_validation.md).
    min_face: float | None = None
    max_side: int = 1280  # cap on the network input's longer side
    # Faces larger than the network was trained on are found on smaller copies of the photo (``levels``).
    pyramid: bool = True
    band_px: float | None = None  # None: the sidecar's band_px
    pyramid_step: float | None = None  # None: the sidecar's pyramid_step
    band_overlap: float | None = None  # None: the sidecar's band_overlap (levels' bands overlap by this factor)
    nms_iou: float = 0.4
    max_faces: int = 300
    threads: int | None = None
    # A second look at each candidate (detectors/verifier.py) when the card names a verifier; False: the
    # detector's score alone, with its own threshold.
    verify: bool = True
    # Also run on the mirrored photo and average the two scores of each face (None: the card's choice, made on
    # held-out photos by benchmarks/verifier.py). Twice the network time for fewer misses at the same false
    # detections: a face the network half-sees one way round is often clear the other.
    flip: bool | None = None
    _session: Any = field(default=None, init=False, repr=False, compare=False)
    _meta: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _verifier: FaceVerifier | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.min_face is not None and self.min_face <= 0:
            raise DetectorError("min_face must be a positive number of pixels")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise DetectorError("threshold must be between 0 and 1")
        if self.pyramid_step is not None and not 0.1 <= self.pyramid_step <= 0.8:
            raise DetectorError("pyramid_step must be between 0.1 and 0.8")
        if self.band_overlap is not None and not 1.0 <= self.band_overlap <= 2.0:
            raise DetectorError("band_overlap must be between 1 and 2")
        if self.band_px is not None and self.band_px < 32:
            raise DetectorError("band_px must be at least 32 network pixels")
        path = Path(self.model) if self.model is not None else default_model_path()
        if not path.is_file():
            raise DetectorError(f"no detector model {path}; train and export one with 'facepoints train-detector' "
                                "and 'facepoints export-detector'")
        self._meta = read_detector_sidecar(path)
        self._session = onnx_session(path, self.threads)
        self.path = path
        spec = self._meta.get("verifier")
        if self.verify and spec:
            self._verifier = FaceVerifier(path.parent / spec["file"], threads=self.threads)

    @property
    def meta(self) -> dict[str, Any]:
        """The model card (sidecar JSON)."""
        return self._meta

    @property
    def score_threshold(self) -> float:
        """The default applies to the final score: the verifier's combination when it runs, else the detector's."""
        if self.threshold is not None:
            return float(self.threshold)
        return float(self._meta["verifier"]["threshold"] if self._verifier else self._meta["threshold"])

    @property
    def candidate_threshold(self) -> float:
        """The detector score down to which candidates are kept (``verifier.candidate_floor`` when it runs)."""
        if self._verifier is None:
            return self.score_threshold
        spec = self._meta["verifier"]
        return candidate_floor(self.score_threshold, float(spec["weight"]), float(spec["candidate_threshold"]))

    @property
    def box_maps(self) -> BoxMaps:
        """The CNN's own box -> tight box (near identity: it is trained on tight boxes), fitted on training faces."""
        m = self._meta.get("box_map")
        return BoxMaps({BOX_MAP_KEY: BoxMap.from_dict(m) if m else BoxMap()})

    def scale_for(self, width: int, height: int) -> float:
        """Input scale: ``min_face`` image pixels -> the network's smallest face, capped by ``max_side``."""
        net_min = float(self._meta.get("min_face_px", 10.0))
        s = net_min / (self.min_face if self.min_face is not None else net_min)
        return min(s, self.max_side / max(width, height))

    def levels(self, width: int, height: int) -> list[tuple[float, float, float]]:
        """(input scale, smallest, largest face side in network pixels) of each pyramid level.

        The network was trained on faces up to the sidecar's ``max_face_px``; a
        face larger than ``band_px`` at one level is left to the next, ``step``
        times smaller, so every level sees faces of the sizes it was trained on.
        Neighbouring bands overlap by ``band_overlap`` (NMS merges the doubles):
        a rolled face's box is not the same size at every scale, and with edge to
        edge bands it can fall between two levels.
        """
        s = self.scale_for(width, height)
        band = float(self.band_px if self.band_px is not None else self._meta.get("band_px", np.inf))
        step = float(self.pyramid_step if self.pyramid_step is not None else self._meta.get("pyramid_step", 0.5))
        ov = float(self.band_overlap if self.band_overlap is not None else self._meta.get("band_overlap", 1.0))
        out: list[tuple[float, float, float]] = []
        while True:
            lo = band * step / ov if out else 0.0
            if not self.pyramid or max(width, height) * s <= band:
                out.append((s, lo, np.inf))
                return out
            out.append((s, lo, band * ov))
            s *= step

    @property
    def flips(self) -> bool:
        return bool(self._meta.get("flip", False)) if self.flip is None else self.flip

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """All faces in an RGB (H, W, 3) or greyscale (H, W) uint8 image, best first."""
        img = to_rgb(image_rgb)
        if img.size == 0:
            return []
        floor = self.candidate_threshold
        levels = self._level_images(img)
        if self.flips:
            boxes_a, scores_a, points_a = self._both_looks(levels, img, floor)
            k = nms(boxes_a, scores_a, self.nms_iou, self.max_faces)  # the two looks' boxes may still overlap
            k = k[scores_a[k] >= floor]
        else:  # one look: _candidates already suppressed and ordered them
            boxes_a, scores_a, points_a = self._candidates(levels, img, floor)
            k = np.arange(len(scores_a))
        if self._verifier is not None and len(k):
            v = self._verifier.probabilities(img, boxes_a[k])
            final = combine(scores_a[k], v, float(self._meta["verifier"]["weight"]))
            keep = np.flatnonzero(final >= self.score_threshold)
            order = keep[np.argsort(-final[keep], kind="stable")]
            scores_a[k[order]] = final[order]
            k = k[order]
        has_points = self._points_output
        return [Detection(boxes_a[i], float(scores_a[i]), BOX_MAP_KEY, points=points_a[i] if has_points else None)
                for i in k]

    def _level_images(self, img: np.ndarray) -> list[tuple[np.ndarray, float, float, float]]:
        """The photo at each pyramid level, with the level's (scale, smallest, largest face side)."""
        h, w = img.shape[:2]
        out, level_img = [], img
        for s, lo, hi in self.levels(w, h):
            level_img = _resized(level_img, img, (max(1, round(w * s)), max(1, round(h * s))))
            out.append((level_img, s, lo, hi))
        return out

    def _both_looks(self, levels: list[tuple[np.ndarray, float, float, float]], img: np.ndarray,
                    floor: float) -> Candidates:
        """Candidates of the photo and of its mirror image, one per face (``merge_mirrored``), not yet suppressed:
        a face whose mean score can reach ``floor`` scores at least ``each_look_floor`` each way round."""
        each = each_look_floor(floor)
        return merge_mirrored(self._candidates(levels, img, each),
                              mirrored(self._candidates(levels, img, each, mirror=True), img.shape[1]))

    def _candidates(self, levels: list[tuple[np.ndarray, float, float, float]], img: np.ndarray, floor: float,
                    mirror: bool = False) -> Candidates:
        """Every level's boxes, scores and five points from ``floor`` up, merged by NMS (``mirror``: of the
        mirrored photo, in its own pixels)."""
        h, w = img.shape[:2]
        found = []
        for level_img, s, lo, hi in levels:
            b, sc, pts = self._run_level(level_img, w, h, floor, mirror)
            side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * s
            keep = (side >= lo) & (side < hi)
            found.append((b[keep], sc[keep], pts[keep]))
        boxes, scores, points = (np.concatenate(parts) for parts in zip(*found))
        k = nms(boxes, scores, self.nms_iou, self.max_faces)
        return boxes[k], scores[k], points[k]

    @property
    def _points_output(self) -> bool:
        """Whether the network also predicts five points per face (a card exported with that head)."""
        return "offsets" in self._meta.get("outputs", {})

    def _run_level(self, img: np.ndarray, w: int, h: int, floor: float, mirror: bool = False) -> Candidates:
        """Boxes and five points (in the pixels of the w x h original; (N, 0, 2) from a network without that
        head) and scores from ``floor`` up, for its resized copy ``img`` (``mirror``: of its mirror image)."""
        nh, nw = img.shape[:2]
        stride = int(self._meta.get("max_stride", 32))
        x = np.zeros((1, 3, nh + (-nh % stride), nw + (-nw % stride)), np.float32)
        # Mirror the bytes before the float copy: ~2x faster than a reversed-stride copy per plane.
        for c, plane in enumerate(cv2.split(cv2.flip(img, 1) if mirror else img)):
            x[0, c, :nh, :nw] = plane  # ~2x faster than one strided transpose copy
        outputs = self._session.run(output_names(self._points_output), {"image": x})
        keep = outputs[0][0] >= floor
        boxes, points = decode_cells(outputs, keep, x.shape[2], x.shape[3], self._meta["strides"])
        sx, sy = nw / w, nh / h
        boxes = (boxes.astype(np.float64) + 0.5) / np.array([sx, sy, sx, sy]) - 0.5
        pts = ((points.astype(np.float64) + 0.5) / np.array([sx, sy]) - 0.5 if points is not None
               else np.zeros((len(boxes), 0, 2)))
        return boxes, outputs[0][0][keep].astype(np.float64), pts


MIRROR_FIVE = [1, 0, 2, 4, 3]  # eyes and mouth corners swap sides in a mirror


def mirrored(found: Candidates, width: int) -> Candidates:
    """Candidates found on the mirrored photo, in the photo's own pixels (left and right points swapped back)."""
    boxes, scores, points = found
    boxes = np.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    if points.shape[1] == len(MIRROR_FIVE):
        points = points[:, MIRROR_FIVE] * np.array([-1.0, 1.0]) + np.array([width - 1.0, 0.0])
    return boxes, scores, points


def merge_mirrored(a: Candidates, b: Candidates, iou: float = 0.5) -> Candidates:
    """One detection per face seen either way round: a pair (IoU >= ``iou``, best first) averages its boxes,
    points and scores; a face seen one way only keeps half its score (the other way said 0)."""
    (ba, sa, pa), (bb, sb, pb) = a, b
    overlap = box_iou(ba, bb) if len(ba) and len(bb) else np.zeros((len(ba), len(bb)))
    order = np.argsort(-sa, kind="stable")
    match = np.full(len(ba), -1)
    free = np.ones(len(bb), bool)
    for i in order[(overlap[order] >= iou).any(axis=1)]:  # most candidates have no partner: skip them
        cand = np.flatnonzero(free & (overlap[i] >= iou))
        if len(cand):
            match[i] = cand[np.argmax(overlap[i, cand])]
            free[match[i]] = False
    m, first = match[order], sa[order]
    paired, j = m >= 0, m[m >= 0]
    boxes, scores, points = ba[order].astype(np.float64), first / 2, pa[order].astype(np.float64)
    boxes[paired] = (boxes[paired] + bb[j]) / 2
    scores[paired] = (first[paired] + sb[j]) / 2
    points[paired] = (points[paired] + pb[j]) / 2
    return (np.concatenate([boxes, bb[free]]).reshape(-1, 4), np.concatenate([scores, sb[free] / 2]),
            np.concatenate([points, pb[free]]).reshape(len(boxes) + int(free.sum()), *pa.shape[1:]))


def _resized(previous: np.ndarray, original: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo at ``size`` (w, h): shrunk from the previous, already smaller level when it can be (halving a
    640 px level is ~4x cheaper than quartering the photo), else from the original."""
    if previous.shape[1::-1] == size:
        return previous
    src = previous if previous.shape[1] >= size[0] and previous.shape[0] >= size[1] else original
    shrink = size[0] < src.shape[1]
    return cv2.resize(src, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
