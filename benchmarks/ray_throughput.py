"""Photos/s per core on the Ray Data path, next to the single-process ``detect`` loop on the same photos.

    python benchmarks/ray_throughput.py [--cpus 1 2] [--youtube 200]

Two sets of real photos, because the face detector's cost grows with the pixel
count: whole AFW scenes (up to 1024 px a side, several faces each) and
YouTube-Faces test frames (at most 256 px, one face). For each set: one
single-threaded process running ``load(threads=1).detect`` (the one-core
baseline), then ``detect_to_parquet`` on a local Ray instance of N CPUs with
N single-threaded actors (``--pin`` also pins Ray's own driver, raylet and
read/write tasks to those N cores; by default they may use the others, as
they would on a node where many actors share them). Timed from the start of the Ray job to the Parquet
summary (ray.init excluded). Needs the [ray] extra. Writes
benchmarks/results/ray_throughput.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import markdown, provenance

DATA = Path(os.environ.get("FACEPOINTS_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results"


def photo_sets(youtube: int, scenes: int) -> dict[str, list[Path]]:
    return {
        "AFW scenes (whole photos, <= 1024 px)":
            sorted((DATA / "300w-68" / "afw-scenes" / "images").glob("*.jpg"))[:scenes],
        "YouTube-Faces test frames (<= 256 px)": sorted((DATA / "youtube-faces-68" / "test").glob("*.jpg"))[:youtube],
    }


def single_process(files: list[Path]) -> dict:
    """The one-core baseline: one thread for OpenCV and onnxruntime, photos one after another."""
    import cv2

    import facepoints
    from facepoints.inference import read_image

    cv2.setNumThreads(1)
    model = facepoints.load(threads=1)
    model.detect(read_image(files[0]))  # warm-up: first-run allocations are not throughput
    t = time.perf_counter()
    faces = sum(len(model.detect(read_image(f))) for f in files)
    seconds = time.perf_counter() - t
    return {"photos": len(files), "faces": faces, "seconds": round(seconds, 2),
            "photos_per_s": round(len(files) / seconds, 2), "faces_per_s": round(faces / seconds, 2)}


def on_ray(files: list[Path], cpus: int, batch_size: int, pin: bool) -> dict:
    """``detect_to_parquet`` with ``cpus`` single-threaded actors on a local Ray instance of ``cpus`` CPUs."""
    import ray

    from facepoints.distributed import detect_to_parquet

    if pin:  # children inherit it: Ray's driver, raylet and read/write tasks share the actors' cores
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cpus]))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            summary = detect_to_parquet([str(f) for f in files], str(Path(tmp) / "out"), concurrency=cpus,
                                        batch_size=batch_size)
            seconds = time.perf_counter() - t
    finally:
        ray.shutdown()
    return {"cpus": cpus, "pinned": pin, "photos": summary.photos, "faces": summary.faces,
            "failed": len(summary.failed),
            "seconds": round(seconds, 2), "photos_per_s": round(summary.photos / seconds, 2),
            "photos_per_s_per_core": round(summary.photos / seconds / cpus, 2),
            "faces_per_s": round(summary.faces / seconds, 2)}


def run_isolated(kind: str, files: list[Path], cpus: int, batch_size: int, pin: bool = False) -> dict:
    """Each measurement in its own process, so pinning and Ray's state do not leak into the next one."""
    import subprocess

    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import ray_throughput as b; "
            f"files = [__import__('pathlib').Path(f) for f in json.load(sys.stdin)]; "
            + ("print(json.dumps(b.single_process(files)))" if kind == "single"
               else f"print(json.dumps(b.on_ray(files, {cpus}, {batch_size}, {pin})))"))
    # Ray runs its workers at niceness 15: on a shared machine they would yield to everything else while
    # the single-process baseline does not, so the benchmark runs them at the baseline's priority.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps([str(f) for f in files]), text=True,
                         capture_output=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray_throughput.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    lines = ["# Ray Data throughput per core", "", markdown(results["provenance"]), "",
             (f"Ray {results['ray']}; load average before the run: {results['load_before']} "
             f"({results['note']})"), "",
             "| photos | path | cores | photos | faces | seconds | photos/s | photos/s per core | faces/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in results["sets"].items():
        s = rows["single"]
        lines.append(f"| {name} | single process, `detect` loop | 1 | {s['photos']} | {s['faces']} | {s['seconds']} "
                     f"| {s['photos_per_s']} | {s['photos_per_s']} | {s['faces_per_s']} |")
        for r in rows["ray"]:
            how = f"Ray Data, {r['cpus']} actor(s)" + (", pinned" if r["pinned"] else "")
            lines.append(f"| {name} | {how} | {r['cpus']} | {r['photos']} | {r['faces']} | "
                         f"{r['seconds']} | {r['photos_per_s']} | {r['photos_per_s_per_core']} | {r['faces_per_s']} |")
    lines += ["", ("Ray times run from the start of the job to its Parquet summary (reading, detection, writing, "
              "reading back the summary columns; actor start-up included, `ray.init` excluded). The single-process "
              "row is the detection loop alone, after one warm-up photo.")]
    (RESULTS / "ray_throughput.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="cores for the Ray runs (default 1 2)")
    ap.add_argument("--youtube", type=int, default=200, help="YouTube-Faces test frames (default 200)")
    ap.add_argument("--scenes", type=int, default=185, help="AFW scenes (default all 185)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--pin", action="store_true",
                    help="pin each Ray run to its cores (Ray's own processes included); default: actors only")
    a = ap.parse_args()
    import ray

    load = os.getloadavg()[0]
    results = {"provenance": provenance(), "ray": ray.__version__, "load_before": round(load, 2),
               "note": "quiet" if load < 0.5 else "the machine was busy: figures are low", "sets": {}}
    for name, files in photo_sets(a.youtube, a.scenes).items():
        if (a.youtube if name.startswith("YouTube") else a.scenes) == 0:
            continue
        if not files:
            raise SystemExit(f"no photos for {name} under {DATA}: set FACEPOINTS_DATA")
        rows = {"single": run_isolated("single", files, 1, a.batch_size),
                "ray": [run_isolated("ray", files, c, a.batch_size, a.pin) for c in a.cpus]}
        results["sets"][name] = rows
        print(name, json.dumps(rows))
    write(results)
    print(f"wrote {RESULTS / 'ray_throughput.md'}")


if __name__ == "__main__":
    main()
