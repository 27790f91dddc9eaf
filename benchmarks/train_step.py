"""Training-step speed of the default architecture on this CPU: memory format, bf16 autocast, threads.

    python benchmarks/train_step.py [--config configs/default.yaml] [--batches 8]

Why it exists: the recipe's switches (``channels_last``, ``threads``) were set
from these numbers. bf16 autocast is left off: on top of channels_last it
gains 0-10 % here (within this VM's run-to-run drift) and rounds activations. Forward + backward + AdamW step on random crops with the recipe's loss
terms. Writes benchmarks/results/train_step.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from facepoints.models import build_model
from facepoints.losses import total_loss
from facepoints.recipe import load_train_config

ROOT = Path(__file__).resolve().parents[1]


def step_ms(cfg, threads: int, channels_last: bool, bf16: bool, batches: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = cfg.model
    net = build_model(m.name, 68, m.input_size, m.channels, **m.kwargs).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
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

    for _ in range(2):
        one()
    start = time.perf_counter()
    for _ in range(batches):
        one()
    return (time.perf_counter() - start) / batches * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--batches", type=int, default=8)
    args = ap.parse_args()
    cfg = load_train_config(args.config)
    lines = ["# Training step speed", "", "Command: `python benchmarks/train_step.py`", "",
             f"Model `{cfg.model.name}` at {cfg.model.input_size} px, batch {cfg.optim.batch_size}; "
             f"{os.cpu_count()} CPU cores, nothing else running.", "",
             "| threads | memory format | autocast | ms per batch | vs NCHW float32, same threads |",
             "|---:|---|---|---:|---:|"]
    for threads in (1, 2):
        base = None
        for cl, bf16 in ((False, False), (True, False), (False, True), (True, True)):
            ms = step_ms(cfg, threads, cl, bf16, args.batches)
            base = base or ms
            lines.append(f"| {threads} | {'channels_last' if cl else 'NCHW'} | {'bf16' if bf16 else 'off'} | "
                         f"{ms:.0f} | {base / ms:.2f}x |")
            print(lines[-1], flush=True)
    out = ROOT / "benchmarks" / "results" / "train_step.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
