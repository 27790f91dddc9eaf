"""Run a detector over annotated photos and summarise it: recall at its threshold and at a false-positive
budget, AP, a precision-recall plot and milliseconds per photo (``facepoints evaluate-detector``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepoints.detectors.base import Detection, Detector
from facepoints.detectors.metrics import ImageResult, match_image, pr_curve, summarise, threshold_for_fp_budget

PR_FLOOR = 0.02  # the CNN keeps detections down to this score when a whole precision-recall curve is wanted


@dataclass
class LabelledPhoto:
    name: str
    image: np.ndarray  # RGB uint8
    faces: np.ndarray  # (N, 4) boxes that must be found
    ignore: np.ndarray  # (M, 4) boxes that count neither way


@dataclass
class DetectorRun:
    """Every photo's matched detections and the detector's time per photo."""

    name: str
    results: list[ImageResult] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    @property
    def ms_per_photo(self) -> float:
        return 1000 * float(np.median(self.seconds)) if self.seconds else float("nan")

    def report(self, threshold: float, fp_budget: float = 0.05) -> dict:
        """Figures at ``threshold`` (the detector's default) and at the threshold that meets ``fp_budget``."""
        at = summarise(self.results, threshold)
        budget_thr = max(threshold_for_fp_budget(self.results, fp_budget), -np.inf)
        bud = summarise(self.results, budget_thr)
        return {"detector": self.name, "photos": at.images, "faces": at.faces, "threshold": threshold,
                "found": at.found, "recall": at.recall, "false_positives": at.false_positives,
                "fp_per_photo": at.fp_per_image, "ap": at.ap,
                f"recall_at_{fp_budget:g}_fp_per_photo": bud.recall, "budget_threshold": budget_thr,
                "ms_per_photo_median": self.ms_per_photo, "ms_per_photo_mean": 1000 * float(np.mean(self.seconds))}


@dataclass
class LandmarkPipeline:
    """``LandmarkModel.detect`` seen as a detector: the refined tight boxes of the faces it keeps (what users get:
    detector, box map, two re-crops, and detections whose points are not a face dropped)."""

    model: Any  # a facepoints LandmarkModel

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return [Detection(np.asarray(f.box, dtype=np.float64), float(f.detection_score), "landmarks")
                for f in self.model.detect(image_rgb)]


def run_detector(name: str, detector: Detector, photos: Iterable[LabelledPhoto], iou: float = 0.5,
                 box_map: bool = True) -> DetectorRun:
    """Time ``detector.detect`` on every photo and match its boxes, mapped to tight boxes, to the faces."""
    run = DetectorRun(name)
    maps = getattr(detector, "box_maps", None) if box_map else None
    for p in photos:
        t0 = time.perf_counter()
        dets = detector.detect(p.image)
        run.seconds.append(time.perf_counter() - t0)
        boxes = maps.apply(dets) if maps is not None and dets else np.array([d.box for d in dets]).reshape(-1, 4)
        scores = np.array([d.score for d in dets], dtype=np.float64)
        run.boxes.append(boxes)
        run.results.append(match_image(boxes, scores, p.faces, p.ignore, iou))
    return run


def pr_plot(runs: Sequence[DetectorRun], path: str | Path, title: str = "") -> Path:
    """Precision-recall curves of several detectors on one set, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    for run in runs:
        _, precision, recall = pr_curve(run.results)
        ax.plot(recall, precision, label=run.name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def photos_from_wider(annotation: str | Path, images: str | Path | None = None) -> list[LabelledPhoto]:
    """A WIDER FACE annotation file's photos, read as stored (no EXIF turn: boxes are in stored pixels)."""
    from facepoints.datasets import read_image
    from facepoints.datasets.wider import read_wider

    return [LabelledPhoto(w.file, read_image(w.path), w.faces, w.ignore) for w in read_wider(annotation, images)]


def write_json(obj: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)  # type: ignore[arg-type]
    raise TypeError(f"cannot write {type(o).__name__} as JSON")
