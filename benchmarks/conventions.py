"""What the per-convention offsets gain: one model with an offset per training source's markup against the same
recipe with one shared output, on the recipe's held-out faces of each markup (an ablation for the accuracy issue).

    python benchmarks/conventions.py --with runs/v5/best.pt --without runs/noconv40/best.pt

Both checkpoints come from configs/default.yaml at 40 epochs without a teacher (run v5), the second with
``data.conventions: []`` (configs/ablation_no_conventions.yaml). The held-out faces are the split of ``--config``
(10 % of the training people and photos, by name), so no test set is touched. Writes
benchmarks/results/conventions.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from flip_tta import heldout, raw_points
from provenance import markdown, provenance

from facepoints.checkpoint import load_checkpoint
from facepoints.losses import nme_batch

ANSWERS = ("one shared output", "offsets: 300-W output", "offsets: each face's own markup")


def answers(shared: torch.nn.Module, offsets: torch.nn.Module, x: torch.Tensor, conv: torch.Tensor) -> list:
    """The three ways of answering, in ANSWERS' order."""
    table = offsets.offset_table()
    raw = raw_points(offsets, x, None)
    return [shared(x)["points"], raw + table[0], raw + table[conv.long()]]


def evaluate(shared: torch.nn.Module, offsets: torch.nn.Module, loader: DataLoader, pair: tuple[int, int],
             names: list[str]) -> dict[str, dict[str, float]]:
    """NME % per markup of the held-out faces and per way of answering."""
    rows: dict[str, dict[str, list[float]]] = {}
    with torch.no_grad():
        for x, t, m, _, conv in loader:
            for key, p in zip(ANSWERS, answers(shared, offsets, x, conv)):
                for c, v in zip(conv.tolist(), nme_batch(p, t, m, pair).numpy()):
                    rows.setdefault(names[int(c)], {}).setdefault(key, []).append(float(v))
    return {c: {k: round(100 * float(np.nanmean(v)), 3) for k, v in r.items()} | {"faces": len(r[ANSWERS[0]])}
            for c, r in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--with", dest="offsets", required=True, help="checkpoint trained with data.conventions")
    ap.add_argument("--without", dest="shared", required=True, help="the same recipe with data.conventions: []")
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "conventions")
    args = ap.parse_args()
    cfg, scheme, loader = heldout(args.config)
    (offsets, _), (shared, _) = load_checkpoint(args.offsets), load_checkpoint(args.shared)
    offsets.eval(), shared.eval()
    result = evaluate(shared, offsets, loader, scheme.normalise, list(cfg.data.conventions))
    prov = provenance()
    args.out.with_suffix(".json").write_text(json.dumps(
        {"provenance": prov, "with": args.offsets, "without": args.shared, "validation": result}, indent=2) + "\n",
        encoding="utf-8")
    lines = ["# Annotation conventions as data: what the per-convention offsets gain (validation faces only)", "",
             markdown(prov), "",
             (f"With offsets: `{args.offsets}`; one shared output: `{args.shared}` (same recipe and epochs, "
             "`data.conventions: []`). Faces: the recipe's held-out training people and photos, grouped by the "
             "markup they were annotated in; float models."), "",
             "| held-out faces (markup) | faces | " + " | ".join(f"NME % {a}" for a in ANSWERS) + " |",
             "|---|---:|" + "---:|" * len(ANSWERS)]
    for conv, r in result.items():
        lines.append(f"| {conv} | {r['faces']} | " + " | ".join(f"{r[a]:.3f}" for a in ANSWERS) + " |")
    lines += ["", ("The shipped models answer in the 300-W markup (`offsets: 300-W output`); "
              "`facepoints.load(convention='youtube')` gives the YouTube-Faces one.")]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
