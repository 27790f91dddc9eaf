"""Which detector checkpoint ships: each candidate's pyramid choice on the held-out photos, side by side.

    python benchmarks/detector_candidates.py

Reads the ``detector_pyramid.py --model CANDIDATE --out ...`` results kept in
benchmarks/results/detector_candidates/ (every one on the same held-out
validation photos, no test set) and applies the same rule as the pyramid: the
highest mean AP; within ``AP_TIE`` of it, the fewest false detections per
photo. Only candidates measured on the same held-out sets as the newest
measurement (the same faces in each set), with a recorded verifier, and whose
weights still exist are compared; the others are listed. Writes
benchmarks/results/detector_candidates/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_pyramid import AP_TIE, choose  # noqa: E402

FOLDER = ROOT / "benchmarks" / "results" / "detector_candidates"
SETS = ("composed", "natural", "enlarged", "rotated", "rotated large", "grey")  # "rotated large": session 31
# Candidates whose weights are gone cannot ship, whatever they measured.
LOST = {name: "weights lost with session 29's runs/ folder"
        for name in ("cl56_best", "cl56_last", "one56_best", "one56_last", "grey10_best", "grey10_last")}


def load_candidates(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def sets_key(cand: dict) -> tuple[int, ...] | None:
    """Which held-out sets a candidate was measured on: the faces in each (a changed scene composer moves them)."""
    chosen = cand["chosen"]
    return tuple(chosen[s]["faces"] for s in SETS) if all(s in chosen for s in SETS) else None


def comparable(cands: dict[str, dict]) -> dict[str, str]:
    """Why each candidate is left out of the comparison; the ones not named are compared."""
    newest = max(cands.values(), key=lambda c: c["provenance"]["date"])
    why = {k: "not measured on every set" for k, c in cands.items() if sets_key(c) is None}
    why |= {k: "measured on other held-out scenes" for k, c in cands.items()
            if k not in why and sets_key(c) != sets_key(newest)}
    why |= {k: "not measured with the verifier (or not recorded)" for k, c in cands.items()
            if k not in why and c["provenance"].get("verifier", "none") == "none"}
    looks = newest["provenance"].get("verifier")
    why |= {k: f"measured with other second looks than the newest ({c['provenance']['verifier']})"
            for k, c in cands.items() if k not in why and c["provenance"].get("verifier") != looks}
    return why | {k: reason for k, reason in LOST.items() if k in cands and k not in why}


def pick(cands: dict[str, dict], left_out: dict[str, str]) -> str:
    """The pyramid's own rule (``detector_pyramid.choose``) over the candidates ``comparable`` leaves in."""
    full = {k: c["chosen"] for k, c in cands.items() if k not in left_out}
    winner = choose(list(full.values()))
    return next(k for k, row in full.items() if row is winner)


def main() -> None:
    cands = load_candidates(FOLDER)
    left_out = comparable(cands)
    winner = pick(cands, left_out)
    lines = ["# Detector candidates on the held-out photos", "",
             "Command: `python benchmarks/detector_candidates.py` (reads the `detector_pyramid.py --model ...` "
             "results in this folder; each file records its own command, commit and versions).", "",
             f"Rule: each candidate at its own chosen pyramid; the highest mean AP over the held-out sets, "
             f"within {AP_TIE} of it the fewest false detections per photo. Compared: the candidates measured "
             "on the same held-out sets as the newest measurement (the same faces in each set; the scene "
             "composer changed between sessions), each with the verifier its card names (recorded since "
             "session 30) and the same second looks as the newest (verifier setting and mirrored look, recorded "
             "since session 36), whose weights still exist; the others are shown with the reason.", "",
             f"Picked by the rule: **{winner}**. The shipped detector is the one whose card "
             "(`facepoints/weights/detector.json`, `retrain`) names its recipe; docs/detection.md says which "
             "candidate that is.", "",
             "| candidate | band_px / step / overlap | " + " | ".join(f"{s} recall / FP per photo / AP" for s in SETS)
             + " | mean AP | compared |", "|---|---|" + "---:|" * (len(SETS) + 1) + "---|"]
    for name, c in cands.items():
        ch = c["chosen"]
        cells = [f"{100 * ch[s]['recall']:.1f} % / {ch[s]['fp_per_photo']:.3f} / {ch[s]['ap']:.3f}" if s in ch
                 else "not measured" for s in SETS]
        mark = "**" if name == winner else ""
        cells += [f"{ch['mean_ap']:.4f}", left_out.get(name, "yes")]
        lines.append(f"| {mark}{name}{mark} | {ch['band_px']:g} / {ch['pyramid_step']:g} / "
                     f"{ch.get('band_overlap') or 1:g} | " + " | ".join(cells) + " |")
    (FOLDER / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
