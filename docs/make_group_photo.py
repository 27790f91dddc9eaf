"""Make docs/group.jpg: a crowd of faces found by the shipped detector, with the 68 points of each.

    python docs/make_group_photo.py [--detector facepoints]

Licence-clean by construction: the only face is the package's public-domain
sample (NASA's portrait of Eileen Collins), pasted nine times at different
sizes (24 to 130 pixels from brows to chin), rolls (up to 40 degrees), mirrorings and
lighting onto a 960x640 wall drawn here (gradient and noise). No dataset
face is used. The picture is drawn with each detector, so the
documentation shows what each one finds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import facepoints
from facepoints.cli import sample_image_path
from facepoints.inference import read_image
from facepoints.viz import draw_faces

DOCS = Path(__file__).resolve().parent
# (centre x, centre y, face height in px, roll in degrees, mirrored, brightness)
LAYOUT = [(130, 170, 120, 0, False, 1.0), (340, 150, 80, 15, True, 0.9), (560, 190, 130, -10, False, 1.1),
          (760, 160, 60, 30, True, 0.7), (890, 130, 32, 0, False, 1.0), (140, 470, 50, -40, True, 1.0),
          (370, 460, 100, -25, False, 0.6), (610, 490, 55, 5, True, 1.2), (800, 470, 24, 0, False, 1.0)]


def crowd(seed: int = 0) -> np.ndarray:
    """The 960x640 crowd; each face's size is the height of its 68-point box (brows to chin)."""
    rng = np.random.default_rng(seed)
    h, w = 640, 960
    wall = np.linspace(60, 190, w)[None, :, None] * np.array([0.9, 0.8, 0.7])[None, None]
    canvas = np.clip(wall + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    face = read_image(sample_image_path())
    fh, fw = face.shape[:2]
    pts = facepoints.load(detector="haar").detect(face)[0].points  # where the sample's face is
    box = np.concatenate([pts.min(0), pts.max(0)])
    for cx, cy, size, roll, mirror, light in LAYOUT:
        src, b = ((face[:, ::-1], np.array([fw - 1 - box[2], box[1], fw - 1 - box[0], box[3]])) if mirror
                  else (face, box))
        centre = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2 - 0.15 * (b[3] - b[1]))
        s = size / (b[3] - b[1])
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll, s)
        m[:, 2] += np.array([cx, cy]) - np.array(centre)
        warped = cv2.warpAffine(np.ascontiguousarray(src), m, (w, h),
                                flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        mask = np.zeros((fh, fw), np.float32)
        axes = (int(0.95 * (b[2] - b[0])), int(1.05 * (b[3] - b[1])))
        cv2.ellipse(mask, (int(centre[0]), int(centre[1] + 0.1 * (b[3] - b[1]))), axes, 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.1 * (b[3] - b[1]))
        a = cv2.warpAffine(mask, m, (w, h))[..., None]
        canvas = (np.clip(warped * light, 0, 255) * a + canvas * (1 - a)).astype(np.uint8)
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="facepoints")
    ap.add_argument("--out", type=Path, default=DOCS / "group.jpg")
    args = ap.parse_args()
    image = crowd()
    model = facepoints.load(detector=args.detector)
    faces = model.detect(image)
    drawn = draw_faces(image, [(f.box, f.points) for f in faces], model.scheme)
    text = f"{args.detector}: {len(faces)} of {len(LAYOUT)} faces"
    cv2.putText(drawn, text, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(drawn, text, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(args.out), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out}: {text}")


if __name__ == "__main__":
    main()
