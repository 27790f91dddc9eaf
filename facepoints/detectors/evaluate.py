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

from facepoints.detectors.base import Detection, Detector, box_iou
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
    sure_only: bool = False  # drop the faces flagged doubtful, as a user who filters on ``Face.doubtful`` does

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return [Detection(np.asarray(f.box, dtype=np.float64), float(f.detection_score), "landmarks")
                for f in self.model.detect(image_rgb) if not (self.sure_only and f.doubtful)]


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


def mistakes_grid(run: DetectorRun, photos: Sequence[LabelledPhoto], threshold: float, path: str | Path,
                  tile: int = 96, cols: int = 12, limit: int = 240) -> tuple[int, int]:
    """Every false detection (green: score, width) and every missed face (red: width) at ``threshold``, as tiles.

    At most ``limit`` tiles of each kind are drawn; returns the counts of
    (false detections, missed faces). Annotators leave faces out, so
    looking is the only way to tell a detector's mistakes from theirs.
    """
    import cv2

    def crop(img: np.ndarray, b: np.ndarray, label: str, colour: tuple[int, int, int]) -> np.ndarray:
        m = 0.3 * (b[2] - b[0]) + 1
        pad = int(np.ceil(m)) + 1
        big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
        x0, y0, x1, y1 = (int(round(v + pad)) for v in (b[0] - m, b[1] - m, b[2] + m, b[3] + m))
        c = cv2.resize(big[max(0, y0):y1, max(0, x0):x1], (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(c, label, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
        return c

    false, missed = [], []
    for p, r, boxes in zip(photos, run.results, run.boxes):
        keep = r.scores >= threshold
        false += [crop(p.image, boxes[i], f"{r.scores[i]:.2f} {boxes[i][2] - boxes[i][0]:.0f}", (0, 255, 0))
                  for i in np.where((r.outcome == 0) & keep)[0]]
        hits = boxes[(r.outcome == 1) & keep]
        for f in p.faces:
            if not len(hits) or box_iou(f, hits).max() < 0.5:
                missed.append(crop(p.image, f, f"{f[2] - f[0]:.0f}", (255, 0, 0)))
    counts = len(false), len(missed)
    false, missed = false[:limit], missed[:limit]
    tiles = false + [np.zeros((tile, tile, 3), np.uint8)] * (-len(false) % cols) + missed
    tiles += [np.zeros((tile, tile, 3), np.uint8)] * (-len(tiles) % cols)
    if tiles:
        rows = [np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return counts


def photos_from_wider(annotation: str | Path, images: str | Path | None = None
                      ) -> tuple[list[LabelledPhoto], list[tuple[str, str]]]:
    """A WIDER FACE annotation file's photos, read as stored (no EXIF turn: boxes are in stored pixels), and the
    listed photos that are missing or do not decode, each with its reason: as in every batch command, one bad
    photo does not stop the others."""
    from facepoints.datasets import read_image
    from facepoints.datasets.core import DataError
    from facepoints.datasets.wider import read_wider

    photos, skipped = [], []
    for w in read_wider(annotation, images):
        try:
            photos.append(LabelledPhoto(w.file, read_image(w.path), w.faces, w.ignore))
        except (FileNotFoundError, DataError) as e:
            skipped.append((w.file, str(e)))
    return photos, skipped


def write_json(obj: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)  # type: ignore[arg-type]
    raise TypeError(f"cannot write {type(o).__name__} as JSON")
