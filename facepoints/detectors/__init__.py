"""Face detectors behind one contract: ``detect(rgb uint8) -> [Detection]`` best first, plus ``box_maps``.

``DETECTORS`` maps a name to a backend class; ``build_detector(name, **kw)``
makes one. Every backend's boxes go through its ``box_maps`` to the landmark
model's convention (the tight box of the 68 points), each map fitted on
training faces only.

- ``facepoints``: the project's own CNN (``cnn.py``), the default: it beats Haar on the held-out photos;
- ``haar``: OpenCV's Haar cascades (``haar.py``), the first detector;
- ``dlib``: dlib's HOG detector (``dlib_hog.py``), with ``pip install 'facepoints[dlib]'``.
"""

from __future__ import annotations

from typing import Any

from facepoints.detectors.base import Detection, Detector, DetectorError, box_iou, nms, to_grey
from facepoints.detectors.boxmap import BOX_MAP_FORMAT, BoxMap, BoxMaps, box_map_residuals, fit_box_map
from facepoints.detectors.cnn import CnnDetector
from facepoints.detectors.dlib_hog import DlibHogDetector
from facepoints.detectors.haar import FRONTAL_CASCADE, PROFILE_CASCADE, FaceDetector, cascade_path, merge_detections

HaarDetector = FaceDetector
DETECTORS: dict[str, type] = {"facepoints": CnnDetector, "haar": FaceDetector, "dlib": DlibHogDetector}
DEFAULT_DETECTOR = "facepoints"  # beats Haar on held-out photos (benchmarks/results/detector_validation.md)


def build_detector(name: str | None = None, **kw: Any) -> Detector:
    """A detector by registry name (None: the default) with its options, e.g. ``build_detector("dlib", upsample=0)``."""
    key = DEFAULT_DETECTOR if name is None else str(name).lower()
    if key not in DETECTORS:
        raise DetectorError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    try:
        return DETECTORS[key](**kw)
    except TypeError as e:
        raise DetectorError(f"detector {key!r}: bad option ({e})") from None


__all__ = [
    "BOX_MAP_FORMAT", "DEFAULT_DETECTOR", "DETECTORS", "FRONTAL_CASCADE", "PROFILE_CASCADE", "BoxMap", "BoxMaps",
    "CnnDetector", "Detection", "Detector", "DetectorError", "DlibHogDetector", "FaceDetector", "HaarDetector",
    "box_iou", "box_map_residuals", "build_detector", "cascade_path", "fit_box_map", "merge_detections", "nms",
    "to_grey",
]
