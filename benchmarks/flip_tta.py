"""Does averaging with the mirrored crop (test-time flip) move held-out NME? An ablation for the accuracy issue.

    python benchmarks/flip_tta.py [--checkpoint checkpoints/default.pt] [--config configs/default.yaml]

Judged on the recipe's validation faces only (10 % of the training people and
photos, held out by name), each in its own annotation convention, so nothing
here touches AFW or YouTube-Faces test. The mirrored crop's points are mapped
back (x -> 1 - x, left/right points swapped) before the per-convention offset
is added, since the offset is an annotators' habit that does not mirror.
Writes benchmarks/results/flip_tta.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from provenance import markdown, provenance

from facepoints.checkpoint import load_checkpoint
from facepoints.losses import nme_batch
from facepoints.recipe import load_train_config
from facepoints.schemes import load_scheme
from facepoints.trainset import LandmarkDataset, prepare_samples


def raw_points(net: torch.nn.Module, x: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
    """Points before any convention offset; with ``perm``, from the mirrored crop mapped back."""
    table = net.offset_table()[0] if getattr(net, "point_offset", None) is not None else 0.0
    if perm is None:
        return net(x)["points"] - table
    p = net(torch.flip(x, dims=[-1]))["points"] - table
    p = p[:, perm]
    return torch.stack([1.0 - p[..., 0], p[..., 1]], dim=-1)


def evaluate(net: torch.nn.Module, loader: DataLoader, pair: tuple[int, int], perm: torch.Tensor,
             names: list[str]) -> dict[str, dict[str, float]]:
    """NME % per convention: plain, flip-averaged."""
    has_table = getattr(net, "point_offset", None) is not None
    rows: dict[str, dict[str, list]] = {}
    with torch.no_grad():
        for x, t, m, _, conv in loader:
            off = net.offset_table()[conv.long()] if has_table else 0.0
            plain = raw_points(net, x, None)
            both = (plain + raw_points(net, x, perm)) / 2
            for key, p in (("plain", plain), ("flip_average", both)):
                nme = nme_batch(p + off, t, m, pair).numpy()
                for c, v in zip(conv.tolist(), nme):
                    rows.setdefault(names[int(c)], {}).setdefault(key, []).append(float(v))
    return {c: {k: round(100 * float(np.nanmean(v)), 3) for k, v in r.items()} | {"faces": len(r["plain"])}
            for c, r in rows.items()}


def heldout(config: str):
    """The recipe's config, point scheme and a loader of its held-out faces (one thread: the CPU timing habit)."""
    torch.set_num_threads(1)
    cfg = load_train_config(config)
    scheme = load_scheme(cfg.data.scheme)
    with tempfile.TemporaryDirectory() as tmp:
        _, val = prepare_samples(cfg, scheme, Path(tmp), progress=False)
    return cfg, scheme, DataLoader(LandmarkDataset(val, cfg, scheme, train=False), batch_size=64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "default.pt"))
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "flip_tta")
    args = ap.parse_args()
    cfg, scheme, loader = heldout(args.config)
    net, _ = load_checkpoint(args.checkpoint)
    net.eval()
    perm = torch.as_tensor(scheme.flip_permutation())
    result = evaluate(net, loader, scheme.normalise, perm, list(cfg.data.conventions))
    prov = provenance()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"provenance": prov, "checkpoint": Path(args.checkpoint).name,
                                                         "validation": result}, indent=2) + "\n", encoding="utf-8")
    lines = ["# Test-time flip averaging (validation faces only)", "", markdown(prov), "",
             f"Checkpoint `{Path(args.checkpoint).name}`; the recipe's held-out training people and photos, each face "
             "in its own markup. Flip averaging runs the network twice per face.", "",
             "| validation faces (markup) | faces | NME % | NME % with flip averaging | change |",
             "|---|---:|---:|---:|---:|"]
    for conv, r in result.items():
        lines.append(f"| {conv} | {r['faces']} | {r['plain']:.3f} | {r['flip_average']:.3f} | "
                     f"{r['flip_average'] - r['plain']:+.3f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
