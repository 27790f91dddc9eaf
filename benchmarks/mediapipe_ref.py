"""MediaPipe Face Mesh on face crops, run inside its own virtual environment.

    python3 -m venv .mpvenv && .mpvenv/bin/pip install mediapipe==0.10.21
    .mpvenv/bin/python benchmarks/mediapipe_ref.py crops.npz out.npz

mediapipe 0.10.21 is the last release whose wheel carries the Face Mesh model
(newer ones download ``face_landmarker.task`` at run time, which this project
never does); it pins numpy<2 and opencv-contrib-python, so it cannot share an
environment with facepoints. ``accuracy.py`` writes the crops, calls this
script, and maps the 468 mesh vertices to the 68 iBUG points.

Input: ``c0``, ``c1``, ... RGB uint8 crops. Output: ``points`` (N, 468, 2) in
crop pixels, NaN where Face Mesh found no face, and ``ms`` per crop.
"""

from __future__ import annotations

import sys
import time

import mediapipe as mp
import numpy as np


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    crops = np.load(src)
    n = len(crops.files)
    out = np.full((n, 468, 2), np.nan, np.float32)
    ms = np.zeros(n)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                         min_detection_confidence=0.3) as mesh:
        for i in range(n):
            img = np.ascontiguousarray(crops[f"c{i}"])
            t = time.perf_counter()
            res = mesh.process(img)
            ms[i] = (time.perf_counter() - t) * 1000
            if res.multi_face_landmarks:
                h, w = img.shape[:2]
                lm = res.multi_face_landmarks[0].landmark
                out[i] = [[p.x * w, p.y * h] for p in lm[:468]]
    np.savez(dst, points=out, ms=ms)


if __name__ == "__main__":
    main()
