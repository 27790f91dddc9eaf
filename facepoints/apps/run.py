"""The applications over many photos, as the CLI runs them: tasks for the one batch runner (``facepoints.batch``).

Each task turns one photo's faces into per-face records (the face record of
``Face.to_dict`` plus the application's own fields) and the pictures it
writes; the runner reads the photos, accounts for every file, and writes
``out_dir/<task>.json``. Tasks are module-level dataclasses so that worker
processes can receive them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from facepoints.apps.align import align_face, alignment_matrix, five_points
from facepoints.apps.ar import EFFECTS, apply_effect
from facepoints.apps.expression import expression_cues
from facepoints.apps.points import scheme
from facepoints.apps.pose import draw_pose_axes, head_pose, pose_label
from facepoints.batch import BatchSummary, Photo, TaskOutput, run_batch
from facepoints.inference import LandmarkModel
from facepoints.viz import draw_faces, save_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
PhotoSummary = BatchSummary  # the name before the runners became one


class AppTask:
    """What the photo apps share: records under "photos"; photos without a face are listed, not processed."""

    name: ClassVar[str]
    records_key: ClassVar[str] = "photos"
    on_empty: ClassVar[bool] = False


@dataclass
class AlignTask(AppTask):
    """One aligned size x size crop per face (``<photo>_face<k>.png``), ArcFace template."""

    size: int = 112
    name: ClassVar[str] = "align"

    def __call__(self, photo: Photo, model: LandmarkModel) -> TaskOutput:
        out = TaskOutput([])
        for k, (face, orig) in enumerate(zip(photo.faces, photo.original_faces())):
            target = save_image(f"{photo.stem}_face{k}.png", align_face(photo.image, face.points, self.size))
            out.files.append(target)
            out.faces.append({**orig.to_dict(), "crop": str(target),
                              "five_points": np.round(five_points(orig.points), 2).tolist(),
                              "matrix": np.round(alignment_matrix(orig.points, self.size), 6).tolist()})
        return out


@dataclass
class PoseTask(AppTask):
    """Yaw, pitch and roll of every face; a picture with each face's axes (``<photo>_pose.png``)."""

    draw_points: bool = True
    name: ClassVar[str] = "pose"

    def __call__(self, photo: Photo, model: LandmarkModel) -> TaskOutput:
        w, h = photo.image.shape[1], photo.image.shape[0]
        picture = photo.image
        if self.draw_points:
            picture = draw_faces(picture, [(None, f.points) for f in photo.faces], scheme=scheme("ibug68"))
        out = TaskOutput([])
        for k, (face, orig) in enumerate(zip(photo.faces, photo.original_faces())):
            pose = head_pose(face.points, (w, h))  # angles do not change with a reduced decode
            picture = draw_pose_axes(picture, pose, face.points, (w, h))
            out.faces.append({**orig.to_dict(), **pose.to_dict()})
            out.lines.append(f"{photo.path} face {k}: {pose_label(pose)} (degrees)")
        out.files.append(save_image(f"{photo.stem}_pose.png", picture))
        return out


@dataclass
class ExpressionTask(AppTask):
    """Expression cues of every face (geometric measurements, not emotions)."""

    name: ClassVar[str] = "expression"

    def __call__(self, photo: Photo, model: LandmarkModel) -> TaskOutput:
        out = TaskOutput([])
        for k, orig in enumerate(photo.original_faces()):
            cues = expression_cues(orig.points).to_dict()
            out.faces.append({**orig.to_dict(), **cues})
            out.lines.append(f"{photo.path} face {k}: " + ", ".join(f"{n} {v:.3f}" for n, v in cues.items()))
        return out


@dataclass
class ArTask(AppTask):
    """The effect on every face of each photo (``<photo>_<effect>.png``)."""

    effect: str = "glasses"

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise ValueError(f"unknown effect {self.effect!r}; available: {', '.join(sorted(EFFECTS))}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"ar-{self.effect}"

    def __call__(self, photo: Photo, model: LandmarkModel) -> TaskOutput:
        picture = apply_effect(photo.image, [f.points for f in photo.faces], self.effect)
        return TaskOutput([f.to_dict() for f in photo.original_faces()],
                          [save_image(f"{photo.stem}_{self.effect}.png", picture)])


def run_align(paths: Sequence[Path], out_dir: Path, model: LandmarkModel, size: int = 112, **kw) -> BatchSummary:
    return run_batch(paths, out_dir, model, AlignTask(size), **kw)


def run_pose(paths: Sequence[Path], out_dir: Path, model: LandmarkModel, draw_points: bool = True,
             **kw) -> BatchSummary:
    return run_batch(paths, out_dir, model, PoseTask(draw_points), **kw)


def run_expression(paths: Sequence[Path], out_dir: Path, model: LandmarkModel, **kw) -> BatchSummary:
    return run_batch(paths, out_dir, model, ExpressionTask(), **kw)


def run_ar(paths: Sequence[Path], out_dir: Path, model: LandmarkModel, effect: str, **kw) -> BatchSummary:
    return run_batch(paths, out_dir, model, ArTask(effect), **kw)
