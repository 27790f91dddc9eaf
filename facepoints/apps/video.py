"""Faces in a video: detect, track frame to frame with stable ids, smooth, draw, and log every frame.

Tracking reuses each face's previous points as the next box: the tight box of
the points is exactly the box convention the landmark model was trained on,
so one batched landmark pass per frame replaces the (much slower) detector.
The detector runs every ``detect_every`` frames, and at once when a tracked
face stops looking like a face (its point scores drop, or the 3-D mean face
cannot explain its points) or its size drifts (a model biased towards smaller
or larger faces would shrink or grow the box frame after frame), to pick up
new faces and correct drift. Points are
smoothed with a One Euro filter (Casiez et al., CHI 2012): strong smoothing
when a face is still, little lag when it moves.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from facepoints.apps.ar import EFFECTS, apply_effect
from facepoints.apps.expression import BlinkDetector, BlinkEvent, expression_cues
from facepoints.apps.points import face_size, scheme
from facepoints.apps.pose import HeadPose, draw_pose_axes, head_pose
from facepoints.apps.record import face_record as face_record_of
from facepoints.apps.smoothing import OneEuroFilter
from facepoints.apps.video_io import (  # noqa: F401 - re-exported: the video API in one place
    VIDEO_WRITERS,
    VideoError,
    iter_frames,
    open_capture,
    open_writer,
    parse_source,
)
from facepoints.detectors import box_iou
from facepoints.face import Face, rounded
from facepoints.geometry import tight_box
from facepoints.inference import LandmarkModel
from facepoints.viz import draw_faces


@dataclass
class VideoConfig:
    """Tracking, smoothing and drawing settings (``configs/video.yaml``; load with
    ``facepoints.config.load_config``)."""

    detect_every: int = 30  # frames between detector runs while faces are tracked
    search_every: int = 3  # frames between detector runs while no face is tracked
    score_drop: float = 0.5  # re-detect when a face's mean point score falls below this x its score when detected
    min_score: float = 0.0  # ... or below this absolute value (scores' scale depends on the model)
    max_shape_error: float = 0.1  # ... or when the 3-D mean face fits the points worse (RMS, face sizes)
    max_size_change: float = 0.25  # ... or when the face grew/shrank by more than this since it was detected
    match_iou: float = 0.3  # a detection overlapping a track this much keeps the track's id
    keep_missing: int = 1  # detector runs in a row that may miss a still-tracked face before it is dropped
    max_faces: int = 10
    min_face_px: float = 12.0  # tracks whose box gets smaller than this are dropped
    smoothing: bool = True
    min_cutoff: float = 0.5  # One Euro: cutoff (Hz) for a still face; lower = smoother, more lag
    beta: float = 5.0  # One Euro: cutoff rise per face size per second of speed; higher = less lag
    d_cutoff: float = 2.0  # One Euro: cutoff (Hz) of the speed estimate
    effect: str | None = None  # "glasses", "moustache" or None
    draw_points: bool = True
    draw_ids: bool = True
    draw_pose: bool = True
    draw_boxes: bool = False
    blinks: bool = True  # run a BlinkDetector per face (events in the summary and the JSONL)
    max_frames: int | None = None  # stop after this many frames (webcams otherwise run until Ctrl-C)
    fps: float | None = None  # frame rate to assume when the source reports none (webcams)

    def __post_init__(self) -> None:
        if self.detect_every < 1 or self.search_every < 1:
            raise ValueError("detect_every and search_every must be at least 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError("max_frames must be at least 1 (omit it to read the whole video)")
        if self.effect is not None and self.effect not in EFFECTS:
            raise ValueError(f"unknown effect {self.effect!r}; available: {', '.join(sorted(EFFECTS))} (or none)")
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError("One Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")


@dataclass
class TrackedFace:
    """One face in one frame."""

    id: int
    points: np.ndarray  # (68, 2) smoothed when smoothing is on: what to draw and measure
    raw_points: np.ndarray  # (68, 2) the model's output this frame
    scores: np.ndarray  # (68,)
    box: np.ndarray  # (4,) the box the points were predicted in
    detected: bool  # the box came from the detector this frame (else from the previous points)
    pose: HeadPose | None = None

    @property
    def confidence(self) -> float:
        return float(np.mean(self.scores))


@dataclass
class _Track:
    id: int
    points: np.ndarray
    smoothed: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    filter: OneEuroFilter
    ref_score: float = 0.0  # mean point score and size when last detected: drops and drift are relative to them
    ref_size: float = 0.0
    missed: int = 0
    detected: bool = True
    pose: HeadPose | None = None
    plausible: bool = True


class FaceTracker:
    """Faces with stable ids over consecutive frames of one video (one tracker per video)."""

    def __init__(self, model: LandmarkModel, cfg: VideoConfig | None = None) -> None:
        if model.scheme.num_points != 68:
            raise ValueError(f"video tracking needs a 68-point model, {model.path} has scheme {model.scheme.name}")
        self.model = model
        self.cfg = cfg or VideoConfig()
        self.tracks: list[_Track] = []
        self.frame_index = -1
        self.next_id = 0
        self._since_detect = 0
        self.last_step_detected = False

    def _new_filter(self) -> OneEuroFilter:
        return OneEuroFilter(self.cfg.min_cutoff, self.cfg.beta, self.cfg.d_cutoff)

    def _check(self, track: _Track, size: tuple[int, int]) -> None:
        box = track.box
        track.pose = None
        track.plausible = False
        if min(box[2] - box[0], box[3] - box[1]) < self.cfg.min_face_px or not np.isfinite(track.points).all():
            return
        track.pose = head_pose(track.points, size, refine=not self.cfg.smoothing)  # smoothed pose is refined later
        cfg = self.cfg
        score = float(np.mean(track.scores))
        if track.detected:
            track.ref_score, track.ref_size = score, face_size(track.points)
        change = face_size(track.points) / max(track.ref_size, 1e-9)
        track.plausible = (score >= max(cfg.min_score, cfg.score_drop * track.ref_score)
                           and track.pose.reprojection_error <= cfg.max_shape_error
                           and 1 / (1 + cfg.max_size_change) <= change <= 1 + cfg.max_size_change)

    def _detect(self, frame: np.ndarray, size: tuple[int, int]) -> None:
        cfg = self.cfg
        faces = self.model.detect(frame)[: cfg.max_faces]
        det_boxes = np.array([tight_box(f.points) for f in faces]).reshape(-1, 4)
        old = np.array([tight_box(t.points) for t in self.tracks]).reshape(-1, 4)
        iou = box_iou(old, det_boxes) if len(old) and len(det_boxes) else np.zeros((len(old), len(det_boxes)))
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        for flat in np.argsort(-iou, axis=None):
            i, j = np.unravel_index(flat, iou.shape)
            if iou[i, j] < cfg.match_iou:
                break
            if i in matched_tracks or j in matched_dets:
                continue
            matched_tracks.add(int(i))
            matched_dets.add(int(j))
            tr, face = self.tracks[i], faces[j]
            tr.points, tr.scores, tr.box, tr.detected, tr.missed = face.points, face.scores, face.box, True, 0
        kept = []
        for i, tr in enumerate(self.tracks):
            if i in matched_tracks:
                kept.append(tr)
            elif tr.plausible and tr.missed < cfg.keep_missing:
                tr.missed += 1  # the detector misses turned faces now and then; keep tracking a while
                kept.append(tr)
        for j, face in enumerate(faces):
            if j in matched_dets or len(kept) >= cfg.max_faces:
                continue
            if kept and box_iou(det_boxes[j], np.array([tight_box(t.points) for t in kept])).max() >= cfg.match_iou:
                continue
            kept.append(_Track(self.next_id, face.points, face.points, face.scores, face.box, self._new_filter()))
            self.next_id += 1
        self.tracks = kept
        for tr in self.tracks:
            if tr.detected:
                self._check(tr, size)

    def step(self, frame: np.ndarray, t: float | None = None) -> list[TrackedFace]:
        """Process the next frame (RGB uint8); ``t`` in seconds (default: frame index / 30)."""
        self.frame_index += 1
        t = self.frame_index / 30.0 if t is None else float(t)
        h, w = frame.shape[:2]
        size = (w, h)
        cfg = self.cfg
        due = cfg.detect_every if self.tracks else cfg.search_every
        need_detect = self._since_detect + 1 >= due or self.frame_index == 0
        for tr in self.tracks:
            tr.detected = False
        if self.tracks and not need_detect:
            boxes = np.array([tight_box(tr.points) for tr in self.tracks])
            points, scores = self.model.landmarks_with_scores(frame, boxes)
            for tr, b, p, s in zip(self.tracks, boxes, points, scores):
                tr.points, tr.scores, tr.box = p, s, b
                self._check(tr, size)
            need_detect = not all(tr.plausible for tr in self.tracks)
        if need_detect:
            self._detect(frame, size)
            self._since_detect = 0
        else:
            self._since_detect += 1
        self.last_step_detected = need_detect
        self.tracks = [tr for tr in self.tracks if np.isfinite(tr.points).all()
                       and min(tr.box[2] - tr.box[0], tr.box[3] - tr.box[1]) >= cfg.min_face_px]
        self._drop_duplicates()
        out = []
        for tr in self.tracks:
            tr.smoothed = tr.filter(tr.points, t, face_size(tr.points)) if cfg.smoothing else tr.points
            pose = head_pose(tr.smoothed, size) if cfg.smoothing else tr.pose
            out.append(TrackedFace(tr.id, tr.smoothed, tr.points, tr.scores, tr.box, tr.detected, pose))
        return out

    def _drop_duplicates(self) -> None:
        """Two tracks that converged on one face: keep the older id."""
        if len(self.tracks) < 2:
            return
        boxes = np.array([tight_box(tr.points) for tr in self.tracks])
        iou = box_iou(boxes, boxes)
        order = sorted(range(len(self.tracks)), key=lambda i: self.tracks[i].id)
        keep: list[int] = []
        for i in order:
            if all(iou[i, k] < 0.5 for k in keep):
                keep.append(i)
        self.tracks = [self.tracks[i] for i in sorted(keep, key=lambda i: self.tracks[i].id)]


# ---------------------------------------------------------------- drawing and logging


def draw_tracked(frame: np.ndarray, faces: list[TrackedFace], cfg: VideoConfig) -> np.ndarray:
    """A copy of the frame with the effect, points, boxes, pose axes and ids the config asks for."""
    out = frame
    if cfg.effect:
        out = apply_effect(out, [f.points for f in faces], cfg.effect)
    if cfg.draw_points or cfg.draw_boxes:
        out = draw_faces(out, [(f.box if cfg.draw_boxes else None, f.points if cfg.draw_points else None)
                               for f in faces], scheme=scheme("ibug68"), draw_boxes=cfg.draw_boxes)
    if cfg.draw_pose:
        for f in faces:
            if f.pose is not None:
                out = draw_pose_axes(out, f.pose, f.points)
    out = np.ascontiguousarray(out) if out is not frame else frame.copy()
    if cfg.draw_ids:
        for f in faces:
            x, y = f.points[:, 0].min(), f.points[:, 1].min()
            scale = max(0.4, face_size(f.points) / 120)
            org = (int(x), max(12, int(y - 0.25 * face_size(f.points))))
            cv2.putText(out, f"#{f.id}", org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(out, f"#{f.id}", org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def face_record(face: TrackedFace) -> dict:
    """One face of one frame as JSON-ready data: its id, then the one face record (``apps.record``)."""
    plain = Face(face.box, face.points, face.scores, float("nan"), scheme("ibug68"))
    return {"id": face.id, "detected": face.detected, "confidence": round(face.confidence, 4),
            **face_record_of(plain, None, pose=face.pose)}


@dataclass
class VideoSummary:
    """What a video run did, and how fast."""

    frames: int = 0
    fps: float = 0.0  # of the source
    width: int = 0
    height: int = 0
    frames_with_faces: int = 0
    face_frames: dict[int, int] = field(default_factory=dict)  # id -> frames in which it was seen
    detection_frames: int = 0
    blinks: dict[int, list[BlinkEvent]] = field(default_factory=dict)
    tracking_seconds: float = 0.0  # tracker steps without the detector
    tracking_steps: int = 0
    detection_seconds: float = 0.0  # tracker steps that ran the detector
    total_seconds: float = 0.0
    output: Path | None = None
    jsonl: Path | None = None

    @property
    def tracking_fps(self) -> float:
        return self.tracking_steps / self.tracking_seconds if self.tracking_seconds > 0 else float("nan")

    @property
    def detection_ms(self) -> float:
        return 1000 * self.detection_seconds / self.detection_frames if self.detection_frames else float("nan")

    def count_step(self, seconds: float, detected: bool, faces: list[TrackedFace]) -> None:
        """Book one tracker step: its time (detector or tracking) and the faces it saw."""
        if detected:
            self.detection_frames += 1
            self.detection_seconds += seconds
        else:
            self.tracking_steps += 1
            self.tracking_seconds += seconds
        self.frames += 1
        self.frames_with_faces += bool(faces)
        for f in faces:
            self.face_frames[f.id] = self.face_frames.get(f.id, 0) + 1

    def to_dict(self) -> dict:
        return {"frames": self.frames, "fps": self.fps, "width": self.width, "height": self.height,
                "frames_with_faces": self.frames_with_faces, "face_frames": self.face_frames,
                "detection_frames": self.detection_frames,
                "blinks": {k: [e.to_dict() for e in v] for k, v in self.blinks.items()},
                "tracking_fps": rounded(self.tracking_fps, 1), "detection_ms": rounded(self.detection_ms, 1),
                "total_seconds": round(self.total_seconds, 2),
                "output": str(self.output) if self.output else None, "jsonl": str(self.jsonl) if self.jsonl else None}

    def text(self) -> str:
        lines = [(f"{self.frames} frame(s) of {self.width}x{self.height} at {self.fps:.1f} frames/s; "
                  f"faces in {self.frames_with_faces} frame(s), {len(self.face_frames)} face id(s)")]
        if self.frames and not self.face_frames:
            lines.append("no face found in any frame")
        for fid, n in sorted(self.face_frames.items()):
            blinks = self.blinks.get(fid, [])
            lines.append(f"  face #{fid}: {n} frame(s), {len(blinks)} blink(s)"
                         + (" at frames " + ", ".join(str(b.start_frame) for b in blinks[:20]) if blinks else ""))
        tracking = f"tracking {self.tracking_fps:.0f} frames/s (detector excluded); " if self.tracking_steps else ""
        lines.append(f"{tracking}detector {self.detection_ms:.0f} ms on {self.detection_frames} frame(s); "
                     f"total {self.total_seconds:.1f} s")
        if self.output:
            lines.append(f"video: {self.output}")
        if self.jsonl:
            lines.append(f"per-frame results: {self.jsonl}")
        return "\n".join(lines)


def _blinks(detectors: dict[int, BlinkDetector], faces: list[TrackedFace], frame: int,
            summary: VideoSummary) -> list[dict]:
    """Feed each face's eye openness to its blink detector; the blinks that ended in this frame."""
    ended: list[dict] = []
    for f in faces:
        event = detectors.setdefault(f.id, BlinkDetector()).update(frame, expression_cues(f.points).eye_openness)
        if event is not None:
            summary.blinks.setdefault(f.id, []).append(event)
            ended.append({"id": f.id, **event.to_dict()})
    seen = {f.id for f in faces}
    for fid, det in detectors.items():
        if fid not in seen:
            det.update(frame, None)
    return ended


def process_video(
    src: str | int | Path,
    dst: str | Path | None,
    model: LandmarkModel,
    cfg: VideoConfig | None = None,
    jsonl_path: str | Path | None = None,
    *,
    progress: bool = True,
) -> VideoSummary:
    """Track faces through a video file or camera; write the annotated video and/or a JSONL line per frame.

    ``src``: a video file, or a camera as ``0`` / ``"webcam:0"``. ``dst``: an
    .mp4 (mp4v) or .avi (MJPG) file, or None to only analyse. Each JSONL line
    holds the frame index and time, every face's id, box, smoothed points, pose
    and expression cues, and the blinks that ended in that frame.
    """
    cfg = cfg or VideoConfig()
    with ExitStack() as stack:
        cap, is_camera = open_capture(src)
        stack.callback(cap.release)
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < fps <= 1000:
            fps = cfg.fps or 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        total = None if is_camera or count <= 0 else count
        if total is not None and cfg.max_frames is not None:
            total = min(total, cfg.max_frames)
        summary = VideoSummary(fps=float(fps), output=Path(dst) if dst else None,
                               jsonl=Path(jsonl_path) if jsonl_path else None)
        log = None
        if jsonl_path:
            Path(jsonl_path).parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(open(jsonl_path, "w", encoding="utf-8"))
        tracker = FaceTracker(model, cfg)
        blink: dict[int, BlinkDetector] = {}
        writer = None
        bar = stack.enter_context(tqdm(total=total, unit="frame", desc="video", disable=not progress))
        start = time.perf_counter()
        try:
            for i, frame in enumerate(iter_frames(cap, cfg.max_frames)):
                if writer is None and dst:
                    writer = open_writer(dst, fps, (frame.shape[1], frame.shape[0]))
                    stack.callback(writer.release)
                summary.width, summary.height = frame.shape[1], frame.shape[0]
                t0 = time.perf_counter()
                faces = tracker.step(frame, i / fps)
                summary.count_step(time.perf_counter() - t0, tracker.last_step_detected, faces)
                ended = _blinks(blink, faces, i, summary) if cfg.blinks else []
                if log is not None:
                    log.write(json.dumps({"frame": i, "time": round(i / fps, 4),
                                          "faces": [face_record(f) for f in faces], "blinks": ended}) + "\n")
                if writer is not None:
                    writer.write(cv2.cvtColor(draw_tracked(frame, faces, cfg), cv2.COLOR_RGB2BGR))
                bar.update(1)
        except KeyboardInterrupt:  # a webcam session ends with Ctrl-C: keep what was written
            pass
        summary.total_seconds = time.perf_counter() - start
    if summary.frames == 0:
        raise VideoError(f"no frame could be read from {src}")
    return summary
