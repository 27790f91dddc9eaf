"""Video tracking benchmark: accuracy, jitter and speed on real faces moved by known motion.

    python benchmarks/video.py [--model default] [--videos 8] [--frames 150] [--grid]

Test videos are made from real annotated still faces (300-W AFW, read from
../shared/data; nothing is copied into the repository): each face is cut out
and moved by smooth similarity transforms (shift, rotation +-12 deg, scale
+-12 %) plus camera shake (0.4 px) and sensor noise (2 grey levels), so the
true 68 points are known in every frame. The tracker runs on each video with
and without One Euro smoothing.

* NME: mean point error / true outer-eye-corner distance (points 36/45), %.
* jitter: mean frame-to-frame change of the error vector (prediction - truth),
  per point, / eye distance, %: what a viewer sees as shaking, with the true
  motion taken out.
* frames/s of the tracking loop (``FaceTracker.step`` on frames without
  detection) with one and with three faces, and the cost of a detection frame.

Prints a table and writes benchmarks/results/video.md and video.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from facepoints.apps.synth import Motion, moving_faces, write_video
from facepoints.apps.video import FaceTracker, VideoConfig, process_video
from facepoints.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEPOINTS_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results"
FRAME = (640, 480)


def errors(pred: list[np.ndarray | None], truth: np.ndarray) -> dict:
    """NME and jitter (% of eye distance) of one face track against the truth (frames without a face skipped)."""
    eye = np.linalg.norm(truth[:, 45] - truth[:, 36], axis=1)
    nmes, jit = [], []
    prev = None
    for i, p in enumerate(pred):
        if p is None:
            prev = None
            continue
        e = p - truth[i]
        nmes.append(np.linalg.norm(e, axis=1).mean() / eye[i])
        if prev is not None:
            jit.append(np.linalg.norm(e - prev, axis=1).mean() / eye[i])
        prev = e
    return {"nme": 100 * float(np.mean(nmes)) if nmes else float("nan"),
            "jitter": 100 * float(np.mean(jit)) if jit else float("nan"),
            "tracked": len(nmes) / len(pred)}


def run_tracker(model, frames: list[np.ndarray], n_faces: int, truth: np.ndarray, cfg: VideoConfig):
    """Per face (matched to the truth by nearest centre each frame): predicted points per frame; step timings."""
    tracker = FaceTracker(model, cfg)
    preds: list[list[np.ndarray | None]] = [[] for _ in range(n_faces)]
    track_s, detect_s = [], []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        faces = tracker.step(frame, i / 30.0)
        dt = time.perf_counter() - t0
        (detect_s if tracker.last_step_detected else track_s).append(dt)
        centres = truth[i].mean(axis=1)
        got: list[np.ndarray | None] = [None] * n_faces
        for f in faces:
            k = int(np.argmin(np.linalg.norm(centres - f.points.mean(axis=0), axis=1)))
            if np.linalg.norm(centres[k] - f.points.mean(axis=0)) < 0.5 * np.linalg.norm(
                    truth[i, k, 45] - truth[i, k, 36]) * 2:
                got[k] = f.points
        for k in range(n_faces):
            preds[k].append(got[k])
    return preds, track_s, detect_s


def tracking_fps(model, frames: list[np.ndarray], cfg: VideoConfig, repeats: int = 3) -> float:
    """Median over repeats of the tracking-only frame rate (a fresh tracker each time; detection frames excluded)."""
    rates = []
    for _ in range(repeats):
        tracker = FaceTracker(model, cfg)
        n, s = 0, 0.0
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            tracker.step(frame, i / 30.0)
            dt = time.perf_counter() - t0
            if not tracker.last_step_detected:
                n, s = n + 1, s + dt
        rates.append(n / s if s else float("nan"))
    return statistics.median(rates)


def pick_faces(samples, model, count: int, seed: int) -> list:
    """Faces the detector finds in their first synthetic frame (the tracker must start somewhere), in a fixed order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    chosen = []
    for idx in order:
        s = samples[int(idx)]
        if not s.mask.all():
            continue
        frame, _ = next(moving_faces([(s.image, s.points)], 1, FRAME, seed=int(idx)))
        if model.detect(frame):
            chosen.append(s)
        if len(chosen) == count:
            break
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name or .onnx (default: the shipped model)")
    ap.add_argument("--videos", type=int, default=8, help="one-face videos (each also used in a three-face video)")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (1: small batches gain nothing from more)")
    ap.add_argument("--grid", action="store_true", help="also sweep One Euro min_cutoff x beta")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import facepoints

    model = facepoints.load(args.model, threads=args.threads)
    samples, _ = load_dataset(str(DATA / "300w-68" / "afw"), progress=False)
    faces = pick_faces(samples, model, args.videos, args.seed)
    print(f"{len(faces)} AFW faces, {args.frames} frames each, {FRAME[0]}x{FRAME[1]}; model {model.path.name}")

    base = VideoConfig(draw_points=False, draw_pose=False, draw_ids=False, blinks=False)
    smooth = base
    raw = VideoConfig(**{**base.__dict__, "smoothing": False})
    videos = []
    for v, s in enumerate(faces):
        frames, truth = zip(*moving_faces([(s.image, s.points)], args.frames, FRAME, Motion(), seed=args.seed + v))
        videos.append((list(frames), np.stack(truth), 1))
    trios = []
    for v in range(0, len(faces) - 2, 3):
        trio = [(faces[v + k].image, faces[v + k].points) for k in range(3)]
        frames, truth = zip(*moving_faces(trio, args.frames, FRAME, Motion(), seed=100 + v))
        trios.append((list(frames), np.stack(truth), 3))

    def evaluate(cfg: VideoConfig, vids) -> dict:
        per = []
        for frames, truth, n in vids:
            preds, _, _ = run_tracker(model, frames, n, truth, cfg)
            per += [errors(preds[k], truth[:, k]) for k in range(n)]
        return {key: float(np.nanmean([p[key] for p in per])) for key in ("nme", "jitter", "tracked")}

    rows = {}
    for name, cfg in (("raw", raw), ("smoothed", smooth)):
        rows[f"1 face, {name}"] = evaluate(cfg, videos)
        if trios:
            rows[f"3 faces, {name}"] = evaluate(cfg, trios)

    grid = []
    if args.grid:
        for mc in (0.3, 0.5, 1.0, 2.0):
            for beta in (0.5, 1.0, 2.0, 4.0, 8.0):
                cfg = VideoConfig(**{**base.__dict__, "min_cutoff": mc, "beta": beta})
                r = evaluate(cfg, videos)
                grid.append({"min_cutoff": mc, "beta": beta, **r})
                print(f"  min_cutoff {mc:4} beta {beta:4}: NME {r['nme']:.2f} %  jitter {r['jitter']:.3f} %")

    # speed: the tracking loop alone (frames in memory), then one full run with real encode/decode
    speed_cfg = VideoConfig(**{**base.__dict__, "detect_every": 10 ** 9})  # detect once, then only track
    fps1 = tracking_fps(model, videos[0][0], speed_cfg)
    fps3 = tracking_fps(model, trios[0][0], speed_cfg) if trios else float("nan")
    _, _, det_s = run_tracker(model, videos[0][0][:40], 1, videos[0][1][:40], VideoConfig(**{**base.__dict__,
                                                                                             "detect_every": 1}))
    detect_ms = 1000 * statistics.median(det_s)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        write_video(iter(videos[0][0]), str(src))
        full = process_video(src, dst, model, VideoConfig(effect="glasses"), Path(tmp) / "out.jsonl", progress=False)
    pipeline_fps = full.frames / full.total_seconds

    raw1, sm1 = rows["1 face, raw"], rows["1 face, smoothed"]
    jitter_cut = 1 - sm1["jitter"] / raw1["jitter"]
    nme_rise = sm1["nme"] / raw1["nme"] - 1
    targets = {
        "smoothing cuts jitter by >= 50 %": (jitter_cut >= 0.5, f"{100 * jitter_cut:.0f} %"),
        "smoothing raises NME by <= 5 %": (nme_rise <= 0.05, f"{100 * nme_rise:+.1f} %"),
        "tracking one face >= 200 frames/s": (fps1 >= 200, f"{fps1:.0f} frames/s"),
    }
    lines = [
        "# Video tracking: accuracy, jitter, speed",
        "",
        f"`python benchmarks/video.py{' --model ' + args.model if args.model else ''}` "
        f"(model `{model.path.name}`: {model.meta.get('provenance', '')}).",
        "",
        f"{len(faces)} real AFW faces, each moved by smooth known similarity transforms (shift, rotation +-12 deg, "
        f"scale +-12 %) plus camera shake (0.4 px) and sensor noise, {args.frames} frames of {FRAME[0]}x{FRAME[1]} "
        f"at 30 frames/s; three-face videos put three of them side by side. NME and jitter in % of the true "
        "outer-eye-corner distance; jitter is the mean frame-to-frame change of the error vector.",
        "",
        "| run | NME % | jitter % | frames tracked |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['nme']:.2f} | {r['jitter']:.3f} | {100 * r['tracked']:.0f} % |")
    cfg_text = f"min_cutoff {smooth.min_cutoff} Hz, beta {smooth.beta}, d_cutoff {smooth.d_cutoff} Hz"
    lines += [
        "",
        f"Smoothing (One Euro, {cfg_text}): jitter {raw1['jitter']:.3f} -> {sm1['jitter']:.3f} % "
        f"({100 * jitter_cut:.0f} % less), NME {raw1['nme']:.2f} -> {sm1['nme']:.2f} % ({100 * nme_rise:+.1f} %).",
        "",
        "| speed | |",
        "| --- | ---: |",
        f"| tracking loop, 1 face (FaceTracker.step, frames in memory) | {fps1:.0f} frames/s |",
        f"| tracking loop, 3 faces | {fps3:.0f} frames/s |",
        f"| a detection frame (Haar detector + landmarks), 1 face | {detect_ms:.0f} ms |",
        f"| whole pipeline incl. mp4 decode, drawing (points, pose, ids, glasses), mp4v encode, JSONL, "
        f"detector every 30 frames | {pipeline_fps:.0f} frames/s |",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared with other jobs "
        "while this ran, so speeds are lower bounds.",
        "",
        "| target | met | value |",
        "| --- | --- | --- |",
    ]
    for name, (ok, value) in targets.items():
        lines.append(f"| {name} | {'yes' if ok else '**no**'} | {value} |")
    if grid:
        lines += ["", "One Euro sweep (1-face videos):", "", "| min_cutoff | beta | NME % | jitter % |",
                  "| ---: | ---: | ---: | ---: |"]
        lines += [f"| {g['min_cutoff']} | {g['beta']} | {g['nme']:.2f} | {g['jitter']:.3f} |" for g in grid]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video.md").write_text(text, encoding="utf-8")
    (args.out / "video.json").write_text(json.dumps({
        "model": model.path.name, "faces": len(faces), "frames": args.frames, "rows": rows,
        "one_euro": {"min_cutoff": smooth.min_cutoff, "beta": smooth.beta, "d_cutoff": smooth.d_cutoff},
        "tracking_fps_1_face": fps1, "tracking_fps_3_faces": fps3, "detection_frame_ms": detect_ms,
        "pipeline_fps": pipeline_fps, "targets": {k: {"met": ok, "value": v} for k, (ok, v) in targets.items()},
        "grid": grid}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
