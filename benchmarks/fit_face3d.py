"""Fit the 68-point 3-D mean face used by ``facepoints.apps.pose`` from 2-D annotations.

    python benchmarks/fit_face3d.py [--data ../shared/data] [--eye-depth 45]

Rigid structure from motion: every annotated face is the same 3-D shape seen
under its own scaled-orthographic pose; poses and shape are fitted by
alternating least squares, starting from the rank-3 (Tomasi-Kanade)
factorisation, with each face also used mirrored so the shape is symmetric.
Poses are fitted on the inner points (17-67) because 300-W puts the jaw points
on the visible silhouette, which slides over a turned face.

2-D points fix the x/y layout well but the depth scale only weakly (it rests on
the foreshortening of a few strongly turned faces): the fit puts the outer eye
corners ~60-70 mm behind the nose tip on each of AFW, HELEN and YouTube Faces (the
shipped shape is fitted on HELEN training photos only: AFW tests pose),
about 1.5x what 3-D face scans show. So depth is rescaled once, so that the
outer eye corners lie ``--eye-depth`` mm behind the nose tip (anthropometric
estimate; OpenFace's scan-based model has 44 mm). Writes the shape that
``facepoints/apps/pose.py`` loads (facepoints/assets/mean_face_68.json) and benchmarks/results/face3d.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facepoints.config import data_root
from facepoints.datasets import read_pts
from facepoints.schemes import load_scheme

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import provenance  # noqa: E402

INNER = np.arange(17, 68)
EYE_CORNER_MM = 90.0  # outer eye corner distance of an average adult (ex-ex)


def fit_rigid_shape(shapes: np.ndarray, flip: np.ndarray, iters: int = 60) -> np.ndarray:
    """(F, 68, 2) annotated shapes -> (68, 3) shape in an arbitrary frame and scale."""
    w = shapes - shapes.mean(axis=1, keepdims=True)
    mirrored = w[:, flip] * np.array([-1.0, 1.0])
    w = np.concatenate([w, mirrored])
    w /= np.sqrt((w ** 2).sum(axis=(1, 2)))[:, None, None]
    _, s, vt = np.linalg.svd(w.transpose(0, 2, 1).reshape(-1, w.shape[1]), full_matrices=False)
    shape = vt[:3].T * s[:3]
    for _ in range(iters):
        a = np.zeros((3, 3))
        b = np.zeros((w.shape[1], 3))
        for face in w:
            u, _, v = np.linalg.svd(face[INNER].T @ shape[INNER], full_matrices=False)
            r = u @ v
            proj = shape[INNER] @ r.T
            scale = (face[INNER] * proj).sum() / (proj * proj).sum()
            a += scale * scale * r.T @ r
            b += scale * face @ r
        shape = np.linalg.solve(a, b.T).T
        shape -= shape.mean(axis=0)
    return shape


def to_face_frame(shape: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """x across the symmetry plane to the image right, y down the eye-mouth line, z away from the camera.

    Pitch 0 therefore means the outer eye corners and the mouth corners are at
    the same depth; the origin is the nose tip (point 30).
    """
    def frame(s: np.ndarray) -> np.ndarray:
        x = np.linalg.svd(s - s[flip], full_matrices=False)[2][0]
        if (s[45] - s[36]) @ x < 0:
            x = -x
        down = (s[48] + s[54]) / 2 - (s[36] + s[45]) / 2
        y = down - (down @ x) * x
        y /= np.linalg.norm(y)
        return (s - s[30]) @ np.stack([x, y, np.cross(x, y)]).T

    out = frame(shape)
    if out[30, 2] > out[[36, 45, 48, 54], 2].mean():  # orthographic depth sign is free: nose goes in front
        out = frame(shape * np.array([1.0, 1.0, -1.0]))
    out = (out + out[flip] * np.array([-1.0, 1.0, 1.0])) / 2
    return out * EYE_CORNER_MM / np.linalg.norm(out[45] - out[36])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=data_root())
    ap.add_argument("--eye-depth", type=float, default=45.0, help="mm of the outer eye corners behind the nose tip")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "face3d.json")
    args = ap.parse_args()

    flip = load_scheme("ibug68").flip_permutation()
    # training photos only: AFW is a test set (it tests head pose), so it must not shape the 3-D face
    files = sorted((args.data / "300w-68" / "helen" / "trainset").glob("*.pts"))
    shapes = np.stack([read_pts(f) for f in files])
    fitted = to_face_frame(fit_rigid_shape(shapes, flip), flip)
    raw_eye_depth = float(fitted[[36, 45], 2].mean())
    model = fitted * np.array([1.0, 1.0, args.eye_depth / raw_eye_depth])
    print(f"{len(files)} faces (x2 mirrored); fitted eye-corner depth {raw_eye_depth:.1f} mm -> {args.eye_depth} mm")
    prov = provenance()
    points = np.round(model, 2).tolist()
    asset = ROOT / "facepoints" / "assets" / "mean_face_68.json"
    asset.write_text(json.dumps({"source": "benchmarks/fit_face3d.py", "units": "mm", "points": points}) + "\n",
                     encoding="utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"provenance": prov, "faces": len(files),
                                    "fitted_eye_depth_mm": round(raw_eye_depth, 2),
                                    "eye_depth_mm": args.eye_depth, "points": points}, indent=1) + "\n",
                        encoding="utf-8")
    print(f"wrote {asset} and {args.out}")


if __name__ == "__main__":
    main()
