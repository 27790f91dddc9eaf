"""Training speed of 1 process vs ``torchrun --nproc_per_node N`` (DistributedDataParallel, gloo on CPU).

    python benchmarks/torchrun_steps.py [--samples 1024] [--epochs 3] [--nproc 2] [-o key=value ...]

Both runs train ``configs/default.yaml`` with the same overrides on the same
training faces (HELEN's training split only by default: loading is not what is
measured, and HELEN reads in seconds; YouTube-Faces would add a minute per run), through the
real command line (``python -m facepoints.cli train`` and
``python -m torch.distributed.run --standalone --nproc_per_node N -m facepoints.cli train``).
The figures come from each run's ``history.csv`` (seconds per epoch, written by
rank 0): the first epoch (warm-up, loader start) is left out when there are
more. An epoch's seconds include its validation pass, which every rank runs
in full, so the DDP figure is slightly pessimistic. Under DDP each process
takes ``optim.batch_size`` faces per step, so a step covers N times the faces:
faces/s is the comparable figure, steps/s is reported too. Writes
benchmarks/results/torchrun.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import markdown, provenance

RESULTS = ROOT / "benchmarks" / "results"
HELEN = "[{path: ../shared/data/300w-68/helen/trainset, format: ibug-pts, convention: 300w}]"


def overrides(samples: int, epochs: int, out_dir: Path, extra: list[str]) -> list[str]:
    base = [f"max_train_samples={samples}", f"optim.epochs={epochs}", "optim.warmup_epochs=0",
            f"out_dir={out_dir.relative_to(ROOT).as_posix()}", "name=torchrun-bench", f"data.train={HELEN}"]
    return [a for o in base + extra for a in ("-o", o)]


def steps_per_epoch(train_faces: int, batch: int, world: int) -> int:
    """Optimizer steps per epoch on each rank, as facepoints.train builds its loaders."""
    per_rank = train_faces // world if world > 1 else train_faces  # DistributedSampler(drop_last=True)
    drop_last = train_faces > batch * world
    return per_rank // batch if drop_last else math.ceil(per_rank / batch)


def run(world: int, args: argparse.Namespace) -> dict:
    out_dir = ROOT / "runs" / "benchmarks" / f"torchrun-{world}"
    if (out_dir / "last.pt").exists():
        (out_dir / "last.pt").unlink()  # never resume an old run
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
                if world > 1 else [sys.executable])
    cmd = [*launcher, "-m", "facepoints.cli", "train", args.config,
           *overrides(args.samples, args.epochs, out_dir, args.override)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    found = re.search(r"train faces: (\d+)", proc.stdout)
    if not found:
        raise SystemExit(f"cannot find 'train faces: N' in the output of {' '.join(cmd)}")
    faces = int(found.group(1))
    with open(out_dir / "history.csv", newline="", encoding="utf-8") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    timed = seconds[1:] if len(seconds) > 1 else seconds
    batch = int(re.search(r"batch_size: (\d+)", (out_dir / "config.yaml").read_text()).group(1))
    steps = steps_per_epoch(faces, batch, world)
    per_epoch = sum(timed) / len(timed)
    shown = (["torchrun", *launcher[3:]] if world > 1 else ["python"]) + cmd[len(launcher):]
    return {"processes": world, "command": " ".join(shlex.quote(c) for c in shown), "train_faces": faces,
            "batch_per_process": batch, "steps_per_epoch": steps, "epoch_seconds": [round(s, 2) for s in seconds],
            "epochs_timed": len(timed), "steps_per_s": round(steps / per_epoch, 3),
            "faces_per_s": round(steps * batch * world / per_epoch, 1), "wall_seconds": round(wall, 1)}


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "torchrun.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    rows = results["runs"]
    base = rows[0]["faces_per_s"]
    lines = ["# Training with torchrun: 1 process vs DDP", "", markdown(results["provenance"]), "",
             f"Load average before the runs: {results['load_before']} ({results['note']}).", "",
             ("| processes | faces/epoch | batch per process | steps/epoch (per process) | epoch seconds "
             "| steps/s | faces/s | speed-up (faces/s) | wall seconds |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['processes']} | {r['train_faces']} | {r['batch_per_process']} | {r['steps_per_epoch']} | "
                     f"{', '.join(str(s) for s in r['epoch_seconds'])} | {r['steps_per_s']} | {r['faces_per_s']} | "
                     f"{r['faces_per_s'] / base:.2f}x | {r['wall_seconds']} |")
    lines += ["", "Commands (from the project root):", ""] + [f"- `{r['command']}`" for r in rows]
    lines += ["", ("steps/s and faces/s average the epochs after the first; epoch seconds include each epoch's "
              "validation pass (run in full by every rank). Wall seconds include reading the data and start-up.")]
    (RESULTS / "torchrun.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--samples", type=int, default=1024,
                    help="at most this many training faces per epoch (max_train_samples; HELEN holds ~790)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3; the first is not timed)")
    ap.add_argument("--nproc", type=int, default=2, help="processes of the torchrun run (default 2)")
    ap.add_argument("-o", "--override", action="append", default=[], help="more key=value config overrides")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    busy = sorted({line.split(" train")[0].split("/")[-1] for line in ps.splitlines()
                   if "python" in line and " train" in line})
    note = ("quiet" if load < 0.5 and not busy else
            "UNDER LOAD, figures are low" + (f": other training running ({', '.join(busy)})" if busy else ""))
    results = {"provenance": provenance(), "load_before": round(load, 2), "note": note,
               "runs": [run(1, a), run(a.nproc, a)]}
    write(results)
    print((RESULTS / "torchrun.md").read_text())


if __name__ == "__main__":
    main()
