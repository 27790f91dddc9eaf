"""Head pose (yaw, pitch, roll) from 68 points: a 3-D mean face fitted to the 2-D points with ``cv2.solvePnP``.

Camera assumption (no calibration is known for a user's photo): a pinhole
camera with focal length ``max(width, height)`` pixels (about 53 degrees across
the long side, typical of phones and webcams), principal point at the image
centre, no lens distortion. Angles change little with the focal length guess;
``translation`` (mm) scales with it.

Conventions: the model frame has x to the image right of a frontal face (the
subject's left), y down, z away from the camera, origin at the nose tip, units
mm; ``rotation`` maps model to camera coordinates (OpenCV's x right, y down,
z forward). ``rotation = Rz(roll) @ Ry(-yaw) @ Rx(-pitch)``, so

* yaw > 0: the nose turns towards the image right (the subject turns to their left),
* pitch > 0: the face tilts up,
* roll > 0: the head tilts clockwise in the picture (the eye line falls to the right),

and all three are 0 for a face looking straight into a camera in front of it
(pitch 0 puts the outer eye corners and the mouth corners at the same depth).
A mirrored face has negated yaw and roll and the same pitch.

The mean face was fitted by this project (``benchmarks/fit_face3d.py``) from
the 2-D annotations of the HELEN training photos (AFW tests pose, so it shapes nothing) by rigid structure
from motion, with its depth scaled to anthropometric proportions; it is an average face, so per-person shape
differences show up as a few degrees of bias. Beyond about 30 degrees of yaw
the estimate runs low: in the 68-point markup the far jaw line follows the
visible cheek silhouette, not the bone, so strongly turned faces look less
turned to any rigid model (OpenFace's scan-based 3-D model gives the same
yaws on AFW to within a factor of 0.9). The points used (upper jaw, nose,
eye corners) trade some of that for half the sensitivity to landmark noise
of a jaw-free set, which keeps the angles steady in video.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np

from facepoints.apps.points import RIGID, check_points68, face_size

# x, y, z in mm; see the module docstring for the frame. Written by benchmarks/fit_face3d.py.
MEAN_FACE_68 = np.array(json.loads(resources.files("facepoints").joinpath("assets", "mean_face_68.json")
                                   .read_text(encoding="utf-8"))["points"], dtype=np.float64)
MEAN_FACE_68.flags.writeable = False

AXIS_MM = 60.0  # length of the drawn axes on the face
AXIS_COLORS = ((230, 25, 75), (60, 180, 75), (0, 130, 200))  # x red, up green, forward blue (RGB)


@dataclass
class HeadPose:
    """Head orientation in degrees (conventions in the module docstring) and the full camera pose."""

    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray  # (3, 3) model -> camera
    translation: np.ndarray  # (3,) mm: the nose tip in camera coordinates
    reprojection_error: float = 0.0  # RMS misfit of the points used, in face sizes; large -> not face-like

    def to_dict(self) -> dict:
        return {"yaw": round(self.yaw, 2), "pitch": round(self.pitch, 2), "roll": round(self.roll, 2),
                "translation_mm": [round(float(v), 1) for v in self.translation],
                "reprojection_error": round(self.reprojection_error, 4)}


def camera_matrix(image_size: tuple[int, int], focal: float | None = None) -> np.ndarray:
    """Intrinsics for (width, height); principal point at the centre in the pixel-centres-at-integers convention."""
    w, h = (float(v) for v in image_size)
    if w <= 0 or h <= 0:
        raise ValueError(f"image_size must be (width, height) > 0, got {image_size}")
    f = float(focal) if focal is not None else max(w, h)
    return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) model -> camera rotation for angles in degrees (inverse of ``angles_from_rotation``)."""
    return _rz(math.radians(roll)) @ _ry(-math.radians(yaw)) @ _rx(-math.radians(pitch))


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a model -> camera rotation."""
    r = np.asarray(rotation, dtype=np.float64)
    beta = math.asin(float(np.clip(-r[2, 0], -1.0, 1.0)))
    alpha = math.atan2(r[2, 1], r[2, 2])
    gamma = math.atan2(r[1, 0], r[0, 0])
    return -math.degrees(beta), -math.degrees(alpha), math.degrees(gamma)


def project_model(
    yaw: float, pitch: float, roll: float, image_size: tuple[int, int], *,
    centre: tuple[float, float] | None = None, distance_mm: float = 600.0, focal: float | None = None,
    model: np.ndarray = MEAN_FACE_68,
) -> np.ndarray:
    """(68, 2) image points of the 3-D face at these angles, nose tip at ``centre``: ground truth for tests."""
    k = camera_matrix(image_size, focal)
    cx, cy = centre if centre is not None else (k[0, 2], k[1, 2])
    t = np.array([(cx - k[0, 2]) / k[0, 0] * distance_mm, (cy - k[1, 2]) / k[1, 1] * distance_mm, distance_mm])
    cam = model @ rotation_from_angles(yaw, pitch, roll).T + t
    return cam[:, :2] / cam[:, 2:3] * np.array([k[0, 0], k[1, 1]]) + k[:2, 2]


def head_pose(points68: np.ndarray, image_size: tuple[int, int], focal: float | None = None, *,
              refine: bool = True) -> HeadPose:
    """Yaw, pitch and roll of a face from its 68 points; image_size = (width, height) of the photo they are in.

    Uses the points that barely move with expression (upper jaw, nose, eye
    corners), so smiling or talking does not tilt the estimate. SQPnP finds the
    global optimum of its object-space error; Levenberg-Marquardt then polishes
    the image-space error (``refine=False`` skips that for quick checks).
    """
    pts = check_points68(points68)
    if not np.isfinite(pts).all():
        raise ValueError("head_pose needs 68 finite points")
    k = camera_matrix(image_size, focal)
    obj = np.ascontiguousarray(MEAN_FACE_68[RIGID])
    img = np.ascontiguousarray(pts[RIGID])
    try:
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error as e:  # e.g. every point on one spot: SQPnP asserts on degenerate input
        raise ValueError(f"no head pose for degenerate points ({str(e).strip().splitlines()[-1]})") from None
    if not ok:
        raise ValueError("cv2.solvePnP found no pose for these points")
    if refine:
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, None, rvec, tvec)
    rotation = cv2.Rodrigues(rvec)[0]
    proj = cv2.projectPoints(obj, rvec, tvec, k, None)[0].reshape(-1, 2)
    rms = float(np.sqrt(((proj - img) ** 2).sum(axis=1).mean()))
    yaw, pitch, roll = angles_from_rotation(rotation)
    return HeadPose(yaw, pitch, roll, rotation, tvec.reshape(3).copy(), rms / max(face_size(pts), 1e-9))


def pose_axes_2d(pose: HeadPose, points68: np.ndarray, image_size: tuple[int, int],
                 length_mm: float = AXIS_MM, focal: float | None = None) -> np.ndarray:
    """(4, 2): origin and the ends of the x (subject's left), up and forward axes, origin on the nose tip point."""
    k = camera_matrix(image_size, focal)
    axes = np.array([[0.0, 0.0, 0.0], [length_mm, 0.0, 0.0], [0.0, -length_mm, 0.0], [0.0, 0.0, -length_mm]])
    rvec = cv2.Rodrigues(np.asarray(pose.rotation, dtype=np.float64))[0]
    proj = cv2.projectPoints(axes, rvec, np.asarray(pose.translation, dtype=np.float64), k, None)[0].reshape(-1, 2)
    return proj - proj[0] + check_points68(points68)[30]


def draw_pose_axes(image: np.ndarray, pose: HeadPose, points68: np.ndarray,
                   image_size: tuple[int, int] | None = None, *, thickness: int | None = None) -> np.ndarray:
    """A copy of the RGB image with the head's axes drawn from the nose tip: red x, green up, blue forward."""
    out = np.ascontiguousarray(image).copy()
    size = image_size if image_size is not None else (out.shape[1], out.shape[0])
    ends = pose_axes_2d(pose, points68, size)
    t = thickness if thickness is not None else max(1, round(face_size(points68) / 40))
    shift = 4
    o = tuple(round(float(v) * (1 << shift)) for v in ends[0])
    for end, color in zip(ends[1:], AXIS_COLORS):
        e = tuple(round(float(v) * (1 << shift)) for v in end)
        cv2.arrowedLine(out, o, e, color, t, cv2.LINE_AA, shift, 0.15)
    return out


def pose_label(pose: HeadPose) -> str:
    return f"yaw {pose.yaw:+.0f} pitch {pose.pitch:+.0f} roll {pose.roll:+.0f}"
