"""WIDER FACE annotations (``wider_face_{train,val}_bbx_gt.txt``, and the ``afw-scenes`` file in that format).

The format: an image path; a face count; one line per face
``x y w h blur expression illumination invalid occlusion pose`` (integers;
attributes 0 = none/unknown). An image with no face has a count of 0 and,
in the official files, one line of ten zeros that is not a face. ``invalid``
marks faces to ignore: neither targets nor false positives. Boxes are read as
``(x, y, x + w, y + h)``. Nothing here imports torch or a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


class WiderError(ValueError):
    """The annotation file is not in the WIDER FACE format."""


@dataclass
class WiderImage:
    """One annotated photo: all its boxes, which ones to ignore, and the per-face attributes."""

    file: str  # path as written in the annotation file
    path: Path  # resolved image file
    boxes: np.ndarray  # (N, 4) float x0, y0, x1, y1 of every face line, invalid ones included
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) int

    @property
    def invalid(self) -> np.ndarray:
        return self.attributes.get("invalid", np.zeros(len(self.boxes), dtype=np.int64)).astype(bool)

    @property
    def faces(self) -> np.ndarray:
        """Boxes that count: the faces a detector must find."""
        return self.boxes[~self.invalid]

    @property
    def ignore(self) -> np.ndarray:
        """Boxes to ignore (``invalid`` = 1)."""
        return self.boxes[self.invalid]


def _image_root(annotation: Path, first: str) -> Path:
    """Where the listed paths start: beside the file (afw-scenes), or WIDER's WIDER_{split}/images folder."""
    candidates = [annotation.parent]
    m = re.search(r"wider_face_(train|val|test)", annotation.name)
    if m:
        for base in (annotation.parent, annotation.parent.parent):
            candidates += [base / f"WIDER_{m.group(1)}" / "images", base / f"WIDER_{m.group(1)}"]
    for c in candidates:
        if (c / first).is_file():
            return c
    return annotation.parent


def read_wider(annotation: str | Path, images: str | Path | None = None) -> list[WiderImage]:
    """Every image of a WIDER FACE annotation file; ``images`` is the folder the listed paths start from."""
    path = Path(annotation)
    if not path.is_file():
        raise WiderError(f"no annotation file {path}")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    out: list[WiderImage] = []
    root: Path | None = Path(images) if images is not None else None
    i = 0
    while i < len(lines):
        name = lines[i]
        if i + 1 >= len(lines) or not lines[i + 1].isdigit():
            raise WiderError(f"{path}:{i + 2}: expected the face count of {name!r}; is this a WIDER FACE file?")
        count = int(lines[i + 1])
        i += 2
        rows = []
        for k in range(count):
            if i + k >= len(lines):
                raise WiderError(f"{path}: {name} promises {count} faces, the file ends after {k}")
            rows.append(_face_row(lines[i + k], path, i + k + 1))
        i += count
        if count == 0 and i < len(lines) and _is_zero_row(lines[i]):
            i += 1
        if root is None:
            root = _image_root(path, name)
        a = np.array(rows, dtype=np.int64).reshape(-1, 10)
        boxes = np.stack([a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]], axis=1).astype(np.float64)
        attrs = {n: a[:, 4 + j] for j, n in enumerate(ATTRIBUTES)}
        out.append(WiderImage(name, root / name, boxes, attrs))
    return out


def _face_row(line: str, path: Path, lineno: int) -> list[int]:
    parts = line.split()
    if len(parts) < 4:
        raise WiderError(f"{path}:{lineno}: a face line needs at least x y w h, got {line!r}")
    try:
        vals = [int(float(p)) for p in parts[:10]]
    except ValueError:
        raise WiderError(f"{path}:{lineno}: non-numeric face line {line!r}") from None
    return vals + [0] * (10 - len(vals))


def _is_zero_row(line: str) -> bool:
    parts = line.split()
    return len(parts) == 10 and all(p.lstrip("-").replace(".", "").isdigit() and float(p) == 0 for p in parts)


def read_scene_points(image: WiderImage, folder: str | Path | None = None) -> list[np.ndarray | None]:
    """afw-scenes extra: the 68 points of each valid face (``points/<photo>_<k>.pts``), matched to its box.

    The files are numbered by 300-W's face index, not by line, so each file goes
    to the valid box its tight box overlaps most; a face without a file gets None.
    """
    from facepoints.datasets import read_pts

    base = Path(folder) if folder is not None else image.path.parent.parent / "points"
    faces = image.faces
    out: list[np.ndarray | None] = [None] * len(faces)
    for f in sorted(base.glob(f"{Path(image.file).stem}_*.pts")):
        pts = read_pts(f)
        tight = np.concatenate([pts.min(0), pts.max(0)])
        ix = np.clip(np.minimum(faces[:, 2], tight[2]) - np.maximum(faces[:, 0], tight[0]), 0, None)
        iy = np.clip(np.minimum(faces[:, 3], tight[3]) - np.maximum(faces[:, 1], tight[1]), 0, None)
        union = (faces[:, 2] - faces[:, 0]) * (faces[:, 3] - faces[:, 1]) + np.prod(tight[2:] - tight[:2]) - ix * iy
        if len(faces):
            j = int(np.argmax(ix * iy / np.maximum(union, 1e-9)))
            out[j] = pts
    return out
