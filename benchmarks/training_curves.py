"""Validation curves of the default model's recipe and its ablations, from the runs' history.csv files.

    python benchmarks/training_curves.py

Each CSV in benchmarks/results/training/ is a copy of a run's ``history.csv``
(``facepoints train`` writes it); its file name says what the run changed.
Validation: see the note the script writes (the protocol changed at v5), tight ground-truth boxes, float model.
Writes benchmarks/results/training_curves.{md,png}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parent))
from provenance import markdown, provenance  # noqa: E402


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {p.stem: pd.read_csv(p) for p in sorted((RESULTS / "training").glob("*.csv"))}
    # the 68-point landmark runs: detector runs sit beside them, and kaggle15's NME (15 points) is on another scale
    runs = {k: h for k, h in runs.items() if "val_nme" in h and not k.startswith("kaggle15")}
    fig, ax = plt.subplots(figsize=(7, 4))
    prov = provenance()
    lines = ["# Training curves", "", markdown(prov), "",
             "| run | epochs | best val NME % (epoch) | val NME % at epoch 15 | wall time (min) |",
             "|---|---:|---:|---:|---:|"]
    for name, h in runs.items():
        ax.plot(h["epoch"], 100 * h["val_nme"], label=name)
        best = h.loc[h["val_nme"].idxmin()]
        at15 = h.loc[h["epoch"] == 15, "val_nme"]
        lines.append(f"| {name} | {len(h)} | {100 * best['val_nme']:.2f} ({int(best['epoch'])}) | "
                     f"{100 * float(at15.iloc[0]):.2f} | {h['seconds'].sum() / 60:.0f} |" if len(at15) else
                     f"| {name} | {len(h)} | {100 * best['val_nme']:.2f} ({int(best['epoch'])}) | | "
                     f"{h['seconds'].sum() / 60:.0f} |")
    ax.set_ylim(3.5, 8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NME %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "training_curves.png", dpi=110)
    lines += ["", "Runs v2-v4 were validated on AFW + YouTube-Faces test (the old protocol, now retired: those are "
              "test sets); v5 and later on 10 % of the training people and photos held out by name. Their NME columns "
              "are therefore not comparable across the two protocols.", "",
              "Wall time sums the epochs' seconds (validation included, data loading excluded); runs "
              "that shared the 2 cores with another job ran slower.", "", "![curves](training_curves.png)"]
    (RESULTS / "training_curves.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (RESULTS / "training_curves.json").write_text(json.dumps({"provenance": prov, "runs": sorted(runs)}, indent=1),
                                                  encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
