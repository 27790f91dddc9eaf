"""Video tracking, smoothing and the video command (facepoints.apps.video)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.apps import expression, video
from facepoints.apps.points import eye_distance, face_size
from facepoints.cli import app
from facepoints.config import load_config
from facepoints.schemes import load_scheme
from facepoints.testing import synth
from tests.helpers import blinking_eyes

ROOT = Path(__file__).resolve().parents[2]
FLIP = load_scheme("ibug68").flip_permutation()
runner = CliRunner()


# ---------------------------------------------------------------- video


def test_one_euro_filter_smooths_still_points_and_follows_moving_ones() -> None:
    rng = np.random.default_rng(0)
    f = video.OneEuroFilter(min_cutoff=1.0, beta=2.0)
    noisy = 100 + rng.normal(0, 1.0, (300, 68, 2))
    out = np.array([f(x, i / 30, scale=100.0) for i, x in enumerate(noisy)])
    assert np.array_equal(out[0], noisy[0])
    assert out[30:].std() < noisy[30:].std() / 2.5
    ramp = np.arange(90)[:, None, None] * np.full((1, 68, 2), 4.0)  # 120 px/s = 1.2 face sizes/s
    lag = {}
    for beta in (0.0, 5.0):
        g = video.OneEuroFilter(min_cutoff=1.0, beta=beta)
        lag[beta] = np.abs(np.array([g(x, i / 30, 100.0) for i, x in enumerate(ramp)])[-1] - ramp[-1]).max()
    assert lag[5.0] < lag[0.0] / 3, "speed raises the cutoff, so moving points lag little"


def test_the_video_smoothing_lets_blinks_through() -> None:
    """Smoothed points are what the video pipeline measures, so a 4-frame blink must survive the filter."""
    rng = np.random.default_rng(5)
    o = np.ones(90)
    o[40:44] = 0.1
    frames = blinking_eyes(o, rng)
    cfg = video.VideoConfig()
    f = video.OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
    smoothed = [f(p, i / 30, face_size(p)) for i, p in enumerate(frames)]
    ear = [expression.expression_cues(p).eye_openness for p in smoothed]
    assert min(ear[40:46]) < 0.35 * np.median(ear)
    det = expression.BlinkDetector()
    for i, e in enumerate(ear):
        det.update(i, e)
    assert len(det.events) == 1 and det.events[0].start_frame in (40, 41) and 43 <= det.events[0].end_frame <= 47
    jitter_raw = np.abs(np.diff(np.array(frames)[:35], axis=0)).mean()
    jitter_smooth = np.abs(np.diff(np.array(smoothed)[10:35], axis=0)).mean()
    assert jitter_smooth < 0.5 * jitter_raw, "still points are smoothed"



def test_process_video_tracks_two_faces_with_stable_ids(tmp_path, model, two_face_video) -> None:
    src, truth = two_face_video
    dst, log = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    cfg = video.VideoConfig(effect="glasses", detect_every=15)
    summary = video.process_video(src, dst, model, cfg, log, progress=False)
    assert summary.frames == 45 and (summary.width, summary.height) == (640, 360)
    assert sorted(summary.face_frames.values()) == [45, 45], summary.text()
    assert summary.detection_frames <= 15 and summary.tracking_steps >= 30
    cap = cv2.VideoCapture(str(dst))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 45 and frames[0].shape == (360, 640, 3)
    ok, first_in = cv2.VideoCapture(str(src)).read()
    corner = (slice(300, 360), slice(0, 60))  # background, nothing drawn: colours survive decode -> RGB -> encode
    assert np.abs(frames[0][corner].astype(int) - first_in[corner]).mean() < 4
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(45))
    side = {}
    for r, t in zip(records, truth):
        assert len(r["faces"]) == 2
        for face in r["faces"]:
            p = np.array(face["points"])
            k = int(np.argmin([np.abs(p - t[j]).mean() for j in range(2)]))
            side.setdefault(face["id"], k)
            assert side[face["id"]] == k, "a face kept its id"
            err = np.linalg.norm(p - t[k], axis=1).mean() / eye_distance(t[k])
            assert err < 0.25, f"frame {r['frame']}: tracked points {err:.0%} of the eye distance off"
            assert {"yaw", "pitch", "roll"} <= face["pose"].keys() and "mouth_openness" in face["expression"]
    assert sorted(side.values()) == [0, 1]


def test_a_face_that_leaves_is_dropped_and_a_new_one_gets_a_new_id(model, astronaut) -> None:
    image, pts = astronaut
    frames = [f for f, _ in synth.moving_faces([(image, pts)], 12, (480, 360), seed=1)]
    blank = np.full_like(frames[0], 120)
    tracker = video.FaceTracker(model, video.VideoConfig(detect_every=4, keep_missing=0))
    ids = [[f.id for f in tracker.step(fr, i / 30)] for i, fr in enumerate(frames + [blank] * 8 + frames[:4])]
    assert all(x == [0] for x in ids[:12])
    assert ids[12 + 6:12 + 8] == [[], []], "gone within detect_every frames of leaving"
    assert ids[-1] == [1]


def test_sources_writers_and_config(tmp_path) -> None:
    assert video.parse_source("0") == 0 and video.parse_source("webcam:2") == 2 and video.parse_source(1) == 1
    with pytest.raises(video.VideoError, match="no such file"):
        video.parse_source(tmp_path / "missing.mp4")
    with pytest.raises(video.VideoError, match="webcam"):
        video.parse_source("webcam:x")
    with pytest.raises(video.VideoError, match=".mp4"):
        video.open_writer(tmp_path / "x.gif", 30, (64, 48))
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    with pytest.raises(video.VideoError):
        video.process_video(not_video, None, None, progress=False)  # type: ignore[arg-type]
    assert load_config(video.VideoConfig, ROOT / "configs" / "video.yaml") == video.VideoConfig()
    with pytest.raises(ValueError, match="effect"):
        video.VideoConfig(effect="hat")


def test_video_command_writes_video_and_jsonl(tmp_path, two_face_video) -> None:
    src, _ = two_face_video
    dst = tmp_path / "v.mp4"
    result = runner.invoke(app, ["video", str(src), str(dst), "--effect", "moustache", "--max-frames", "20",
                                 "--no-progress", "-o", "detect_every=10"])
    assert result.exit_code == 0, result.output
    assert "2 face id(s)" in result.output
    assert len(dst.with_suffix(".jsonl").read_text().splitlines()) == 20
    assert cv2.VideoCapture(str(dst)).get(cv2.CAP_PROP_FRAME_COUNT) == 20
    result = runner.invoke(app, ["video", str(tmp_path / "missing.mp4"), str(dst)])
    assert result.exit_code != 0 and "no such file" in result.output
    result = runner.invoke(app, ["video", str(src), str(dst), "-o", "beta=-1"])
    assert result.exit_code != 0 and "beta" in result.output




def test_a_summary_without_tracked_frames_prints_and_writes_no_nan() -> None:
    import json

    from facepoints.apps.video import VideoSummary

    one_frame = VideoSummary(frames=1, fps=25.0, width=64, height=48, detection_frames=1, detection_seconds=0.02)
    assert "nan" not in one_frame.text() and "detector 20 ms on 1 frame(s)" in one_frame.text()
    record = json.loads(json.dumps(one_frame.to_dict(), allow_nan=False))  # strict JSON: NaN would raise
    assert record["tracking_fps"] is None and record["detection_ms"] == 20.0
