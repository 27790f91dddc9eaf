"""Make the pictures of the applications in docs/ from the public-domain sample photo (NASA, Eileen Collins).

    python docs/make_pictures.py [--model default]

Only ``facepoints/assets/astronaut.jpg`` and pictures derived from it are used
(never dataset faces), with the shipped model, so the pictures show what a user
gets; rerun after shipping a new model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import facepoints
from facepoints.apps.align import ARCFACE_112, align_face, five_points
from facepoints.apps.ar import apply_effect
from facepoints.apps.expression import CUE_COLORS, draw_cues, expression_cues
from facepoints.apps.pose import draw_pose_axes, head_pose, pose_label
from facepoints.apps.video import FaceTracker, VideoConfig, draw_tracked
from facepoints.cli import sample_image_path
from facepoints.inference import read_image
from facepoints.testing.synth import Motion, moving_faces
from facepoints.viz import draw_faces, draw_points

DOCS = Path(__file__).resolve().parent


def label(img: np.ndarray, text: str, org: tuple[int, int] = (8, 24), scale: float = 0.6) -> np.ndarray:
    out = img.copy()
    for i, line in enumerate(text.split("\n")):
        y = org[1] + i * int(30 * scale + 6)
        cv2.putText(out, line, (org[0], y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(out, line, (org[0], y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def fit(img: np.ndarray, height: int) -> np.ndarray:
    w = round(img.shape[1] * height / img.shape[0])
    return cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA if img.shape[0] > height else cv2.INTER_CUBIC)


def row(*panels: np.ndarray, height: int = 300, gap: int = 6) -> np.ndarray:
    parts = []
    for p in panels:
        parts += [fit(p, height), np.full((height, gap, 3), 255, np.uint8)]
    return np.hstack(parts[:-1])


def save(name: str, rgb: np.ndarray) -> Path:
    path = DOCS / name
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return path


def moved(image: np.ndarray, angle: float, scale: float, size: tuple[int, int], shift=(0.0, 0.0)) -> np.ndarray:
    m = cv2.getRotationMatrix2D((image.shape[1] / 2, image.shape[0] / 2), angle, scale)
    m[:, 2] += shift
    return cv2.warpAffine(image, m, size, borderMode=cv2.BORDER_REFLECT)


def one_face(model, image: np.ndarray) -> np.ndarray:
    faces = model.detect(image)
    if not faces:
        raise SystemExit("the model found no face in a docs picture; check the model")
    return faces[0].points


def align_picture(model, photo: np.ndarray, pts: np.ndarray, crop: tuple[slice, slice]) -> None:
    """The photo and a rotated, shrunk copy give the same aligned crop."""
    turned = moved(photo, 20, 0.8, (512, 512))
    pts_t = one_face(model, turned)
    panels = []
    for img, p, name in ((photo, pts, "photo"), (turned, pts_t, "rotated 20 deg, scaled 0.8")):
        panels.append(label(draw_points(img, five_points(p), color=(255, 60, 60), radius=4)[crop], name))
    for img, p in ((photo, pts), (turned, pts_t)):
        aligned = cv2.resize(align_face(img, p), (224, 224), interpolation=cv2.INTER_CUBIC)
        aligned = draw_points(aligned, (ARCFACE_112 + 0.5) * 2 - 0.5, color=(60, 255, 60), radius=3)
        panels.append(label(aligned, "aligned 112x112", scale=0.5))
    save("align.jpg", row(*panels, height=260))


def pose_picture(model, photo: np.ndarray, crop: tuple[slice, slice]) -> None:
    """The photo, its mirror image (yaw and roll flip sign) and a tilted copy."""
    panels = []
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    tilted = moved(photo, -15, 1.0, (512, 512))
    for img, name in ((photo, "photo"), (mirrored, "mirrored"), (tilted, "tilted 15 deg")):
        p = one_face(model, img)
        size = (img.shape[1], img.shape[0])
        hp = head_pose(p, size)
        out = draw_pose_axes(draw_faces(img, [(None, p)], scheme=model.scheme, radius=2), hp, p, size, thickness=3)
        panels.append(label(out[crop], f"{name}\n{pose_label(hp)}"))
    save("pose.jpg", row(*panels))


def expression_picture(photo: np.ndarray, pts: np.ndarray) -> None:
    """The measured segments and their values."""
    cues = expression_cues(pts)
    face = cv2.resize(draw_cues(photo, pts, thickness=1)[60:230, 150:320], (340, 340), interpolation=cv2.INTER_CUBIC)
    board = np.full((340, 400, 3), 250, np.uint8)
    rows_ = [("eyes", f"eye openness L {cues.left_eye_openness:.2f} R {cues.right_eye_openness:.2f}"),
             ("mouth", f"mouth openness {cues.mouth_openness:.3f}"),
             ("smile", f"smile width {cues.smile_width:.2f}"),
             ("brows", f"brow raise {cues.brow_raise:.2f}")]
    for i, (key, text) in enumerate(rows_):
        y = 60 + 55 * i
        cv2.line(board, (15, y - 6), (45, y - 6), CUE_COLORS[key], 4, cv2.LINE_AA)
        cv2.putText(board, text, (55, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.putText(board, "ratios of lengths on the face:", (15, 290), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (90, 90, 90), 1,
                cv2.LINE_AA)
    cv2.putText(board, "geometry, not an emotion classifier", (15, 315), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (90, 90, 90),
                1, cv2.LINE_AA)
    save("expression.jpg", row(face, board, height=340))


def ar_picture(model, photo: np.ndarray) -> None:
    """Several faces in one picture (copies of the sample face), glasses and a moustache."""
    group = np.full((420, 900, 3), 235, np.uint8)
    placements = ((0, 0.62, (-40, -20), False), (-14, 0.5, (300, 30), True), (12, 0.55, (560, -10), False))
    for angle, scale, shift, flip in placements:
        src = np.ascontiguousarray(photo[:, ::-1]) if flip else photo
        m = cv2.getRotationMatrix2D((256, 256), angle, scale)
        m[:, 2] += shift
        mask = cv2.warpAffine(np.full(photo.shape[:2], 255, np.uint8), m, (900, 420))
        warped = cv2.warpAffine(src, m, (900, 420))
        group[mask > 0] = warped[mask > 0]
    faces = model.detect(group)
    print(f"AR picture: {len(faces)} faces")
    save("ar.jpg", np.vstack([label(apply_effect(group, [f.points for f in faces], "glasses"), "--effect glasses"),
                              np.full((6, 900, 3), 255, np.uint8),
                              label(apply_effect(group, [f.points for f in faces], "moustache"),
                                    "--effect moustache")]))


def video_picture(model, photo: np.ndarray, pts: np.ndarray) -> None:
    """Frames of a tracked clip (the sample face and its mirror image moving): ids, points, pose, glasses."""
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    mirror_pts = pts.copy()
    mirror_pts[:, 0] = photo.shape[1] - 1 - mirror_pts[:, 0]
    mirror_pts = mirror_pts[model.scheme.flip_permutation()]
    clip = list(moving_faces([(photo, pts), (mirrored, mirror_pts)], 61, (640, 360), Motion(angle=15), seed=4))
    cfg = VideoConfig(effect="glasses")
    tracker = FaceTracker(model, cfg)
    shots = []
    for i, (frame, _) in enumerate(clip):
        faces_ = tracker.step(frame, i / 30)
        if i % 30 == 0:
            shots.append(label(draw_tracked(frame, faces_, cfg), f"frame {i}"))
    save("video.jpg", row(*shots, height=240))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    model = facepoints.load(args.model)
    photo = read_image(sample_image_path())
    pts = one_face(model, photo)
    crop = (slice(20, 300), slice(90, 370))
    align_picture(model, photo, pts, crop)
    pose_picture(model, photo, crop)
    expression_picture(photo, pts)
    ar_picture(model, photo)
    video_picture(model, photo, pts)


if __name__ == "__main__":
    main()
