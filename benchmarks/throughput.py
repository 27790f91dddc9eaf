"""Throughput of ``facepoints detect`` over a folder of real photos: 1 worker vs 2 (or more) worker processes.

Each run is the real command in a child process (``--no-draw --format jsonl``),
so the figures include decoding, detection, landmarks and writing results, as
users get them. The folder is passed ``--repeat`` times, so process start-up
(spawning workers, loading models) is a small share of the time. Peak memory
is the largest sum of resident memory over the command and its workers,
sampled every 20 ms from /proc. Speed figures need a quiet machine: compare
the ratio, not the absolute figures, when other jobs share the cores.

    python benchmarks/throughput.py                       # AFW scene photos, workers 1 and 2
    python benchmarks/throughput.py --photos DIR --workers 1 2 4 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEPOINTS_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_PHOTOS = DATA / "300w-68" / "afw-scenes" / "images"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def run_once(photos: Path, workers: int, repeat: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "facepoints.cli", "detect", *[str(photos)] * repeat, "--out", str(out),
           "--format", "jsonl", "--no-draw", "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = [r for r in records if "error" not in r]
    faces = sum(len(r["faces"]) for r in ok)
    return {"workers": workers, "photos": len(ok), "skipped": len(records) - len(ok), "faces": faces,
            "seconds": round(seconds, 2), "photos_per_s": round(len(ok) / seconds, 2),
            "faces_per_s": round(faces / seconds, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def provenance_block(command: str) -> dict:
    try:
        from benchmarks.provenance import provenance
    except ImportError:  # the shared helper is not in this checkout yet
        import platform
        from importlib.metadata import version

        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        return {"command": command, "commit": commit.strip() or "unknown", "python": platform.python_version(),
                "cpu": f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
                **{n: version(n) for n in ("onnxruntime", "opencv-python-headless", "numpy")}}
    return provenance(command)


def write(rows: list[dict], prov: dict, photos: Path, repeat: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = rows[0]
    for r in rows:
        r["speedup"] = round(r["photos_per_s"] / base["photos_per_s"], 2)
    (RESULTS / "throughput.json").write_text(json.dumps({"provenance": prov, "photos": str(photos),
                                                         "repeat": repeat, "runs": rows}, indent=2) + "\n")
    lines = ["# Throughput: `facepoints detect --workers N`", "",
             "\n".join(f"- {k}: {v}" for k, v in prov.items()), "",
             f"Photos: `{photos}` ({base['photos'] // repeat} photos, passed {repeat} times), no drawing, JSONL "
             "output; wall clock of the whole command, start-up included. Peak RSS: the command and all its "
             "workers.", "",
             "| workers | photos | faces | seconds | photos/s | faces/s | speed-up | peak RSS (MB) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['workers']} | {r['photos']} | {r['faces']} | {r['seconds']} | {r['photos_per_s']} | "
              f"{r['faces_per_s']} | {r['speedup']}x | {r['peak_rss_mb']} |" for r in rows]
    (RESULTS / "throughput.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="A folder of photos.")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3, help="Pass the folder this many times.")
    ap.add_argument("--limit", type=int, default=0, help="Use only the first N photos (for a quick check).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = args.photos
        if args.limit:
            photos = Path(tmp) / "photos"
            photos.mkdir()
            for p in sorted(args.photos.iterdir())[: args.limit]:
                os.symlink(p.resolve(), photos / p.name)
        rows = [run_once(photos, w, args.repeat, Path(tmp) / f"out{w}") for w in args.workers]
    command = "python benchmarks/throughput.py " + " ".join(sys.argv[1:])
    write(rows, provenance_block(command.strip()), args.photos, args.repeat)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
