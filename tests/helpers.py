"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facepoints.cli import sample_image_path
from facepoints.schemes import load_scheme


def big_jpeg(path: Path, factor: int, copies: int = 1) -> Path:
    """``copies`` of the sample photo side by side, enlarged ``factor`` times (nearest neighbour)."""
    im = Image.open(sample_image_path()).convert("RGB")
    row = Image.new("RGB", (im.width * copies, im.height))
    for i in range(copies):
        row.paste(im, (i * im.width, 0))
    row.resize((row.width * factor, row.height * factor), Image.Resampling.NEAREST).save(path, quality=95)
    return path


def too_wide_png(path: Path, width: int = 33000, face_side: int = 1500) -> Path:
    """The sample face on a strip wider than OpenCV's warps allow (32766 px): a photo that once stopped a batch."""
    face = Image.open(sample_image_path()).convert("RGB").crop((150, 50, 300, 200)).resize((face_side, face_side))
    strip = Image.new("RGB", (width, face_side), (120, 120, 120))
    strip.paste(face, (width // 2, 0))
    strip.save(path, compress_level=1)
    return path


def photo_folder(folder: Path, n: int = 3) -> Path:
    """``n`` copies of the sample photo, named img0.jpg ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(sample_image_path(), folder / f"img{i}.jpg")
    return folder


def similarity(angle_deg: float, scale: float, shift: tuple[float, float], centre=(0.0, 0.0)) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += shift
    return m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def mirror(points: np.ndarray, width: int) -> np.ndarray:
    """The same face seen in a mirror: x -> W - 1 - x, and left/right labels swapped."""
    out = points.copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out[load_scheme("ibug68").flip_permutation()]


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels that differ by more than a little between two images of the same size."""
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 30


def blinking_eyes(openness: np.ndarray, rng) -> list[np.ndarray]:
    """68-point frames whose upper lids move towards the lower lids by (1 - openness)."""
    from facepoints.apps.pose import project_model

    base = project_model(5, 0, 0, (640, 480))
    frames = []
    for o in openness:
        p = base.copy()
        for top, bottom in ((37, 41), (38, 40), (43, 47), (44, 46)):
            p[top] = p[bottom] + o * (base[top] - base[bottom])
        frames.append(p + rng.normal(0, 0.2, p.shape))
    return frames


def decompression_bomb(path: Path, side: int = 20000) -> None:
    """A valid 1-bit PNG of side x side pixels: ~50 KB on disk, 400 megapixels once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def assert_on_the_face(points: np.ndarray, reference: np.ndarray) -> None:
    """Within 3 % of the eye distance of the reference on average (JPEG re-encoding moves points a little)."""
    eyes = np.linalg.norm(reference[36:42].mean(axis=0) - reference[42:48].mean(axis=0))
    err = np.linalg.norm(np.asarray(points) - reference, axis=1).mean()
    assert err < 0.03 * eyes, f"mean point error {err:.2f} px (eye distance {eyes:.1f} px)"
