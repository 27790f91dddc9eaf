"""Expression cues: geometric measurements of eyes, mouth and brows from the 68 points.

These are distances and ratios, not an emotion classifier: a wide mouth is a
wide mouth, whether the person is happy or not, and the values depend on the
person's face as much as on their expression. Compare a face with itself over
time (a video, a neutral photo of the same person) rather than across people.

Every cue is a ratio of lengths measured on the same face, so it does not
change with the distance to the camera or the image resolution:

* eye openness: the eye aspect ratio (Soukupova & Cech, 2016),
  ``(|37-41| + |38-40|) / (2 |36-39|)`` for each eye; about 0.25-0.35 open, below ~0.15 closed;
* mouth openness: the gap between the inner lips (61-67, 62-66, 63-65) / face size;
* smile width: mouth corner distance (48-54) / face size;
* brow raise: how far the brows sit above their eye corners, perpendicular to the eye line / face size.

"Face size" is ``facepoints.apps.points.face_size`` (the outer eye corner
distance of a frontal face, measured on points that do not move with
expression). "Left" and "right" are the subject's, as in the ibug68 point names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import median

import cv2
import numpy as np

from facepoints.apps.points import check_points68, face_size

RIGHT_EYE = (36, 37, 38, 39, 40, 41)  # subject's right: the image-left eye of a frontal face
LEFT_EYE = (42, 43, 44, 45, 46, 47)
RIGHT_BROW = (17, 18, 19, 20, 21)
LEFT_BROW = (22, 23, 24, 25, 26)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


@dataclass
class ExpressionCues:
    """Eye aspect ratios and mouth/brow distances in face sizes (see the module docstring)."""

    left_eye_openness: float
    right_eye_openness: float
    mouth_openness: float
    smile_width: float
    brow_raise: float

    @property
    def eye_openness(self) -> float:
        """Both eyes' mean: what blink detection watches (blinks close both eyes)."""
        return (self.left_eye_openness + self.right_eye_openness) / 2

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """EAR of 6 eye contour points in iBUG order (outer corner, two upper lid, inner corner, two lower lid)."""
    p = np.asarray(eye, dtype=np.float64)
    width = np.linalg.norm(p[0] - p[3])
    if width <= 0:
        return 0.0
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


def expression_cues(points68: np.ndarray) -> ExpressionCues:
    """All cues of one face from its 68 points (pixels; any scale, position and roll)."""
    pts = check_points68(points68)
    size = max(face_size(pts), 1e-9)
    eye_line = pts[45] - pts[36]
    eye_line /= max(float(np.linalg.norm(eye_line)), 1e-9)
    up = np.array([eye_line[1], -eye_line[0]])  # image y points down
    brow = []
    for brow_idx, (outer, inner) in ((RIGHT_BROW, (36, 39)), (LEFT_BROW, (42, 45))):
        anchor = (pts[outer] + pts[inner]) / 2
        brow.append(float(((pts[list(brow_idx)] - anchor) @ up).mean()))
    return ExpressionCues(
        left_eye_openness=eye_aspect_ratio(pts[list(LEFT_EYE)]),
        right_eye_openness=eye_aspect_ratio(pts[list(RIGHT_EYE)]),
        mouth_openness=float(np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in INNER_LIP_PAIRS])) / size,
        smile_width=float(np.linalg.norm(pts[54] - pts[48])) / size,
        brow_raise=float(np.mean(brow)) / size,
    )


CUE_COLORS = {"eyes": (0, 200, 255), "mouth": (255, 80, 80), "smile": (255, 220, 0), "brows": (120, 255, 120)}


def cue_segments(points68: np.ndarray) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The line segments each cue measures, for drawing: eyes, mouth (inner-lip gaps), smile, brows."""
    pts = check_points68(points68)
    eye_line = pts[45] - pts[36]
    eye_line /= max(float(np.linalg.norm(eye_line)), 1e-9)
    up = np.array([eye_line[1], -eye_line[0]])
    brows = []
    for brow_idx, (outer, inner) in ((RIGHT_BROW, (36, 39)), (LEFT_BROW, (42, 45))):
        anchor = (pts[outer] + pts[inner]) / 2
        height = float(((pts[list(brow_idx)] - anchor) @ up).mean())
        brows.append((anchor, anchor + height * up))
    return {
        "eyes": [(pts[a], pts[b]) for a, b in ((37, 41), (38, 40), (43, 47), (44, 46), (36, 39), (42, 45))],
        "mouth": [(pts[a], pts[b]) for a, b in INNER_LIP_PAIRS],
        "smile": [(pts[48], pts[54])],
        "brows": brows,
    }


def draw_cues(image: np.ndarray, points68: np.ndarray, thickness: int | None = None) -> np.ndarray:
    """A copy of the RGB image with the segments behind each cue (colours in ``CUE_COLORS``)."""
    out = np.ascontiguousarray(image).copy()
    t = thickness if thickness is not None else max(1, round(face_size(points68) / 60))
    for name, segments in cue_segments(points68).items():
        for a, b in segments:
            cv2.line(out, tuple(round(float(v) * 16) for v in a), tuple(round(float(v) * 16) for v in b),
                     CUE_COLORS[name], t, cv2.LINE_AA, 4)
    return out


@dataclass
class BlinkEvent:
    """Eyes closed from ``start_frame`` to ``end_frame`` (inclusive) and reopened after."""

    start_frame: int
    end_frame: int
    min_openness: float

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    def to_dict(self) -> dict:
        return {"start_frame": self.start_frame, "end_frame": self.end_frame, "frames": self.frames,
                "min_openness": round(self.min_openness, 4)}


@dataclass
class BlinkDetector:
    """Blinks of one face over a video: eye openness dips below a fraction of its own recent open level.

    The threshold is relative to the person's recent open-eye value (median of
    the last ``baseline_frames`` open frames), because open-eye aspect ratios
    differ between people, head pitches and landmark models; a fixed EAR
    threshold would miss blinks of some faces and invent them on others.
    Eyes shut for longer than ``max_closed_frames`` are not a blink. Frames
    without the face (``openness=None``) cancel a closure in progress.
    """

    closed_ratio: float = 0.7  # closed below this fraction of the open level
    reopen_ratio: float = 0.85  # open again above this fraction (hysteresis against flicker)
    min_closed_frames: int = 1
    max_closed_frames: int = 15  # ~0.5 s at 30 frames/s; real blinks last 0.1-0.4 s
    baseline_frames: int = 90
    events: list[BlinkEvent] = field(default_factory=list)
    _history: list[float] = field(default_factory=list, repr=False)
    _start: int | None = field(default=None, repr=False)
    _last: int = field(default=-1, repr=False)
    _min: float = field(default=float("inf"), repr=False)
    _too_long: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.closed_ratio < self.reopen_ratio <= 1:
            raise ValueError("need 0 < closed_ratio < reopen_ratio <= 1")
        if not 1 <= self.min_closed_frames <= self.max_closed_frames:
            raise ValueError("need 1 <= min_closed_frames <= max_closed_frames")

    @property
    def open_level(self) -> float | None:
        """The recent open-eye openness the thresholds are relative to (None before the first frame)."""
        return median(self._history) if self._history else None

    def _remember(self, openness: float) -> None:
        self._history.append(openness)
        del self._history[:-self.baseline_frames]

    def update(self, frame_index: int, openness: float | None) -> BlinkEvent | None:
        """Feed one frame's eye openness (e.g. ``ExpressionCues.eye_openness``); returns a blink when it ends."""
        if openness is None or not np.isfinite(openness):
            self._start, self._too_long = None, False
            return None
        openness = float(openness)
        level = self.open_level
        if self._start is None:
            if level is not None and openness < self.closed_ratio * level:
                self._start, self._last, self._min, self._too_long = frame_index, frame_index, openness, False
            else:
                self._remember(openness)
            return None
        assert level is not None
        if self._too_long:
            # Shut (or squinting) for longer than a blink: let the open level adapt until the eyes count as open.
            self._remember(openness)
            if openness >= self.reopen_ratio * (self.open_level or openness):
                self._start, self._too_long = None, False
            return None
        if openness < self.reopen_ratio * level:
            self._last, self._min = frame_index, min(self._min, openness)
            self._too_long = frame_index - self._start + 1 > self.max_closed_frames
            return None
        event = BlinkEvent(self._start, self._last, self._min)
        self._start = None
        self._remember(openness)
        if event.frames >= self.min_closed_frames:
            self.events.append(event)
            return event
        return None
