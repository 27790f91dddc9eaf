"""The torch-free runtime: ONNX landmark models on onnxruntime, faces found by OpenCV.

A model is an ``.onnx`` file plus a sidecar ``.json`` with the same stem that
says how its input was made (point scheme, crop size, context, channels).
Pre- and post-processing go through ``facepoints.geometry``, the same code that
made the training crops, so a point predicted in the crop lands on the same
image pixel it was taught on. Nothing here imports torch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facepoints.calibration import CalibrationError, ScoreCalibration
from facepoints.card import ModelCard
from facepoints.detectors import DEFAULT_DETECTOR, BoxMaps, Detector, build_detector
from facepoints.detectors.base import onnx_session
from facepoints.face import Face
from facepoints.geometry import check_boxes, clip_to_image, normalised_to_image, prepare_input
from facepoints.images import DEFAULT_MAX_PIXELS, ImageError, ImageLike, as_rgb, decode_image, read_image
from facepoints.model_files import (
    DEFAULT_MODEL,
    ModelError,
    ModelNotFoundError,
    available_models,
    model_dir,
    not_found,
    read_sidecar,
    resolve_model,
)
from facepoints.refine import DUPLICATE_IOU, REFINE_TOL, distinct, first_crops, recrop
from facepoints.schemes import PointScheme, SchemeError, scheme_from_dict

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MODEL", "Face", "ImageError", "LandmarkModel", "ModelError",
           "ModelNotFoundError", "as_rgb", "available_models", "load", "load_any", "model_dir", "read_image",
           "read_sidecar", "resolve_model"]

SIDECAR_KEYS = ("scheme", "input_size", "channels", "context")
MAX_WARP_SIDE = 32766  # cv2.warpAffine asserts on images with a side of 32767 (SHRT_MAX) or more


class LandmarkModel:
    """An exported landmark model: image + face boxes -> points in image pixels.

    ``landmarks`` takes boxes in the training convention (the tight box of the
    points); ``detect`` finds faces itself with the default detector and maps its
    boxes to that convention with the fitted ``BoxMaps``. The mapped box is only
    an estimate, so ``detect`` then re-crops ``refine`` times around the tight
    box of its own points: on held-out faces two passes cut the error with
    detected boxes from 4.6 % to 4.0 % NME (YouTube-Faces test) and from 5.7 % to
    4.9 % (AFW faces the detector finds) for ~2 ms per face, next to ~50-200 ms of
    detection (``benchmarks/detected_boxes.py``).
    The re-crops turn with the face's roll (``upright``, on by default), so a
    face rolled by 45 degrees is seen upright, as in training: on held-out faces
    rolled that far this keeps the error of upright faces instead of doubling it.
    A face whose next crop would move by less than ``refine_tol`` of its side
    keeps its points: on held-out faces that skips ~0.7 of 3 crops per upright
    face with no change in NME (``benchmarks/results/detected_boxes_validation.md``).

    One model may be shared by threads: onnxruntime sessions are thread-safe,
    and the detector (OpenCV's cascades keep per-call buffers) runs under the
    model's lock, so threads get the single-threaded answers but detect one at
    a time. For parallel detection use one model per thread or process
    (``facepoints detect --workers N``).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        threads: int | None = None,
        detector: Detector | str | None = None,
        box_maps: BoxMaps | None = None,
        batch_size: int = 32,
        refine: int = 2,
        convention: str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        flip_average: bool = False,
        min_face_score: float | None = None,
        upright: bool = True,
        refine_tol: float = REFINE_TOL,
        duplicate_iou: float = DUPLICATE_IOU,
    ) -> None:
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise not_found(f"no model file {self.path}")
        self._configure(read_sidecar(self.path), detector=detector, box_maps=box_maps, batch_size=batch_size,
                        refine=refine, convention=convention, max_pixels=max_pixels, flip_average=flip_average,
                        min_face_score=min_face_score, threads=threads, upright=upright, refine_tol=refine_tol,
                        duplicate_iou=duplicate_iou)
        self._session = onnx_session(self.path, threads, ModelError)
        self._fixed_batch = self._check_io()

    def _configure(self, card: ModelCard, *, detector: Detector | str | None, box_maps: BoxMaps | None,
                   batch_size: int, refine: int, convention: str | None, max_pixels: int | None,
                   flip_average: bool = False, min_face_score: float | None = None,
                   threads: int | None = None, upright: bool = True, refine_tol: float = REFINE_TOL,
                   duplicate_iou: float = DUPLICATE_IOU) -> None:
        """Everything but the network: card, scheme, crop settings, detector (shared with CheckpointModel)."""
        self.card = card
        self.meta: dict = card.to_dict()
        try:
            self.scheme: PointScheme = scheme_from_dict(card.scheme)
        except (SchemeError, TypeError, AttributeError) as e:
            raise ModelError(f"model card of {self.path}: bad scheme ({e})") from None
        self.input_size: int = card.input_size
        self.channels: int = card.channels
        self.context: float = card.context
        self.convention = convention or next(iter(card.conventions), "")
        self._shift = self._convention_shift(self.convention)
        self.flip_average = bool(flip_average)
        self._flip = self._flip_table() if self.flip_average else None
        # None: scores stay the raw head output (set it to None to get raw scores from a calibrated model)
        self.calibration: ScoreCalibration | None = self._read_calibration()
        # detect drops detections whose points are not a face; None: the card's cut, 0: keep every detection
        card_cut = self.calibration.not_a_face_below if self.calibration is not None else 0.0
        self.min_face_score = card_cut if min_face_score is None else float(min_face_score)
        if not 0.0 <= self.min_face_score <= 1.0:
            raise ValueError("min_face_score must be between 0 and 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if refine < 0:
            raise ValueError("refine must be 0 or more")
        if not 0.0 <= refine_tol < 1.0:
            raise ValueError("refine_tol must be at least 0 and below 1 (a fraction of the crop's side)")
        self.refine_tol = float(refine_tol)
        if not 0.0 < duplicate_iou <= 1.0:
            raise ValueError("duplicate_iou must be above 0 and at most 1 (1 keeps overlapping faces)")
        self.duplicate_iou = float(duplicate_iou)
        if max_pixels is not None and max_pixels < 1:
            raise ValueError("max_pixels must be at least 1 (or None for no limit)")
        self.batch_size, self.refine, self.max_pixels = batch_size, refine, max_pixels
        # re-crops turn with the face's roll (the line through the scheme's normalising pair) when it has one
        a, b = self.scheme.normalise
        self._roll_pair = (a, b) if upright and self.scheme.normalise_by == "points" and a != b else None
        self.upright = self._roll_pair is not None
        self.detector_spec = detector  # as given: worker processes rebuild the detector from it
        # a detector built here gets the model's thread budget (a one-thread worker must not run a two-thread CNN)
        # and, while the not-a-face cut is in force, the threshold chosen with that cut behind it
        if detector is None or isinstance(detector, str):
            chosen = self.calibration.detector_threshold(detector or DEFAULT_DETECTOR, self.min_face_score) \
                if self.calibration is not None else None
            detector = build_detector(detector, threads=threads, **({} if chosen is None else {"threshold": chosen}))
        self.detector = detector
        self._box_maps = box_maps
        self._lock = threading.Lock()
        self._fixed_batch: int | None = None
        self.crops_run = 0  # landmark crops since load: what refine_tol saves (approximate under threads)

    def _check_io(self) -> int | None:
        """Enforce the contract early, so a wrong model fails at load time with a clear reason."""
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        if "image" not in inputs or not {"points", "scores"} <= outputs:
            raise ModelError(
                f"{self.path} breaks the runtime contract: needs input 'image' and outputs 'points', 'scores'; "
                f"has inputs {sorted(inputs)} and outputs {sorted(outputs)}"
            )
        shape = inputs["image"].shape
        if len(shape) != 4:
            raise ModelError(f"{self.path}: input 'image' must be (N, C, S, S), has shape {shape}")
        expected = (self.channels, self.input_size, self.input_size)
        for got, want, what in zip(shape[1:], expected, ("channels", "height", "width")):
            if isinstance(got, int) and got != want:
                raise ModelError(f"{self.path}: the model's input {what} is {got} but its sidecar says {want}")
        return shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def _read_calibration(self) -> ScoreCalibration | None:
        if not self.card.score_calibration:
            return None
        try:
            cal = ScoreCalibration.from_dict(self.card.score_calibration,
                                             f"model card of {self.path.name}: score_calibration")
        except CalibrationError as e:
            raise ModelError(str(e)) from None
        if cal.num_points != self.scheme.num_points:
            raise ModelError(f"model card of {self.path.name}: score_calibration is for {cal.num_points} points, "
                             f"the scheme has {self.scheme.num_points}; re-run benchmarks/calibrate_scores.py")
        return cal

    def make_faces(self, boxes: np.ndarray, points: np.ndarray, raw: np.ndarray, detection: list[float]) -> list[Face]:
        """Faces with calibrated point scores, a face score and the doubtful flag when the card has a calibration."""
        if self.calibration is None:
            return [Face(boxes[i], points[i], raw[i], detection[i], self.scheme) for i in range(len(boxes))]
        probs = self.calibration.point_probabilities(raw)
        face = self.calibration.face_scores(probs)
        doubtful = self.calibration.doubtful(face)
        return [Face(boxes[i], points[i], probs[i], detection[i], self.scheme, float(face[i]), bool(doubtful[i]))
                for i in range(len(boxes))]

    def _convention_shift(self, name: str) -> np.ndarray | None:
        """Normalised-crop shift from the default output to another annotation convention the model learned."""
        shifts = self.card.conventions
        if not name or not shifts:
            if name:
                raise ModelError(f"{self.path.name} learned one annotation convention; drop convention={name!r}")
            return None
        if name not in shifts:
            raise ModelError(f"{self.path.name} knows the conventions {sorted(shifts)}, not {name!r}")
        return np.asarray(shifts[name], dtype=np.float32)

    def _flip_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(permutation, default offset) for mapping a mirrored crop's answer back."""
        try:
            perm = self.scheme.flip_permutation()
        except SchemeError as e:
            raise ModelError(f"flip averaging needs left/right point pairs: {e}") from None
        k = self.scheme.num_points
        off = np.asarray(self.card.point_offset, dtype=np.float32) if self.card.point_offset else np.zeros((k, 2))
        if off.shape != (k, 2):
            raise ModelError(f"model card of {self.path}: point_offset has shape {off.shape}, not {(k, 2)}")
        return perm, off.astype(np.float32)

    @property
    def box_maps(self) -> BoxMaps:
        """Detector-box -> tight-box maps: the detector's own (fitted on training faces) unless given."""
        if self._box_maps is None:
            with self._lock:
                if self._box_maps is None:
                    self._box_maps = getattr(self.detector, "box_maps", None) or BoxMaps.load()
        return self._box_maps

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.stem)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, model={self.meta.get('model')!r}, "
                f"scheme={self.scheme.name!r}, input_size={self.input_size}, channels={self.channels})")

    def landmarks(self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Points (N, K, 2) in image pixels for N face boxes (x0, y0, x1, y1), tight-box convention.

        Skips the score calibration that ``landmarks_with_scores`` adds: points alone are the hot path.
        """
        return self._clipped(image, boxes)[0]

    def landmarks_with_scores(
        self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points (N, K, 2) clipped to the image, and per-point scores (N, K) in [0, 1].

        Boxes must be finite, real, non-empty, overlap the image and be at most
        ``geometry.MAX_BOX_SCALE`` image sides long; others raise a ValueError naming the box.
        """
        points, scores = self._clipped(image, boxes)
        if self.calibration is not None:
            scores = self.calibration.point_probabilities(scores)
        return points, scores

    def _clipped(self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> tuple[np.ndarray, ...]:
        """Points clipped to the image and raw scores for checked boxes: the path both public calls share."""
        img = as_rgb(image, max_pixels=self.max_pixels)
        h, w = img.shape[:2]
        points, raw = self._predict(img, check_boxes(boxes, (w, h)))
        return clip_to_image(points, w, h), raw

    def _predict(self, img: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped points: refinement needs the box of a face cut by the frame, not of its clipped points."""
        points, scores = self._predict_many([img], [b])
        return points[0], scores[0]

    def _predict_many(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray],
                      angles: Sequence[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per photo, unclipped points and scores of its boxes (crops turned by ``angles``, radians, if given):
        the crops of all photos go through one batched run."""
        k = self.scheme.num_points
        for img, b in zip(images, boxes):
            if len(b) and max(img.shape[:2]) > MAX_WARP_SIDE:
                raise ImageError(f"the image is {img.shape[1]} x {img.shape[0]} pixels; cropping faces needs sides "
                                 f"of at most {MAX_WARP_SIDE} (OpenCV's limit): downscale it first")
        if angles is None:
            angles = [np.zeros(len(b)) for b in boxes]
        prepared = [prepare_input(img, box, self.input_size, self.context, self.channels, float(a))
                    for img, b, ang in zip(images, boxes, angles) for box, a in zip(b, ang)]
        if not prepared:
            return [np.zeros((0, k, 2)) for _ in boxes], [np.zeros((0, k)) for _ in boxes]
        self.crops_run += len(prepared)
        x = np.stack([p[0] for p in prepared]) if len(prepared) > 1 else prepared[0][0][None]
        points, scores = self._network(x)
        if self._shift is not None and points.shape[1:] == self._shift.shape:
            points = points + self._shift
        if points.shape != (len(x), k, 2) or scores.shape != (len(x), k):
            raise ModelError(
                f"{self.path}: expected outputs points {(len(x), k, 2)} and scores {(len(x), k)} for "
                f"scheme {self.scheme.name}, got {points.shape} and {scores.shape}"
            )
        pts = normalised_to_image(points, np.stack([m for _, m in prepared]), self.input_size)
        if len(boxes) == 1:
            return [pts], [scores.astype(np.float64)]
        ends = np.cumsum([len(b) for b in boxes])[:-1]
        return np.split(pts, ends), np.split(scores.astype(np.float64), ends)

    def _network(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised points and raw scores; with ``flip_average``, the mean of the crop's and its mirror's answers
        (lower NME on held-out faces for twice the network time: benchmarks/results/flip_tta.md)."""
        if self._flip is None:
            return self._run(x)
        n, (perm, off) = len(x), self._flip
        p, s = self._run(np.concatenate([x, x[..., ::-1]]))
        if p.shape[1:] != off.shape:
            return p[:n], s[:n]  # the shape check in _predict_many names the problem
        q, qm = p[:n], p[n:][:, perm] - off[perm]
        back = np.stack([1.0 - qm[..., 0], qm[..., 1]], axis=-1)
        return (q + back + off) / 2, (s[:n] + s[n:][:, perm]) / 2

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One session.run per batch; a model exported with a fixed batch size gets padded batches."""
        step = self._fixed_batch or self.batch_size
        points, scores = [], []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            n = len(chunk)
            if self._fixed_batch and n < self._fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self._fixed_batch - n, *chunk.shape[1:]), chunk.dtype)])
            p, s = self._session.run(["points", "scores"], {"image": np.ascontiguousarray(chunk)})
            points.append(np.asarray(p)[:n])
            scores.append(np.asarray(s)[:n])
        if len(points) == 1:
            return points[0], scores[0]
        return np.concatenate(points), np.concatenate(scores)

    @property
    def decode_side(self) -> int | None:
        """Photos read from files may be decoded down to this longer side without losing a face the detector
        can find: it looks at most ``max_side`` pixels, and its smallest face (~20 px there) then still
        fills the model's input crop."""
        side = int(getattr(self.detector, "max_side", 0) or 0)
        return 4 * max(side, self.input_size) if side > 0 else None

    def read(self, path: str | Path):
        """A photo decoded for ``detect`` (reduced when large; ``Decoded.scale`` maps points back)."""
        return decode_image(path, max_pixels=self.max_pixels, min_side=self.decode_side)

    def detect(self, image: ImageLike) -> list[Face]:
        """Every face in the image, best detection first: detector -> box map -> landmarks, then ``refine`` re-crops.

        A path is decoded reduced when the photo is much larger than the
        detector looks at (see ``decode_side``); points come back in the
        original photo's pixels either way.
        """
        if isinstance(image, str | Path):
            decoded = self.read(image)
            return [f.rescaled(decoded.scale) for f in self.detect(decoded.rgb)]
        return self.detect_many([as_rgb(image, max_pixels=self.max_pixels)])[0]

    def detect_many(self, images: Sequence[np.ndarray], detections: Sequence[list] | None = None) -> list[list[Face]]:
        """``detect`` for RGB arrays, with the landmark passes of all photos batched together.

        ``detections`` (the detector's output per photo) may be given when the caller ran the detector itself.
        """
        if detections is None:
            with self._lock:  # OpenCV's cascade classifier is not safe to run from two threads at once
                detections = [self.detector.detect(img) for img in images]
        boxes = [self.box_maps.apply(d) if d else np.zeros((0, 4)) for d in detections]
        firsts = [first_crops(b, d, self.upright) for b, d in zip(boxes, detections)]
        crops, angles = [c for c, _ in firsts], [a for _, a in firsts]
        points, scores = self._predict_many(images, crops, angles)
        for _ in range(self.refine):
            redo = [recrop(b, p, c, a, self._roll_pair, self.refine_tol)
                    for b, p, c, a in zip(boxes, points, crops, angles)]
            if not any(len(r) for r in redo):
                break
            new_p, new_s = self._predict_many(images, [c[r] for c, r in zip(crops, redo)],
                                              [a[r] for a, r in zip(angles, redo)])
            for p, s, r, np_, ns in zip(points, scores, redo, new_p, new_s):
                p[r], s[r] = np_, ns
        faces = []
        for img, dets, b, p, s in zip(images, detections, boxes, points, scores):
            h, w = img.shape[:2]
            found = self.make_faces(b, clip_to_image(p, w, h), s, [float(d.score) for d in dets]) if dets else []
            kept = [f for f in found if f.face_score is None or f.face_score >= self.min_face_score]
            faces.append(distinct(kept, self.duplicate_iou))
        return faces


def load(name_or_path: str | Path | None = None, **kw) -> LandmarkModel:
    """A landmark model: None -> the shipped default, a name -> a shipped model, a path -> that .onnx file.

    Keyword arguments go to ``LandmarkModel`` (threads, detector, box_maps, batch_size, refine); ``detector``
    is a name of ``facepoints.detectors.DETECTORS`` ("facepoints", "haar", "dlib") or a detector object.
    """
    return LandmarkModel(resolve_model(name_or_path), **kw)


CHECKPOINT_SUFFIXES = (".pt", ".pth")


def load_any(name_or_path: str | Path | None = None, **kw) -> LandmarkModel:
    """``load``, plus training checkpoints (``.pt``): a ``CheckpointModel`` with the same methods, run in torch.

    The one place that decides by suffix; torch is imported only for checkpoints.
    """
    if name_or_path is not None and Path(str(name_or_path)).suffix.lower() in CHECKPOINT_SUFFIXES:
        from facepoints.checkpoint_model import CheckpointModel

        return CheckpointModel(name_or_path, **kw)
    return load(name_or_path, **kw)
