"""The applications over many photos, as the CLI runs them: every photo accounted for, outputs in one folder.

Each ``run_*`` reads the photos (EXIF-upright), finds the faces with the
model's ``detect``, writes its pictures and a JSON of per-face results to
``out_dir``, and returns a ``PhotoSummary`` whose text names the photos that
could not be read and those without a face, so none is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facepoints.apps.align import align_face, alignment_matrix, five_points
from facepoints.apps.ar import EFFECTS, apply_effect
from facepoints.apps.expression import expression_cues
from facepoints.apps.points import scheme
from facepoints.apps.pose import draw_pose_axes, head_pose, pose_label
from facepoints.inference import Face, ImageError, LandmarkModel, read_image
from facepoints.jobs import iter_images
from facepoints.viz import draw_faces, save_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

# (photo path, RGB image, faces, output stem) -> (per-face records, files written)
PhotoFn = Callable[[Path, np.ndarray, list[Face], Path], tuple[list[dict], list[Path]]]


@dataclass
class PhotoSummary:
    """What a run over photos did; ``text()`` is what the CLI prints."""

    task: str
    out_dir: Path
    results: Path | None = None
    photos_ok: int = 0
    faces: int = 0
    no_faces: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = list(self.lines)
        out.append(f"{self.task}: {self.photos_ok} photo(s) read, {self.faces} face(s)")
        if self.no_faces:
            out.append(f"no face found in {len(self.no_faces)} photo(s): " + ", ".join(self.no_faces))
        for f, why in self.skipped:
            out.append(f"skipped {f}: {why}")
        if self.written:
            out.append(f"wrote {len(self.written)} file(s) to {self.out_dir} (e.g. {self.written[0].name})")
        if self.results:
            out.append(f"results: {self.results}")
        return "\n".join(out)


def _stem(path: Path, used: set[str]) -> str:
    name, i = path.stem, 1
    while name in used:
        i += 1
        name = f"{path.stem}_{i}"
    used.add(name)
    return name


def run_photos(task: str, paths: Sequence[Path], out_dir: Path, model: LandmarkModel, fn: PhotoFn,
               recursive: bool = True) -> PhotoSummary:
    """Apply ``fn`` to every face-bearing photo under ``paths``; write ``out_dir/<task>.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = PhotoSummary(task, out_dir)
    records = []
    used: set[str] = set()
    for path, problem in iter_images([Path(p) for p in paths], recursive):
        image = None
        if problem is None:
            try:
                image = read_image(path)
            except ImageError as e:
                problem = str(e)
        if image is None:
            summary.skipped.append((str(path), problem or "unreadable"))
            records.append({"file": str(path), "error": problem})
            continue
        summary.photos_ok += 1
        faces = model.detect(image)
        if not faces:
            summary.no_faces.append(str(path))
            records.append({"file": str(path), "faces": [], "error": "no face found"})
            continue
        summary.faces += len(faces)
        face_records, written = fn(path, image, faces, out_dir / _stem(path, used))
        summary.written += written
        records.append({"file": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]),
                        "faces": face_records})
    summary.results = out_dir / f"{task}.json"
    summary.results.write_text(json.dumps({"task": task, "model": model.meta.get("name"), "photos": records},
                                          indent=1) + "\n", encoding="utf-8")
    return summary


def _box(face: Face) -> list[float]:
    return [round(float(v), 2) for v in face.box]


def run_align(paths: Sequence[Path], out_dir: Path, model: LandmarkModel, size: int = 112) -> PhotoSummary:
    """One aligned size x size crop per face (``<photo>_face<k>.png``), ArcFace template."""
    def fn(path: Path, image: np.ndarray, faces: list[Face], stem: Path):
        recs, written = [], []
        for k, face in enumerate(faces):
            target = save_image(f"{stem}_face{k}.png", align_face(image, face.points, size))
            written.append(target)
            recs.append({"box": _box(face), "crop": str(target),
                         "five_points": np.round(five_points(face.points), 2).tolist(),
                         "matrix": np.round(alignment_matrix(face.points, size), 6).tolist()})
        return recs, written

    return run_photos("align", paths, out_dir, model, fn)


def run_pose(paths: Sequence[Path], out_dir: Path, model: LandmarkModel, draw_points: bool = True) -> PhotoSummary:
    """Yaw, pitch and roll of every face; a picture with each face's axes (``<photo>_pose.png``)."""
    lines: list[str] = []

    def fn(path: Path, image: np.ndarray, faces: list[Face], stem: Path):
        size = (image.shape[1], image.shape[0])
        recs = []
        out = draw_faces(image, [(None, f.points) for f in faces], scheme=scheme("ibug68")) if draw_points else image
        for k, face in enumerate(faces):
            pose = head_pose(face.points, size)
            out = draw_pose_axes(out, pose, face.points, size)
            recs.append({"box": _box(face), **pose.to_dict()})
            lines.append(f"{path} face {k}: {pose_label(pose)} (degrees)")
        return recs, [save_image(f"{stem}_pose.png", out)]

    summary = run_photos("pose", paths, out_dir, model, fn)
    summary.lines = lines
    return summary


def run_expression(paths: Sequence[Path], out_dir: Path, model: LandmarkModel) -> PhotoSummary:
    """Expression cues of every face (geometric measurements, not emotions) in ``expression.json``."""
    lines: list[str] = []

    def fn(path: Path, image: np.ndarray, faces: list[Face], stem: Path):
        recs = []
        for k, face in enumerate(faces):
            cues = expression_cues(face.points).to_dict()
            recs.append({"box": _box(face), **cues})
            lines.append(f"{path} face {k}: " + ", ".join(f"{n} {v:.3f}" for n, v in cues.items()))
        return recs, []

    summary = run_photos("expression", paths, out_dir, model, fn)
    summary.lines = lines
    return summary


def run_ar(paths: Sequence[Path], out_dir: Path, model: LandmarkModel, effect: str) -> PhotoSummary:
    """The effect on every face of each photo (``<photo>_<effect>.png``)."""
    if effect not in EFFECTS:
        raise ValueError(f"unknown effect {effect!r}; available: {', '.join(sorted(EFFECTS))}")

    def fn(path: Path, image: np.ndarray, faces: list[Face], stem: Path):
        out = apply_effect(image, [f.points for f in faces], effect)
        return [{"box": _box(f)} for f in faces], [save_image(f"{stem}_{effect}.png", out)]

    return run_photos(f"ar-{effect}", paths, out_dir, model, fn)
