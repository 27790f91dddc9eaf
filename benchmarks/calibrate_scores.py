"""Calibrate a model's point scores on held-out validation faces, write them into its card, report on test sets.

    python benchmarks/calibrate_scores.py --model facepoints/weights/default.onnx --write-card

Fitting uses only the training config's own validation split: the people and
photos that ``split_by_group(samples, val_fraction, seed)`` holds out of the
sources in ``--config`` (YouTube-Faces training people + HELEN training
photos). AFW and YouTube-Faces test are only measured, never fitted on.

Each face is run under several box sources ("conditions"): ``tight`` (the
ground-truth tight box, what ``landmarks`` expects), ``detect`` (the runtime's
default detector + box map + refinement, matched to the annotated face) and
``rough-10`` / ``rough-20`` (the tight box shifted by N(0, 10 % / 20 %) of its
size and scaled by exp(N(0, 1.5 x that)): another detector's box, and a source
of failed fits). Point maps are fitted on ``tight`` + ``detect`` (how the runtime
crops); the face map and the doubtful threshold on all four, which hold the
failures that the natural conditions almost never show. Writes
benchmarks/results/scores.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepoints.calibration import (
    ScoreCalibration,
    auroc,
    expected_calibration_error,
    face_nme_of,
    fit_calibration,
    point_hits,
    reliability,
)
from facepoints.card import ModelCard, card_path
from facepoints.datasets import Sample, load_dataset, split_by_group
from facepoints.detectors import box_iou
from facepoints.geometry import tight_box
from facepoints.inference import LandmarkModel
from facepoints.schemes import scheme_from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import markdown as provenance_markdown
from provenance import provenance

DATA = Path(os.environ.get("FACEPOINTS_DATA", ROOT.parent / "shared" / "data"))
TEST_SETS = {"afw": DATA / "300w-68" / "afw", "youtube-test": DATA / "youtube-faces-68" / "test_frames_keypoints.csv"}
TEST_CONVENTIONS = {"afw": "300w", "youtube-test": "youtube"}
NATURAL = ("tight", "detect")  # how the runtime crops: the faces whose false flags the threshold budget limits
MIN_BIN_FACES, MIN_BIN_POINTS = 10, 200  # reliability bins with fewer faces / points are not drawn
MAX_FALSE_FLAG = 0.02  # at most this share of good, well-boxed validation faces may be flagged doubtful
RESULTS = ROOT / "benchmarks" / "results"

Prediction = tuple[np.ndarray, np.ndarray] | None  # (K, 2) points, (K,) raw scores; None = face not found


@dataclass
class Collected:
    """One dataset under one condition: raw scores and normalised errors of the faces that got points."""

    raw: np.ndarray  # (N, K)
    err: np.ndarray  # (N, K) point error / outer-eye-corner distance; NaN where not annotated
    missed: int  # faces the condition produced no points for (detector found nothing there)


# ---------------------------------------------------------------- conditions


def _tight(model: LandmarkModel, s: Sample, rng: np.random.Generator) -> Prediction:
    p, sc = model.landmarks_with_scores(s.image, tight_box(s.points, s.mask)[None])
    return p[0], sc[0]


def _rough(sigma: float) -> Callable[[LandmarkModel, Sample, np.random.Generator], Prediction]:
    def run(model: LandmarkModel, s: Sample, rng: np.random.Generator) -> Prediction:
        tb = tight_box(s.points, s.mask)
        size = tb[2:] - tb[:2]
        centre = (tb[:2] + tb[2:]) / 2 + rng.normal(0, sigma, 2) * size
        size = size * np.exp(rng.normal(0, 1.5 * sigma))
        p, sc = model.landmarks_with_scores(s.image, np.concatenate([centre - size / 2, centre + size / 2])[None])
        return p[0], sc[0]
    return run


def _detect(model: LandmarkModel, s: Sample, rng: np.random.Generator) -> Prediction:
    """The runtime's own faces; the one whose box centre lies in the annotated face's tight box and overlaps it most."""
    tb = tight_box(s.points, s.mask)
    best, best_iou = None, -1.0
    for f in model.detect(s.image):
        cx, cy = (f.box[:2] + f.box[2:]) / 2
        iou = float(box_iou(f.box[None], tb[None])[0, 0])
        if tb[0] <= cx <= tb[2] and tb[1] <= cy <= tb[3] and iou > best_iou:
            best, best_iou = f, iou
    return None if best is None else (best.points, np.asarray(best.scores))


CONDITIONS: dict[str, Callable[[LandmarkModel, Sample, np.random.Generator], Prediction]] = {
    "tight": _tight, "detect": _detect, "rough-10": _rough(0.10), "rough-20": _rough(0.20)}
# Candidate point fits: (box sources fitted on, strata of the face's mean raw score). The one with the lowest
# mean point ECE over all box sources in 2-fold cross-validation on the validation faces is used.
CANDIDATES: dict[str, tuple[tuple[str, ...], int]] = {
    "tight+detect, 1 stratum": (NATURAL, 1), "tight+detect, 3 strata": (NATURAL, 3),
    "all boxes, 1 stratum": (tuple(CONDITIONS), 1), "all boxes, 3 strata": (tuple(CONDITIONS), 3),
    "all boxes, 5 strata": (tuple(CONDITIONS), 5)}


# ---------------------------------------------------------------- data and models


def validation_faces(config: Path, limit: int = 0) -> list[Sample]:
    """The config's held-out validation faces: the same split training used (facepoints.trainset)."""
    from facepoints.recipe import load_train_config
    from facepoints.trainset import load_samples

    cfg = load_train_config(config)
    if cfg.data.val:
        raise SystemExit(f"{config} names its own validation sets (data.val); calibrate on those with a config "
                         "whose validation is the held-out split, or extend this script")
    samples, _ = load_samples(cfg.data.train, cfg)
    _, val = split_by_group(samples, cfg.data.val_fraction, cfg.seed)
    return val[:limit] if limit else val


def test_faces(limit: int = 0) -> dict[str, list[Sample]]:
    out = {}
    for name, path in TEST_SETS.items():
        faces = load_dataset(str(path), progress=False)[0]
        for s in faces:
            s.convention = s.convention or TEST_CONVENTIONS[name]
        out[name] = faces[:limit] if limit else faces
    return out


class Models:
    """One uncalibrated model per annotation convention: each face is judged in its own source's markup."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known = list(ModelCard.for_model(path).conventions)
        self._models: dict[str, LandmarkModel] = {}

    def for_sample(self, s: Sample) -> LandmarkModel:
        conv = s.convention if s.convention in self.known else ""
        if conv not in self._models:
            m = LandmarkModel(self.path, threads=1, convention=conv or None)
            m.calibration = None  # raw scores: what the calibration maps from
            self._models[conv] = m
        return self._models[conv]


def collect(models: Models, samples: list[Sample], condition: str, seed: int) -> Collected:
    rng = np.random.default_rng(seed)
    run = CONDITIONS[condition]
    preds, gts, masks, raws, missed = [], [], [], [], 0
    for s in samples:
        out = run(models.for_sample(s), s, rng)
        if out is None:
            missed += 1
            continue
        preds.append(out[0])
        raws.append(out[1])
        gts.append(s.points)
        masks.append(s.mask)
    k = len(samples[0].points)
    if not preds:
        return Collected(np.zeros((0, k)), np.zeros((0, k)), missed)
    err, _ = point_hits(np.stack(preds), np.stack(gts), np.stack(masks), (36, 45))
    return Collected(np.stack(raws), err, missed)


def collect_all(models: Models, sets: dict[str, list[Sample]]) -> dict[str, dict[str, Collected]]:
    out: dict[str, dict[str, Collected]] = {}
    for i, (name, samples) in enumerate(sets.items()):
        out[name] = {}
        for j, cond in enumerate(CONDITIONS):
            print(f"{name}: {cond} ({len(samples)} faces)", flush=True)
            out[name][cond] = collect(models, samples, cond, seed=100 * i + j)
    return out


# ---------------------------------------------------------------- fitting and measuring


def _pool(per_condition: dict[str, Collected], conditions) -> tuple[np.ndarray, np.ndarray]:
    chosen = [per_condition[c] for c in conditions if len(per_condition[c].raw)]
    return np.concatenate([c.raw for c in chosen]), np.concatenate([c.err for c in chosen])


def fit(val: dict[str, Collected], regions: dict[str, list[int]], candidate: str, fitted_on: str = "",
        max_false_flag: float = MAX_FALSE_FLAG) -> ScoreCalibration:
    conditions, strata = CANDIDATES[candidate]
    raw, err = _pool(val, conditions)
    face_raw, face_err = _pool(val, CONDITIONS)
    natural = np.concatenate([np.full(len(val[c].raw), c in NATURAL) for c in CONDITIONS if len(val[c].raw)])
    return fit_calibration(raw, err, face_raw, face_err, regions, face_natural=natural, strata=strata,
                           max_false_flag=max_false_flag, fitted_on=fitted_on)


def select_candidate(val: dict[str, Collected], regions: dict[str, list[int]]) -> tuple[str, dict[str, dict]]:
    """2-fold cross-validation on the validation faces: each candidate's point ECE per box source on the other half."""
    table: dict[str, dict] = {}
    for name in CANDIDATES:
        eces: dict[str, list[float]] = {c: [] for c in CONDITIONS}
        for fold in range(2):
            half = {c: _half(v, fold) for c, v in val.items()}
            cal = fit({c: h[0] for c, h in half.items()}, regions, name)
            for c, (_, test) in half.items():
                hits = (test.err < cal.tolerance).astype(np.float64)
                eces[c].append(expected_calibration_error(cal.point_probabilities(test.raw),
                                                          np.where(np.isfinite(test.err), hits, np.nan)))
        table[name] = {c: float(np.mean(v)) for c, v in eces.items()}
        table[name]["mean"] = float(np.mean([table[name][c] for c in CONDITIONS]))
    return min(table, key=lambda n: table[n]["mean"]), table


def _half(c: Collected, fold: int) -> tuple[Collected, Collected]:
    """Alternate faces: (the half to fit on, the other half)."""
    other = np.arange(len(c.raw)) % 2 == fold
    return Collected(c.raw[~other], c.err[~other], 0), Collected(c.raw[other], c.err[other], 0)


def measure(cal: ScoreCalibration, c: Collected) -> dict:
    """Point ECE before/after, face-score ECE and AUROC for failed faces, and what the doubtful flag catches."""
    if not len(c.raw):
        return {"faces": 0, "missed": c.missed}
    hits = np.where(np.isfinite(c.err), (c.err < cal.tolerance).astype(np.float64), np.nan)
    prob = cal.point_probabilities(c.raw)
    face = cal.face_scores(prob)
    nme = face_nme_of(c.err)
    failed = nme >= cal.face_nme
    flagged = cal.doubtful(face)
    return {
        "faces": len(c.raw), "missed": c.missed, "nme_pct": float(100 * np.nanmean(nme)),
        "point_hit_rate": float(np.nanmean(hits)), "mean_raw_score": float(c.raw.mean()),
        "mean_point_probability": float(prob.mean()),
        "point_ece_raw": expected_calibration_error(c.raw, hits),
        "point_ece_calibrated": expected_calibration_error(prob, hits),
        "failed_faces": int(failed.sum()), "mean_face_score": float(face.mean()),
        "face_ece": expected_calibration_error(face, (~failed).astype(np.float64)),
        "face_auroc": auroc(-face, failed), "face_auroc_raw_mean": auroc(-c.raw.mean(axis=1), failed),
        "flagged": int(flagged.sum()),
        "failed_flagged": int((flagged & failed).sum()), "good_flagged": int((flagged & ~failed).sum()),
        "reliability_raw": reliability(c.raw, hits), "reliability_calibrated": reliability(prob, hits),
        "reliability_face": reliability(face, (~failed).astype(np.float64)),
    }


# ---------------------------------------------------------------- report


def pooled_faces(cal: ScoreCalibration, per_condition: dict[str, Collected]) -> dict:
    """Face score against failure over all box sources of one set (too few failures under any one)."""
    raw, err = _pool(per_condition, CONDITIONS)
    face = cal.face_scores(cal.point_probabilities(raw))
    good = face_nme_of(err) < cal.face_nme
    return {"faces": len(face), "failed_faces": int((~good).sum()),
            "face_ece": expected_calibration_error(face, good.astype(np.float64)),
            "face_auroc": auroc(-face, ~good), "reliability_face": reliability(face, good.astype(np.float64))}


def _drawn(r: dict[str, list[float]], min_count: int) -> tuple[list[float], list[float]]:
    keep = [i for i, n in enumerate(r["count"]) if n >= min_count]
    return [r["predicted"][i] for i in keep], [r["observed"][i] for i in keep]


def plot(results: dict[str, dict[str, dict]], pooled: dict[str, dict], out: Path) -> None:
    """Reliability diagrams: points per test set (raw and calibrated), and the face score; sparse bins left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = list(results)
    fig, axes = plt.subplots(1, len(tests) + 1, figsize=(4.6 * (len(tests) + 1), 4.4))
    styles = {"tight": "o-", "detect": "s-", "rough-10": "^--", "rough-20": "v:"}
    for ax, ds in zip(axes, tests):
        ax.plot(*_drawn(results[ds]["tight"]["reliability_raw"], MIN_BIN_POINTS), "x-", color="grey",
                label=f"raw score, tight (ECE {results[ds]['tight']['point_ece_raw']:.3f})")
        for cond, m in results[ds].items():
            if m.get("faces"):
                ax.plot(*_drawn(m["reliability_calibrated"], MIN_BIN_POINTS), styles.get(cond, "o-"),
                        label=f"calibrated, {cond} (ECE {m['point_ece_calibrated']:.3f})")
        ax.set_title(f"points on {ds}: P(error < 5 % eye distance)", fontsize=10)
        ax.set_xlabel("predicted probability")
    axes[0].set_ylabel("observed frequency")
    ax = axes[-1]
    for ds, mark in zip(tests, "os^v"):
        m = pooled[ds]
        ax.plot(*_drawn(m["reliability_face"], MIN_BIN_FACES), mark + "-",
                label=f"{ds}, all boxes: {m['failed_faces']}/{m['faces']} failed, ECE {m['face_ece']:.3f}")
    ax.set_title("face score: P(face NME < 10 %), tight + detect + rough boxes", fontsize=10)
    ax.set_xlabel("predicted probability")
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="black", lw=0.6)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def markdown(info: dict, cal: ScoreCalibration, val: dict[str, dict], results: dict[str, dict[str, dict]],
             pooled: dict[str, dict], model: Path, wrote_card: str, selection: dict[str, dict]) -> str:
    rows = [("| set | boxes | faces (missed) | NME % | hit rate | mean raw | mean P | ECE raw | ECE calibrated |"
            " failed | face ECE | AUROC face score | AUROC mean raw | flagged: failed / good |"),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ds, per in [("validation (fit)", val), *results.items()]:
        for cond, m in per.items():
            if not m.get("faces"):
                rows.append(f"| {ds} | {cond} | 0 ({m['missed']}) |" + " |" * 11)
                continue
            rows.append(
                f"| {ds} | {cond} | {m['faces']} ({m['missed']}) | {m['nme_pct']:.2f} | {m['point_hit_rate']:.3f} | "
                f"{m['mean_raw_score']:.3f} | {m['mean_point_probability']:.3f} | {m['point_ece_raw']:.3f} | "
                f"{m['point_ece_calibrated']:.3f} | {m['failed_faces']} | {m['face_ece']:.3f} | "
                f"{m['face_auroc']:.3f} | {m['face_auroc_raw_mean']:.3f} | "
                f"{m['failed_flagged']}/{m['failed_faces']} / {m['good_flagged']}/{m['faces'] - m['failed_faces']} |")
    return "\n".join([
        "# Calibrated point scores and the face score", "", provenance_markdown(info), "",
        f"Model: `{model}`. Calibration: {cal.fitted_on}. {wrote_card}", "",
        ("A point's probability is P(error < 5 % of the outer-eye-corner distance); the face score is P(face NME "
        f"< 10 %) from the face's mean point probability; faces below **{cal.doubtful_below:.3f}** are flagged "
        f"doubtful (threshold: best TPR - FPR on the validation faces among cuts that flag at most "
        f"{100 * MAX_FALSE_FLAG:g} % of the good validation faces with tight or detected boxes)."), "",
        *rows, "",
        "Face score over all four box sources together: " + "; ".join(
            f"{ds}: {m['failed_faces']}/{m['faces']} failed, face ECE {m['face_ece']:.3f}, AUROC {m['face_auroc']:.3f}"
            for ds, m in pooled.items()) + ".", "",
        ("Boxes: `tight` = ground-truth tight box (`landmarks`), `detect` = the runtime's `detect` (default detector + "
        "box map + refinement; missed = no detected face on the annotated one), `rough-10`/`rough-20` = tight box "
        "shifted by N(0, 10 %/20 %) of its size and scaled by exp(N(0, 1.5x that)). Hit rate: share of points "
        "within 5 %. ECE: expected calibration error, 10 equal-width bins; 'raw' takes the raw score as a probability. "
        "Failed: face NME >= 10 %. AUROC: how well a low face score (or low mean raw score) singles out failed "
        "faces (NaN without failures; with a handful of failures it is a rough figure). Each face is judged in "
        "its own source's markup (YouTube-Faces or 300-W) when the model learned both."), "",
        ("Validation rows are in-sample (the faces the maps were fitted on). Reliability diagrams: `scores.png` "
        f"(bins with fewer than {MIN_BIN_POINTS} points or {MIN_BIN_FACES} faces not drawn)."), "",
        "## How the point maps were chosen (validation faces only)", "",
        ("Point ECE per box source on one half of the validation faces, maps fitted on the other half (2 folds); "
        "the lowest mean is used. `strata`: one map per band of the face's mean raw score, blended between bands."),
        "", "| candidate | " + " | ".join(CONDITIONS) + " | mean |", "|---|" + "---:|" * (len(CONDITIONS) + 1),
        *[f"| {name} | " + " | ".join(f"{t[c]:.3f}" for c in [*CONDITIONS, "mean"]) + " |"
          for name, t in selection.items()], ""])


def write_card(card_file: Path, cal: ScoreCalibration) -> None:
    data = json.loads(card_file.read_text(encoding="utf-8"))
    card = ModelCard.from_dict(data, str(card_file))
    old = card.score_calibration or {}
    if old.get("not_a_face_below"):
        print("re-run benchmarks/not_a_face.py --write-card: the calibration changed under its cut")
    card.score_calibration = cal.to_dict() | {"not_a_face_below": old.get("not_a_face_below", 0.0),
                                              "detector_thresholds": old.get("detector_thresholds", {})}
    card.scores = (f"P(point within {100 * cal.tolerance:g} % of the outer-eye-corner distance), calibrated on "
                   "held-out validation faces (score_calibration)")
    card_file.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "facepoints" / "weights" / "default.onnx")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml",
                    help="training config whose held-out validation split is fitted on")
    ap.add_argument("--write-card", action="store_true", help="write the calibration into the model card")
    ap.add_argument("--card", type=Path, default=None, help="card to write (default: the model's sidecar)")
    ap.add_argument("--per-region", action="store_true", help="one point map per face region instead of one")
    ap.add_argument("--limit", type=int, default=0, help="at most this many faces per set (quick check)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    info = provenance("python benchmarks/calibrate_scores.py " + " ".join(sys.argv[1:]))  # before the card changes
    models = Models(args.model)
    scheme = scheme_from_dict(ModelCard.for_model(args.model).scheme)
    regions = ({n: list(v) for n, v in scheme.regions.items()} if args.per_region
               else {"all": list(range(scheme.num_points))})
    val_faces = validation_faces(args.config, args.limit)
    collected = collect_all(models, {"validation": val_faces, **test_faces(args.limit)})
    val_collected = collected.pop("validation")
    chosen, selection = select_candidate(val_collected, regions)
    fitted_on = (f"{len(val_faces)} held-out validation faces of {args.config.name} (split_by_group, its "
                 f"val_fraction and seed); point maps: {chosen} (chosen by 2-fold cross-validation on them); "
                 f"face map and threshold: {', '.join(CONDITIONS)} boxes")
    cal = fit(val_collected, regions, chosen, fitted_on)
    val = {c: measure(cal, v) for c, v in val_collected.items()}
    results = {ds: {c: measure(cal, v) for c, v in per.items()} for ds, per in collected.items()}
    pooled = {ds: pooled_faces(cal, per) for ds, per in collected.items()}
    cal.summary = {"point_ece_cross_validated": {c: round(v, 4) for c, v in selection[chosen].items()},
                   "point_ece_test_tight": {ds: round(r["tight"]["point_ece_calibrated"], 4)
                                            for ds, r in results.items()},
                   "point_ece_test_detect": {ds: round(r["detect"].get("point_ece_calibrated", float("nan")), 4)
                                             for ds, r in results.items()}}
    wrote = ""
    if args.write_card:
        target = args.card or card_path(args.model)
        write_card(target, cal)
        wrote = f"Written into `{target.name}` (`score_calibration`)."
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, pooled, args.out / "scores.png")
    text = markdown(info, cal, val, results, pooled, args.model, wrote, selection)
    (args.out / "scores.md").write_text(text, encoding="utf-8")
    (args.out / "scores.json").write_text(json.dumps({"provenance": info, "model": str(args.model),
                                                      "calibration": cal.to_dict(), "validation": val,
                                                      "tests": results, "tests_face_all_boxes": pooled,
                                                      "selection_cross_validated_point_ece": selection},
                                                     indent=1) + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
