"""Video files and cameras through OpenCV: sources, frames as RGB, and writers with a codec the wheel has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

VIDEO_WRITERS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}  # what opencv-python can write


class VideoError(ValueError):
    """A video source cannot be opened or read, or the output cannot be written."""


def parse_source(src: str | int | Path) -> int | str:
    """A camera index for ``0``, ``"0"`` or ``"webcam:0"``; otherwise the path as a string (it must exist)."""
    if isinstance(src, int):
        return src
    text = str(src)
    if text.isdigit():
        return int(text)
    if text.lower().startswith(("webcam:", "camera:")):
        index = text.split(":", 1)[1]
        if not index.isdigit():
            raise VideoError(f"bad camera {text!r}: expected e.g. webcam:0")
        return int(index)
    if not Path(text).is_file():
        raise VideoError(f"cannot read video {text}: no such file")
    return text


def open_capture(src: str | int | Path) -> tuple[cv2.VideoCapture, bool]:
    """An opened capture and whether it is a camera; a clear error when OpenCV cannot open it."""
    source = parse_source(src)
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        what = f"camera {source}" if isinstance(source, int) else f"video {source}"
        raise VideoError(f"cannot open {what} (OpenCV found no camera or no decoder for it)")
    return cap, isinstance(source, int)


def writer_codec(path: str | Path) -> str:
    """The codec for the path's suffix; checked before any frame is read, so a wrong suffix costs nothing."""
    fourcc = VIDEO_WRITERS.get(Path(path).suffix.lower())
    if fourcc is None:
        raise VideoError(f"cannot write {path}: use one of {', '.join(sorted(VIDEO_WRITERS))}")
    return fourcc


def open_writer(path: str | Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """A VideoWriter with a codec this OpenCV build has for the suffix (mp4v for .mp4, MJPG for .avi)."""
    p = Path(path)
    fourcc = writer_codec(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise VideoError(f"cannot write {p}: OpenCV could not open a {fourcc} writer")
    return writer


def iter_frames(cap: cv2.VideoCapture, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB frames until the source ends (or ``max_frames``)."""
    n = 0
    while max_frames is None or n < max_frames:
        ok, bgr = cap.read()
        if not ok or bgr is None:
            return
        n += 1
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
