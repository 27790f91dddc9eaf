"""Does the face verifier help, how should its score combine with the detector's, at what threshold, and should
the detector also look at the mirrored photo?

    python benchmarks/verifier.py [--write-card] [--verifier CANDIDATE.onnx --out benchmarks/results/NAME]

On the detector's held-out photos (``benchmarks/detector_validation.py``: the
people and photos the detector and the verifier never trained on, composed,
natural, enlarged, rotated and grey), the detector keeps every candidate down to the
verifier's candidate threshold; each gets the verifier's probability, and the
final score is their weighted geometric mean (``weight`` 0 = the detector
alone, 1 = the verifier alone). The detector runs as it is and with ``flip``
(its scores averaged with the mirrored photo's). The weight and flip with the
best mean AP over the sets win (the detector's pyramid rule); the threshold is the lowest final
score with at most ``--fp-budget`` false detections per photo, pooled over the
sets. No test set is used. ``--write-card`` stores the choice in the
detector card. Writes benchmarks/results/verifier.{md,json} (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_validation import validation_sets
from provenance import markdown, provenance

from facepoints.detectors import CnnDetector
from facepoints.detectors.metrics import match_image, summarise, threshold_for_fp_budget
from facepoints.detectors.verifier import FaceVerifier, candidate_floor, combine

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
CARD = ROOT / "facepoints" / "weights" / "detector.json"


def candidates(sets: dict, detector: CnnDetector, verifier: FaceVerifier) -> tuple[dict, float]:
    """Per set and photo: candidate boxes, detector scores, verifier probabilities; and verifier ms per photo."""
    out, spent, photos = {}, 0.0, 0
    for name, scenes in sets.items():
        rows = []
        for sc in scenes:
            dets = detector.detect(sc.image)
            boxes = np.array([d.box for d in dets]).reshape(-1, 4)
            t0 = time.perf_counter()
            v = verifier.probabilities(sc.image, boxes)
            spent += time.perf_counter() - t0
            photos += 1
            rows.append((boxes, np.array([d.score for d in dets]), v, sc))
        out[name] = rows
    return out, 1000 * spent / max(1, photos)


def evaluate(cands: dict, weight: float, budget: float, flip: bool) -> dict:
    results = {name: [match_image(b, combine(d, v, weight), sc.boxes, sc.ignore) for b, d, v, sc in rows]
               for name, rows in cands.items()}
    thr = threshold_for_fp_budget([r for rs in results.values() for r in rs], budget)
    per = {name: summarise(rs, thr) for name, rs in results.items()}
    return {"flip": flip, "weight": weight, "threshold": round(thr, 4),
            "mean_ap": round(float(np.mean([s.ap for s in per.values()])), 4),
            "sets": {n: {"faces": s.faces, "found": s.found, "recall": round(s.recall, 4),
                         "fp_per_photo": round(s.fp_per_image, 4), "ap": round(s.ap, 4)} for n, s in per.items()}}


def deployed_ms(cands: dict, best: dict, floor: float, verifier: FaceVerifier) -> dict:
    """Verifier ms per photo as ``detect`` runs it: only candidates that could reach the chosen threshold."""
    bound = candidate_floor(best["threshold"], best["weight"], floor)
    spent, n, boxes = 0.0, 0, 0
    for rows in cands.values():
        for b, d, _, sc in rows:
            keep = b[d >= bound]
            t0 = time.perf_counter()
            verifier.probabilities(sc.image, keep)
            spent += time.perf_counter() - t0
            n, boxes = n + 1, boxes + len(keep)
    return {"candidate_bound": round(bound, 4), "ms_per_photo": 1000 * spent / max(1, n),
            "boxes_per_photo": boxes / max(1, n)}


def per_set_columns(names: list[str]) -> tuple[str, str]:
    """The header cells and alignment row of the per-set columns that ``per_set_cells`` fills."""
    return " | ".join(f"{n}: recall / FP per photo / AP" for n in names), "---|" * len(names)


def per_set_cells(row: dict, names: list[str]) -> str:
    """One ``evaluate`` row's recall, false detections per photo and AP on each held-out set, as table cells."""
    return " | ".join(f"{100 * row['sets'][n]['recall']:.1f} % / {row['sets'][n]['fp_per_photo']:.3f} / "
                      f"{row['sets'][n]['ap']:.3f}" for n in names)


def write(rows: list[dict], best: dict, sets: dict, verifier_ms: float, deployed: dict,
          args: argparse.Namespace) -> None:
    prov = provenance()  # the command line as run, options included
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"provenance": prov, "rows": rows, "chosen": best,
                                                   "verifier_ms_per_photo_all_candidates": verifier_ms,
                                                   "deployed": deployed}, indent=1) + "\n")
    names = list(sets)
    lines = ["# The face verifier on the held-out photos (its weight and threshold are chosen here)", "",
             markdown(prov), "",
             f"Candidates: the detector's boxes down to score {args.candidate_threshold}; final score = detector^(1-w) "
             f"x verifier^w. Threshold: the lowest final score with at most {args.fp_budget} false detections per "
             "photo over all the sets. Sets: " + ", ".join(f"{n} ({len(sets[n])} photos)" for n in names) + ".", "",
             "| flip | weight w | threshold | mean AP | " + per_set_columns(names)[0] + " |",
             "|---|---:|---:|---:|" + per_set_columns(names)[1]]
    for r in rows:
        mark = " (chosen)" if r is best else ""
        lines.append(f"| {'yes' if r['flip'] else 'no'} | {r['weight']}{mark} | {r['threshold']:.4f} | "
                     f"{r['mean_ap']:.4f} | " + per_set_cells(r, names) + " |")
    lines += ["", (f"w = 0 is the detector alone under the same threshold rule. Verifier time (1 thread, a photo's "
              f"candidates in one batch): {verifier_ms:.2f} ms per photo for every candidate down to "
              f"{args.candidate_threshold}; as `detect` runs it with the chosen weight, only candidates that could "
              f"reach the threshold (detector score >= {deployed['candidate_bound']:.3f}, "
              f"{deployed['boxes_per_photo']:.1f} per photo): {deployed['ms_per_photo']:.2f} ms per photo.")]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verifier", type=Path, default=ROOT / "facepoints" / "weights" / "verifier.onnx")
    ap.add_argument("--config", default=str(ROOT / "configs" / "detector_finetune.yaml"))
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "detector_val_sets.pkl")
    ap.add_argument("--candidate-threshold", type=float, default=0.05)
    ap.add_argument("--fp-budget", type=float, default=0.05)
    ap.add_argument("--write-card", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "verifier",
                    help="results path without suffix (.md and .json are written)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    sets = validation_sets(args.config, args.cache)
    rows, by_flip = [], {}
    for flip in (False, True):
        detector = CnnDetector(threshold=args.candidate_threshold, threads=1, verify=False, flip=flip)
        by_flip[flip] = candidates(sets, detector, FaceVerifier(args.verifier, threads=1))
        rows += [evaluate(by_flip[flip][0], w, args.fp_budget, flip) for w in WEIGHTS]
    best = max(rows, key=lambda r: r["mean_ap"])
    cands, ms = by_flip[best["flip"]]
    deployed = deployed_ms(cands, best, args.candidate_threshold, FaceVerifier(args.verifier, threads=1))
    write(rows, best, sets, ms, deployed, args)
    if args.write_card and best["weight"] > 0:
        card = json.loads(CARD.read_text(encoding="utf-8"))
        card["flip"] = best["flip"]
        card["verifier"] = {"file": args.verifier.name, "candidate_threshold": args.candidate_threshold,
                            "weight": best["weight"], "threshold": best["threshold"],
                            "rule": f"weight and flip: best mean AP over the held-out sets; threshold: lowest "
                                    f"final score with at most {args.fp_budget} false detections per held-out photo "
                                    "(benchmarks/results/verifier.md)"}
        CARD.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"wrote flip {best['flip']}, the verifier's weight {best['weight']} and threshold {best['threshold']} "
              f"into {CARD}")


if __name__ == "__main__":
    main()
