"""Training-step speed of the default landmark network and of the face detector on this CPU: memory format,
bf16 autocast, threads.

    python benchmarks/train_step.py [--config configs/default.yaml] [--detector-config configs/detector_wide.yaml]

Why it exists: the recipes' switches (``channels_last``, ``threads``) were set
from these numbers. bf16 autocast is left off: on top of channels_last it
gains little (within this VM's run-to-run drift) and rounds activations.
Forward + backward + AdamW step on random inputs with each recipe's loss.
Writes benchmarks/results/train_step.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facepoints.detector_model import FaceDetectorNet
from facepoints.detector_train import detection_loss, level_targets, load_detector_config
from facepoints.layout import memory_format
from facepoints.losses import total_loss
from facepoints.models import build_model
from facepoints.recipe import load_train_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import markdown, provenance  # noqa: E402


def step_ms(cfg, threads: int, channels_last: bool, bf16: bool, batches: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = cfg.model
    net = build_model(m.name, 68, m.input_size, m.channels, **m.kwargs).train()
    fmt = memory_format(channels_last)
    net = net.to(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    bs = cfg.optim.batch_size
    x = torch.rand(bs, m.channels, m.input_size, m.input_size).contiguous(memory_format=fmt)
    t = torch.rand(bs, 68, 2) * 0.8 + 0.1
    mask = torch.ones(bs, 68, dtype=torch.bool)
    flipped = (torch.rand(bs) < 0.5).float()

    def one() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        out = {k: v.float() for k, v in out.items()}
        loss = total_loss(out, t, mask, cfg.optim, flipped)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _timed(one, batches)


def detector_step_ms(cfg, threads: int, channels_last: bool, bf16: bool, batches: int) -> float:
    """The detector's step on random scenes with four random faces each (its loss needs real targets)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fmt = memory_format(channels_last)
    net = FaceDetectorNet(cfg.model).train().to(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    rng, bs, side = np.random.default_rng(0), cfg.optim.batch_size, cfg.scene.size
    x = torch.rand(bs, 3, side, side).contiguous(memory_format=fmt)
    per_scene = []
    for _ in range(bs):
        c, s = rng.uniform(0.1 * side, 0.9 * side, (4, 2)), rng.uniform(12, 0.5 * side, 4)
        per_scene.append(level_targets(np.concatenate([c - s[:, None] / 2, c + s[:, None] / 2], 1),
                                       np.zeros((0, 4)), side, side))
    targets = [torch.from_numpy(np.stack(level)) for level in zip(*per_scene)]

    def one() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss, _ = detection_loss([tuple(t.float() if t is not None else None for t in level) for level in out],
                                 targets, cfg.optim)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _timed(one, batches)


def _timed(one, batches: int) -> float:
    for _ in range(2):
        one()
    start = time.perf_counter()
    for _ in range(batches):
        one()
    return (time.perf_counter() - start) / batches * 1000


def table(label: str, step, cfg, batches: int, rows: list[dict]) -> list[str]:
    lines = [label, "", "| threads | memory format | autocast | ms per batch | vs NCHW float32, same threads |",
             "|---:|---|---|---:|---:|"]
    for threads in (1, 2):
        base = None
        for cl, bf16 in ((False, False), (True, False), (False, True), (True, True)):
            ms = step(cfg, threads, cl, bf16, batches)
            base = base or ms
            rows.append({"network": label, "threads": threads, "channels_last": cl, "bf16": bf16,
                         "ms_per_batch": ms})
            lines.append(f"| {threads} | {'channels_last' if cl else 'NCHW'} | {'bf16' if bf16 else 'off'} | "
                         f"{ms:.0f} | {base / ms:.2f}x |")
            print(lines[-1], flush=True)
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--detector-config", default=str(ROOT / "configs" / "detector_wide.yaml"))
    ap.add_argument("--batches", type=int, default=8)
    args = ap.parse_args()
    cfg, det = load_train_config(args.config), load_detector_config(args.detector_config)
    prov = provenance()
    rows: list[dict] = []
    lines = ["# Training step speed", "", markdown(prov), "",
             f"Forward, backward and AdamW step; {os.cpu_count()} CPU cores, nothing else running.", "",
             *table(f"Landmark model `{cfg.model.name}` at {cfg.model.input_size} px, batch {cfg.optim.batch_size}",
                    step_ms, cfg, args.batches, rows),
             *table(f"Face detector (`{Path(args.detector_config).name}`), {det.scene.size} px scenes, batch "
                    f"{det.optim.batch_size}", detector_step_ms, det, args.batches, rows)]
    out = ROOT / "benchmarks" / "results" / "train_step.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"provenance": prov, "rows": rows}, indent=1), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
