"""The torch-free runtime: ONNX landmark models on onnxruntime, faces found by OpenCV.

A model is an ``.onnx`` file plus a sidecar ``.json`` with the same stem that
says how its input was made (point scheme, crop size, context, channels).
Pre- and post-processing go through ``facepoints.geometry``, the same code that
made the training crops, so a point predicted in the crop lands on the same
image pixel it was taught on. Nothing here imports torch.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from facepoints.detectors import BoxMaps, Detector, build_detector
from facepoints.geometry import clip_to_image, normalised_to_image, prepare_input
from facepoints.schemes import PointScheme, SchemeError, scheme_from_dict

DEFAULT_MODEL = "default"
DETECTOR_MODEL = "detector"  # weights/detector.onnx is the face detector (facepoints.detectors.cnn), not a landmark model
SIDECAR_KEYS = ("scheme", "input_size", "channels", "context")
ImageLike = np.ndarray | str | Path | Image.Image
MAX_WARP_SIDE = 32766  # cv2.warpAffine asserts on images with a side of 32767 (SHRT_MAX) or more


class ImageError(ValueError):
    """An image cannot be read or is not an image array the models can use."""


class ModelError(ValueError):
    """A model file or its sidecar is missing, unreadable or breaks the runtime contract."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """No model by that name or path; the message lists the models that do exist."""


@dataclass(eq=False)  # identity equality: comparing numpy arrays with == would raise
class Face:
    """One face: the box the landmarks were predicted in, its points in image pixels and their confidences."""

    box: np.ndarray  # (4,) float x0, y0, x1, y1: the box of the last landmark pass (tight-box convention)
    points: np.ndarray  # (K, 2) float image pixels (facepoints.geometry convention)
    scores: np.ndarray  # (K,) float in [0, 1]
    detection_score: float  # the detector's margin; higher is more face-like, not a probability


# ---------------------------------------------------------------- images


def read_image(path: str | Path) -> np.ndarray:
    """A user's photo as RGB uint8 (H, W, 3), turned upright by its EXIF orientation.

    Unlike ``facepoints.data.read_image`` (dataset annotations are in stored
    pixel coordinates, so datasets must not be rotated), a phone photo should
    be seen as its owner sees it. Transparent pixels are composited on white,
    16-bit images are scaled to 8 bits, greyscale is repeated to 3 channels.
    """
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()  # decode now: a truncated file raises here, not as a grey half-image later
            try:
                upright = ImageOps.exif_transpose(im)
            except Exception as e:  # noqa: BLE001 - broken EXIF: the pixels are still fine
                warnings.warn(f"{p}: ignoring unreadable EXIF orientation ({e})", stacklevel=2)
                upright = im
            return _pil_to_rgb(upright if upright is not None else im)
    except FileNotFoundError:
        raise ImageError(f"cannot read image {p}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"cannot read image {p}: it is a folder") from None
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt or foreign data
        raise ImageError(f"cannot read image {p}: {type(e).__name__}: {e}") from None


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I;16"):
        a = np.asarray(im, dtype=np.float64) / 257.0
        return np.repeat(np.round(a).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("I", "F"):
        return as_rgb(np.asarray(im))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def as_rgb(image: ImageLike) -> np.ndarray:
    """Whatever the user passed -> RGB uint8 (H, W, 3).

    Paths are read with ``read_image``; arrays may be greyscale (H, W) or
    (H, W, 1), RGB, or RGBA (alpha dropped); uint16 is scaled to 8 bits, floats
    in [0, 1] are scaled by 255 and other floats are taken as 0-255 values.
    """
    if isinstance(image, str | Path):
        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"expected an image array (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"the image is empty (shape {a.shape})")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = np.round(a / 257.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        finite = a[np.isfinite(a)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        a = np.nan_to_num(a * scale).round().clip(0, 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.clip(0, 255).astype(np.uint8)
    else:
        raise ImageError(f"cannot use an image array of dtype {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------- models


def model_dir() -> Path:
    """Folder of the models shipped inside the package."""
    return Path(str(resources.files("facepoints") / "weights"))


def available_models() -> list[str]:
    """Names of the shipped landmark models (``load(name)`` accepts them); the face detector is not one."""
    folder = model_dir()
    return sorted(p.stem for p in folder.glob("*.onnx") if p.stem != DETECTOR_MODEL) if folder.is_dir() else []


def _not_found(what: str) -> ModelNotFoundError:
    names = available_models()
    listed = ", ".join(names) if names else f"none (no .onnx files in {model_dir()})"
    return ModelNotFoundError(f"{what}; available models: {listed}; or pass the path of an .onnx file")


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """None -> the shipped default model, a bare name -> a shipped model, anything path-like -> that file."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    if isinstance(name_or_path, Path):
        if not name_or_path.is_file():
            raise _not_found(f"no model file {name_or_path}")
        return name_or_path
    text = str(name_or_path)
    if Path(text).is_file():
        return Path(text)
    if "/" in text or "\\" in text or text.lower().endswith(".onnx"):
        raise _not_found(f"no model file {text}")
    path = model_dir() / f"{text}.onnx"
    if not path.is_file():
        raise _not_found(f"no model named {text!r}")
    return path


def read_sidecar(onnx_path: str | Path) -> dict:
    """The sidecar JSON beside a model, checked for the fields inference needs."""
    side = Path(onnx_path).with_suffix(".json")
    if not side.is_file():
        raise ModelError(
            f"model {onnx_path} has no sidecar {side.name} beside it; the sidecar holds the point scheme "
            "and crop settings, without which the model's output cannot be mapped back to the image"
        )
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read model sidecar {side}: {e}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"model sidecar {side} must hold a JSON object")
    missing = [k for k in SIDECAR_KEYS if k not in meta]
    if missing:
        raise ModelError(f"model sidecar {side} lacks {', '.join(missing)}")
    try:
        size, channels, context = int(meta["input_size"]), int(meta["channels"]), float(meta["context"])
    except (TypeError, ValueError) as e:
        raise ModelError(f"model sidecar {side}: bad input_size/channels/context ({e})") from None
    if size <= 0 or channels not in (1, 3) or not context > 0:
        raise ModelError(f"model sidecar {side}: need input_size > 0, channels 1 or 3, context > 0")
    return meta


class LandmarkModel:
    """An exported landmark model: image + face boxes -> points in image pixels.

    ``landmarks`` takes boxes in the training convention (the tight box of the
    points); ``detect`` finds faces itself with the Haar detector and maps its
    boxes to that convention with the fitted ``BoxMaps``. The mapped box is only
    an estimate, so ``detect`` then re-crops ``refine`` times around the tight
    box of its own points: on held-out faces two passes cut the error with
    detected boxes from 4.6 % to 4.0 % NME (YouTube-Faces test) and from 5.7 % to
    4.9 % (AFW faces the detector finds) for ~2 ms per face, next to ~50-200 ms of
    detection (``benchmarks/detected_boxes.py``).
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
    ) -> None:
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise _not_found(f"no model file {self.path}")
        self.meta: dict = read_sidecar(self.path)
        try:
            self.scheme: PointScheme = scheme_from_dict(self.meta["scheme"])
        except (SchemeError, TypeError, AttributeError) as e:
            raise ModelError(f"model sidecar of {self.path}: bad scheme ({e})") from None
        self.input_size: int = int(self.meta["input_size"])
        self.channels: int = int(self.meta["channels"])
        self.context: float = float(self.meta["context"])
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        if refine < 0:
            raise ValueError("refine must be 0 or more")
        self.refine = refine
        self.detector = build_detector(detector, threads=threads) if detector is None or isinstance(detector, str) \
            else detector
        self._box_maps = box_maps
        options = ort.SessionOptions()
        if threads is not None:
            if threads < 1:
                raise ValueError("threads must be at least 1 (or None for onnxruntime's default)")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(f"onnxruntime cannot load {self.path}: {e}") from None
        self._fixed_batch = self._check_io()

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

    @property
    def box_maps(self) -> BoxMaps:
        """Detector-box -> tight-box maps: the detector's own (fitted on training faces) unless given."""
        if self._box_maps is None:
            self._box_maps = getattr(self.detector, "box_maps", None) or BoxMaps.load()
        return self._box_maps

    def __repr__(self) -> str:
        return (f"LandmarkModel({str(self.path)!r}, model={self.meta.get('model')!r}, scheme={self.scheme.name!r}, "
                f"input_size={self.input_size}, channels={self.channels})")

    def landmarks(self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Points (N, K, 2) in image pixels for N face boxes (x0, y0, x1, y1), tight-box convention."""
        return self.landmarks_with_scores(image, boxes)[0]

    def landmarks_with_scores(
        self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points (N, K, 2) clipped to the image, and per-point scores (N, K) in [0, 1]."""
        img = as_rgb(image)
        points, scores = self._predict(img, _check_boxes(boxes))
        h, w = img.shape[:2]
        return clip_to_image(points, w, h), scores

    def _predict(self, img: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped points: refinement needs the box of a face cut by the frame, not of its clipped points."""
        k = self.scheme.num_points
        if len(b) == 0:
            return np.zeros((0, k, 2)), np.zeros((0, k))
        if max(img.shape[:2]) > MAX_WARP_SIDE:
            raise ImageError(f"the image is {img.shape[1]} x {img.shape[0]} pixels; cropping faces needs sides of "
                             f"at most {MAX_WARP_SIDE} (OpenCV's limit): downscale it first")
        prepared = [prepare_input(img, box, self.input_size, self.context, self.channels) for box in b]
        x = np.stack([p[0] for p in prepared]).astype(np.float32, copy=False)
        points, scores = self._run(x)
        if points.shape != (len(b), k, 2) or scores.shape != (len(b), k):
            raise ModelError(
                f"{self.path}: expected outputs points {(len(b), k, 2)} and scores {(len(b), k)} for "
                f"scheme {self.scheme.name}, got {points.shape} and {scores.shape}"
            )
        out = np.stack([normalised_to_image(points[i], m, self.input_size) for i, (_, m) in enumerate(prepared)])
        return out, scores.astype(np.float64)

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
        return np.concatenate(points), np.concatenate(scores)

    def detect(self, image: ImageLike) -> list[Face]:
        """Every face in the image, best detection first: detector -> box map -> landmarks, then ``refine`` re-crops."""
        img = as_rgb(image)
        detections = self.detector.detect(img)
        if not detections:
            return []
        boxes = self.box_maps.apply(detections)
        points, scores = self._predict(img, boxes)
        for _ in range(self.refine):
            good = np.isfinite(points).all(axis=(1, 2))
            if not good.any():
                break
            boxes[good] = _tight_boxes(points[good])
            points[good], scores[good] = self._predict(img, boxes[good])
        h, w = img.shape[:2]
        points = clip_to_image(points, w, h)
        return [Face(boxes[i], points[i], scores[i], float(d.score)) for i, d in enumerate(detections)]


def _tight_boxes(points: np.ndarray) -> np.ndarray:
    """(N, K, 2) -> (N, 4): the model's box convention, the tight box of the points."""
    return np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)


def _check_boxes(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be an (N, 4) array of x0, y0, x1, y1, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes must be finite")
    return b


def load(name_or_path: str | Path | None = None, **kw) -> LandmarkModel:
    """A landmark model: None -> the shipped default, a name -> a shipped model, a path -> that .onnx file.

    Keyword arguments go to ``LandmarkModel`` (threads, detector, box_maps, batch_size, refine); ``detector``
    is a name of ``facepoints.detectors.DETECTORS`` ("facepoints", "haar", "dlib") or a detector object.
    """
    return LandmarkModel(resolve_model(name_or_path), **kw)
