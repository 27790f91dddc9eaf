"""Test videos with known ground truth: still faces moved by smooth similarity transforms plus camera noise.

Camera noise is a low-frequency shake, sensor noise and JPEG compression.

The true points of every frame are the annotated (or reference) points moved
by the same transform as the pixels, so tracking error and jitter can be
measured exactly on real faces without video annotation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facepoints.geometry import apply_affine


@dataclass
class Motion:
    """Amplitudes of the smooth motion (sums of two sines per parameter, random phases)."""

    shift: float = 0.12  # translation amplitude, fraction of the face's slot width/height
    angle: float = 12.0  # rotation amplitude, degrees
    scale: float = 0.12  # relative scale amplitude
    period: float = 90.0  # frames of the slowest component
    shake_px: float = 0.4  # hand-held camera shake: random shift low-passed to a few Hz (pixels, std)
    noise: float = 2.0  # sensor noise: Gaussian grey levels (std)
    jpeg_quality: int | None = 85  # compression of every frame, as a video codec would (None: off)


def _similarity(centre_from: np.ndarray, centre_to: np.ndarray, angle_deg: float, scale: float) -> np.ndarray:
    a = np.radians(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([r, (centre_to - r @ centre_from)[:, None]])


def _smooth_noise(rng: np.random.Generator, n: int, std: float, sigma_frames: float = 2.0) -> np.ndarray:
    """(n, 2) Gaussian noise low-passed by a Gaussian of ``sigma_frames`` (about 2-3 Hz at 30 frames/s).

    Real shake is a wobble, not an independent jump every frame; white shake
    would be true motion that no smoother should follow, and would put a jitter
    floor into the ground truth itself.
    """
    if std <= 0 or n == 0:
        return np.zeros((n, 2))
    pad = int(4 * sigma_frames)
    raw = rng.normal(0.0, 1.0, (n + 2 * pad, 2))
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / sigma_frames) ** 2)
    k /= np.sqrt((k ** 2).sum())  # unit-variance output, whatever n is
    return std * np.stack([np.convolve(raw[:, d], k, mode="valid") for d in range(2)], axis=1)


def face_paths(n_faces: int, n_frames: int, frame_size: tuple[int, int], eye_px: Sequence[float],
               eye_centres: Sequence[np.ndarray], motion: Motion, seed: int = 0) -> np.ndarray:
    """(n_frames, n_faces, 2, 3) source-image -> frame transforms; face k moves inside slot k of a row."""
    rng = np.random.default_rng(seed)
    w, h = frame_size
    slot = w / n_faces
    t = np.arange(n_frames, dtype=np.float64)
    out = np.zeros((n_frames, n_faces, 2, 3))
    for k in range(n_faces):
        base_scale = 0.22 * min(slot, h) / eye_px[k]  # eye corners ~22 % of the slot apart
        home = np.array([(k + 0.5) * slot, 0.5 * h])

        def wave(amplitude: float) -> np.ndarray:
            ph = rng.uniform(0, 2 * np.pi, 2)
            f1, f2 = 2 * np.pi / motion.period, 2 * np.pi / (motion.period * 0.37)
            return amplitude * (0.7 * np.sin(f1 * t + ph[0]) + 0.3 * np.sin(f2 * t + ph[1]))

        dx, dy = wave(motion.shift * slot), wave(motion.shift * h)
        ang, sc = wave(motion.angle), 1.0 + wave(motion.scale)
        shake = _smooth_noise(rng, n_frames, motion.shake_px)
        for i in range(n_frames):
            to = home + np.array([dx[i], dy[i]]) + shake[i]
            out[i, k] = _similarity(np.asarray(eye_centres[k], dtype=np.float64), to, ang[i], base_scale * sc[i])
    return out


def moving_faces(
    faces: Sequence[tuple[np.ndarray, np.ndarray]],
    n_frames: int,
    frame_size: tuple[int, int] = (640, 480),
    motion: Motion | None = None,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (RGB frame, true points (n_faces, K, 2)) for each frame.

    ``faces`` holds (RGB image, (K, 2) points) pairs; each face is cut out of its
    photo with a soft oval around its points and pasted, moved, on a plain
    background, so several faces can share a frame.
    """
    motion = motion or Motion()
    rng = np.random.default_rng(seed + 1)
    w, h = frame_size
    eye_px, centres, cutouts = [], [], []
    for image, points in faces:
        pts = np.asarray(points, dtype=np.float64)
        eye_px.append(float(np.linalg.norm(pts[45] - pts[36])) if len(pts) == 68 else float(np.ptp(pts[:, 0])) / 2)
        centres.append(pts.mean(axis=0))
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        mask = np.zeros(image.shape[:2], np.float32)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * (y1 - y0)
        axes = (int(0.75 * (x1 - x0)), int(0.8 * (y1 - y0)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, 0, 0, 360, 1.0, -1)
        blur = max(3, int(0.15 * (x1 - x0)) | 1)
        cutouts.append((np.ascontiguousarray(image), cv2.GaussianBlur(mask, (blur, blur), 0), pts))
    paths = face_paths(len(faces), n_frames, frame_size, eye_px, centres, motion, seed)
    background = np.full((h, w, 3), 120, np.float32)
    background[..., 0] = np.linspace(90, 150, w)[None, :]  # a gentle gradient, no texture the detector likes
    for i in range(n_frames):
        frame = background.copy()
        truth = []
        for k, (image, mask, pts) in enumerate(cutouts):
            m = paths[i, k]
            warped = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            a = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
            frame = frame * (1 - a) + warped * a
            truth.append(apply_affine(pts, m))
        if motion.noise > 0:
            frame += rng.normal(0.0, motion.noise, frame.shape).astype(np.float32)
        out = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        if motion.jpeg_quality is not None:
            data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(motion.jpeg_quality)])[1]
            out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        yield out, np.stack(truth)


def write_video(frames: Iterator[np.ndarray], path: str, fps: float = 30.0) -> int:
    """Write RGB frames with OpenCV (mp4v for .mp4); returns the frame count."""
    from facepoints.apps.video import open_writer

    writer = None
    n = 0
    try:
        for frame in frames:
            if writer is None:
                writer = open_writer(path, fps, (frame.shape[1], frame.shape[0]))
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n
