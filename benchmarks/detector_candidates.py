"""Which detector checkpoint ships: each candidate's pyramid choice on the held-out photos, side by side.

    python benchmarks/detector_candidates.py

Reads the ``detector_pyramid.py --model CANDIDATE --out ...`` results kept in
benchmarks/results/detector_candidates/ (every one on the same held-out
validation photos, no test set) and applies the same rule as the pyramid: the
highest mean AP; within ``AP_TIE`` of it, the fewest false detections per
photo. Candidates measured before the ``rotated`` or ``grey`` sets existed are
listed but not compared. Writes benchmarks/results/detector_candidates/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_pyramid import AP_TIE, choose  # noqa: E402

FOLDER = ROOT / "benchmarks" / "results" / "detector_candidates"
SETS = ("composed", "natural", "enlarged", "rotated", "grey")


def load_candidates(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def pick(cands: dict[str, dict]) -> str:
    """The pyramid's own rule (``detector_pyramid.choose``) over the candidates measured on every set."""
    full = {k: c["chosen"] for k, c in cands.items() if all(s in c["chosen"] for s in SETS)}
    winner = choose(list(full.values()))
    return next(k for k, row in full.items() if row is winner)


def main() -> None:
    cands = load_candidates(FOLDER)
    winner = pick(cands)
    lines = ["# Detector candidates on the held-out photos", "",
             "Command: `python benchmarks/detector_candidates.py` (reads the `detector_pyramid.py --model ...` "
             "results in this folder; each file records its own command, commit and versions).", "",
             f"Rule: each candidate at its own chosen pyramid; the highest mean AP over the held-out sets, "
             f"within {AP_TIE} of it the fewest false detections per photo. Candidates measured before the "
             "`rotated` or `grey` sets existed are shown but not compared.", "",
             f"Picked by the rule: **{winner}**. The shipped detector is the one whose card "
             "(`facepoints/weights/detector.json`, `retrain`) names its recipe; docs/detection.md says which "
             "candidate that is.", "",
             "| candidate | band_px / step / overlap | " + " | ".join(f"{s} recall / FP per photo / AP" for s in SETS)
             + " | mean AP |", "|---|---|" + "---:|" * (len(SETS) + 1)]
    for name, c in cands.items():
        ch = c["chosen"]
        cells = [f"{100 * ch[s]['recall']:.1f} % / {ch[s]['fp_per_photo']:.3f} / {ch[s]['ap']:.3f}" if s in ch
                 else "not measured" for s in SETS]
        mark = "**" if name == winner else ""
        lines.append(f"| {mark}{name}{mark} | {ch['band_px']:g} / {ch['pyramid_step']:g} / "
                     f"{ch.get('band_overlap') or 1:g} | " + " | ".join(cells) + f" | {ch['mean_ap']:.4f} |")
    (FOLDER / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
