"""Scores a person can read: raw confidence -> calibrated probabilities.

The confidence head is trained towards exp(-error / tau) of its own points in
crop units, a number with no meaning to a user (a visibly right face scores
0.12-0.34). Here that raw score becomes a probability with a stated event:

- point probability: P(the point is within ``tolerance`` (5 %) of the outer-eye-
  corner distance of the truth), one monotone map per face region (jaw points
  are judged by the same ruler as eye corners, so the same raw score means less
  on the jaw);
- face score: P(the face's NME < ``face_nme`` (10 %), i.e. not a failed fit),
  a second monotone map from the face's mean point probability;
- ``doubtful_below``: faces under this face score are flagged;
- ``not_a_face_below``: detections under this face score are dropped by
  ``detect``: the points found there are not a face's (chosen on the face
  detector's held-out photos by ``benchmarks/not_a_face.py``);
- ``detector_thresholds``: with that cut behind it, a named detector can run
  at a lower threshold for the same false detections per photo, and finds
  more faces (chosen by the same script, on the same photos).

Both maps are fitted by isotonic regression (pool-adjacent-violators) on held-
out validation faces (``benchmarks/calibrate_scores.py``) and stored as plain
lists in the model card's ``score_calibration``. Pure numpy: the runtime uses it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = "facepoints-score-calibration/1"


class CalibrationError(ValueError):
    """A score calibration is malformed or does not fit the model's points."""


@dataclass
class MonotoneMap:
    """A non-decreasing piecewise-linear map through knots (x ascending), flat beyond the ends."""

    x: list[float]
    y: list[float]

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x, dtype=np.float64), np.asarray(self.y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
            raise CalibrationError(f"monotone map needs equal, non-empty x and y lists (got {x.shape}, {y.shape})")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise CalibrationError("monotone map knots must be finite numbers")
        if (np.diff(x) <= 0).any() or (np.diff(y) < 0).any():
            raise CalibrationError("monotone map knots must have increasing x and non-decreasing y")
        if y.min() < 0 or y.max() > 1:
            raise CalibrationError("monotone map values must be probabilities in [0, 1]")
        self.x, self.y = [float(v) for v in x], [float(v) for v in y]
        self._xa, self._ya = x, y  # arrays once: np.interp would convert the lists on every call

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        return np.interp(np.where(np.isnan(v), -np.inf, v), self._xa, self._ya)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": [round(v, 6) for v in self.x], "y": [round(v, 6) for v in self.y]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "monotone map") -> MonotoneMap:
        if not isinstance(d, dict) or "x" not in d or "y" not in d:
            raise CalibrationError(f"{where}: expected an object with 'x' and 'y' lists")
        try:
            return cls(list(d["x"]), list(d["y"]))
        except (TypeError, ValueError) as e:
            raise CalibrationError(f"{where}: {e}") from None


def pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isotonic (non-decreasing) least-squares fit of y in its given order.

    Returns the blocks: start index, end index (exclusive) and value of each.
    """
    starts: list[int] = []
    ends: list[int] = []
    sums: list[float] = []
    weights: list[float] = []
    for i, (yi, wi) in enumerate(zip(y.tolist(), w.tolist())):
        starts.append(i)
        ends.append(i + 1)
        sums.append(yi * wi)
        weights.append(wi)
        while len(sums) > 1 and sums[-2] / weights[-2] >= sums[-1] / weights[-1]:
            s, wt, e = sums.pop(), weights.pop(), ends.pop()
            starts.pop()
            sums[-1] += s
            weights[-1] += wt
            ends[-1] = e
    values = np.array(sums) / np.array(weights)
    return np.array(starts), np.array(ends), values


def fit_isotonic(raw: np.ndarray, outcome: np.ndarray, min_block: int = 50) -> MonotoneMap:
    """Monotone map raw score -> P(outcome), by PAV on the sorted scores.

    Scores are first grouped into runs of at least ``min_block`` samples (so a
    handful of points cannot make a step of its own), PAV pools those, and the
    knots are each block's mean score and hit rate, joined linearly: the map is
    continuous and non-decreasing. Assumes (as PAV does) that a higher raw score
    never means a worse point; if the raw score carries no signal the map is flat.
    """
    r = np.asarray(raw, dtype=np.float64).ravel()
    o = np.asarray(outcome, dtype=np.float64).ravel()
    keep = np.isfinite(r) & np.isfinite(o)
    r, o = r[keep], o[keep]
    if len(r) < 2:
        raise CalibrationError(f"need at least 2 scored samples to calibrate, got {len(r)}")
    order = np.argsort(r, kind="stable")
    r, o = r[order], o[order]
    groups = max(1, len(r) // max(1, min_block))
    edges = np.linspace(0, len(r), groups + 1).round().astype(int)
    gx = np.array([r[a:b].mean() for a, b in itertools.pairwise(edges)])
    gy = np.array([o[a:b].mean() for a, b in itertools.pairwise(edges)])
    gw = np.diff(edges).astype(np.float64)
    starts, ends, values = pool_adjacent_violators(gy, gw)
    xs = np.array([np.average(gx[a:b], weights=gw[a:b]) for a, b in zip(starts, ends)])
    if len(xs) == 1:
        return MonotoneMap([float(xs[0])], [float(values[0])])
    return MonotoneMap(xs.tolist(), np.clip(values, 0, 1).tolist())


@dataclass
class ScoreCalibration:
    """Raw per-point scores -> point probabilities, face score and the doubtful flag (see module docstring)."""

    regions: dict[str, list[int]]  # region name -> point indices; every point in exactly one region
    point_maps: dict[str, list[MonotoneMap]]  # region -> one raw score -> P(point within tolerance) map per stratum
    face_map: MonotoneMap  # mean point probability -> P(face NME < face_nme)
    doubtful_below: float
    not_a_face_below: float = 0.0
    detector_thresholds: dict[str, float] = field(default_factory=dict)  # detector name -> threshold under the cut
    strata: list[float] = field(default_factory=lambda: [0.0])  # face mean raw score at each stratum's centre
    tolerance: float = 0.05
    face_nme: float = 0.10
    fitted_on: str = ""
    summary: dict[str, Any] = field(default_factory=dict)  # validation figures, for people reading the card

    def __post_init__(self) -> None:
        if set(self.regions) != set(self.point_maps):
            raise CalibrationError(f"score calibration: regions {sorted(self.regions)} and point maps "
                                   f"{sorted(self.point_maps)} differ")
        idx = sorted(i for v in self.regions.values() for i in v)
        if idx != list(range(len(idx))):
            raise CalibrationError("score calibration: regions must cover points 0..K-1 exactly once")
        self.num_points = len(idx)
        self._region_of = np.empty(self.num_points, dtype=np.int64)
        self._names = list(self.regions)
        for j, name in enumerate(self._names):
            self._region_of[self.regions[name]] = j
        self._cols = [np.flatnonzero(self._region_of == j) for j in range(len(self._names))]
        if not 0 <= float(self.doubtful_below) <= 1 or not 0 <= float(self.not_a_face_below) <= 1:
            raise CalibrationError("score calibration: doubtful_below and not_a_face_below must be in [0, 1]")
        self.detector_thresholds = {str(k).lower(): float(v) for k, v in self.detector_thresholds.items()}
        if any(not 0 <= v <= 1 for v in self.detector_thresholds.values()):
            raise CalibrationError("score calibration: detector_thresholds must be in [0, 1]")
        self.strata = [float(v) for v in self.strata]
        if not self.strata or (np.diff(self.strata) <= 0).any():
            raise CalibrationError("score calibration: strata must be a non-empty increasing list")
        bad = [k for k, maps in self.point_maps.items() if len(maps) != len(self.strata)]
        if bad:
            raise CalibrationError(f"score calibration: regions {bad} need one point map per stratum "
                                   f"({len(self.strata)})")

    def point_probabilities(self, raw: np.ndarray) -> np.ndarray:
        """(..., K) raw scores -> (..., K) P(point within tolerance)."""
        r = np.asarray(raw, dtype=np.float64)
        if r.shape[-1:] != (self.num_points,):
            raise CalibrationError(f"score calibration is for {self.num_points} points, scores have shape {r.shape}")
        weights = self._stratum_weights(r.mean(axis=-1))  # (..., S)
        used = np.flatnonzero(weights.reshape(-1, weights.shape[-1]).any(axis=0))  # at most 2 per face
        out = np.zeros_like(r)
        for name, cols in zip(self._names, self._cols):
            sub = r[..., cols]
            for s in used:
                out[..., cols] += weights[..., s:s + 1] * self.point_maps[name][s](sub)
        return out

    def _stratum_weights(self, face_mean: np.ndarray) -> np.ndarray:
        """Linear blend of the two strata whose centres bracket a face's mean raw score: no jumps between strata."""
        n = len(self.strata)
        fm = np.asarray(face_mean, dtype=np.float64)
        if n == 1:
            return np.ones((*fm.shape, 1))
        pos = np.interp(np.where(np.isnan(fm), -np.inf, fm), self.strata, np.arange(n, dtype=np.float64))
        lo = np.minimum(pos.astype(np.int64), n - 2)  # pos >= 0, so the cast floors
        frac = (pos - lo)[..., None]
        eye = np.eye(n)
        return (1.0 - frac) * eye[lo] + frac * eye[lo + 1]

    def face_scores(self, probabilities: np.ndarray) -> np.ndarray:
        """(..., K) point probabilities -> (...) P(face NME < face_nme)."""
        return self.face_map(np.asarray(probabilities, dtype=np.float64).mean(axis=-1))

    def detector_threshold(self, name: str, min_face_score: float) -> float | None:
        """The threshold chosen for this detector with the not-a-face cut behind it; None (the detector's own)
        when a looser cut is asked for: without the cut the lower threshold lets more false detections through."""
        if min_face_score < self.not_a_face_below:
            return None
        return self.detector_thresholds.get(str(name).lower())

    def doubtful(self, face_scores: np.ndarray) -> np.ndarray:
        return np.asarray(face_scores) < self.doubtful_below

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "point_event": f"point within {100 * self.tolerance:g} % of the outer-eye-corner distance of the truth",
            "face_event": f"face NME below {100 * self.face_nme:g} % (not a failed fit)",
            "tolerance": self.tolerance, "face_nme": self.face_nme,
            "regions": {k: list(map(int, v)) for k, v in self.regions.items()},
            "strata": [round(v, 6) for v in self.strata],
            "point_maps": {k: [m.to_dict() for m in maps] for k, maps in self.point_maps.items()},
            "face_map": self.face_map.to_dict(),
            "doubtful_below": round(float(self.doubtful_below), 6),
            "not_a_face_below": round(float(self.not_a_face_below), 6),
            "detector_thresholds": {k: round(v, 6) for k, v in self.detector_thresholds.items()},
            "fitted_on": self.fitted_on, "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "score_calibration") -> ScoreCalibration:
        if not isinstance(d, dict):
            raise CalibrationError(f"{where} must be an object")
        if d.get("format") != FORMAT:
            raise CalibrationError(f"{where}: format {d.get('format')!r} is not {FORMAT!r}; "
                                   "re-run benchmarks/calibrate_scores.py --write-card")
        missing = [k for k in ("regions", "point_maps", "face_map", "doubtful_below") if k not in d]
        if missing:
            raise CalibrationError(f"{where} lacks {', '.join(missing)}")
        try:
            return cls(
                regions={str(k): [int(i) for i in v] for k, v in d["regions"].items()},
                point_maps={str(k): [MonotoneMap.from_dict(m, f"{where}.point_maps.{k}[{i}]") for i, m in enumerate(v)]
                            for k, v in d["point_maps"].items()},
                strata=list(d.get("strata", [0.0])),
                face_map=MonotoneMap.from_dict(d["face_map"], f"{where}.face_map"),
                doubtful_below=float(d["doubtful_below"]), not_a_face_below=float(d.get("not_a_face_below", 0.0)),
                detector_thresholds=dict(d.get("detector_thresholds", {})),
                tolerance=float(d.get("tolerance", 0.05)), face_nme=float(d.get("face_nme", 0.10)),
                fitted_on=str(d.get("fitted_on", "")), summary=dict(d.get("summary", {})),
            )
        except (AttributeError, TypeError, ValueError) as e:
            if isinstance(e, CalibrationError):
                raise
            raise CalibrationError(f"{where}: {e}") from None


# ---------------------------------------------------------------- fitting and measuring


def point_hits(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, pair: tuple[int, int],
               tolerance: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) normalised errors and hits (error < tolerance); masked points and faces without the pair are NaN."""
    d = np.linalg.norm(gt[:, pair[0]] - gt[:, pair[1]], axis=-1)
    d = np.where(mask[:, pair[0]] & mask[:, pair[1]] & (d > 0), d, np.nan)[:, None]
    err = np.where(mask, np.linalg.norm(pred - gt, axis=-1) / d, np.nan)
    hits = np.where(np.isfinite(err), (err < tolerance).astype(np.float64), np.nan)
    return err, hits


def fit_calibration(point_raw: np.ndarray, point_err: np.ndarray, face_raw: np.ndarray, face_err: np.ndarray,
                    regions: dict[str, list[int]], *, face_natural: np.ndarray | None = None,
                    max_false_flag: float = 0.02, tolerance: float = 0.05, face_nme: float = 0.10,
                    strata: int = 1, min_block: int = 50, fitted_on: str = "") -> ScoreCalibration:
    """Point maps from (point_raw, point_err); face map and doubtful threshold from (face_raw, face_err).

    Raw scores are (N, K); errors (N, K) are point errors divided by the
    normalising distance, NaN where a point is not annotated. The face sets may
    differ from the point sets: a failed fit is rare on well-boxed faces, so the
    face map needs faces with harder boxes to learn from; ``face_natural`` marks
    the well-boxed ones, on which the threshold may flag at most
    ``max_false_flag`` of the good faces (see ``choose_threshold``). ``strata``
    > 1 fits one point map per band of the face's mean raw score (equal numbers
    of faces), so a point is judged with its face: the same raw score means
    less on a face the model finds hard overall.
    """
    point_hit = np.where(np.isfinite(point_err), (point_err < tolerance).astype(np.float64), np.nan)
    face_mean = np.asarray(point_raw, dtype=np.float64).mean(axis=1)
    order = np.argsort(face_mean, kind="stable")
    bands = [order[a:b] for a, b in zip(*_band_edges(len(order), strata))]
    centres = [float(np.median(face_mean[band])) for band in bands]
    maps = {name: [fit_isotonic(point_raw[band][:, idx], point_hit[band][:, idx], min_block) for band in bands]
            for name, idx in regions.items()}
    cal = ScoreCalibration(regions, maps, MonotoneMap([0.0, 1.0], [0.0, 1.0]), 0.5, tolerance=tolerance,
                           face_nme=face_nme, fitted_on=fitted_on, strata=_strictly_increasing(centres))
    nme = face_nme_of(face_err)
    ok = np.isfinite(nme)
    mean_p = cal.point_probabilities(face_raw[ok]).mean(axis=1)
    good = nme[ok] < face_nme
    cal.face_map = fit_isotonic(mean_p, good.astype(np.float64), max(10, min_block // 5))
    natural = None if face_natural is None else np.asarray(face_natural, dtype=bool)[ok]
    cal.doubtful_below = choose_threshold(cal.face_scores(cal.point_probabilities(face_raw[ok])), good, natural,
                                          max_false_flag)
    return cal


def _band_edges(n: int, bands: int) -> tuple[list[int], list[int]]:
    if bands < 1 or n < bands:
        raise CalibrationError(f"cannot split {n} faces into {bands} strata")
    edges = np.linspace(0, n, bands + 1).round().astype(int)
    return edges[:-1].tolist(), edges[1:].tolist()


def _strictly_increasing(values: list[float]) -> list[float]:
    """Stratum centres, nudged apart where ties would make them equal."""
    out = [values[0]]
    for v in values[1:]:
        out.append(max(v, out[-1] + 1e-6))
    return out


def face_nme_of(err: np.ndarray) -> np.ndarray:
    """(N, K) normalised point errors -> (N,) mean over annotated points; NaN for a face with none."""
    e = np.asarray(err, dtype=np.float64)
    ok = np.isfinite(e)
    n = ok.sum(axis=1)
    return np.where(n > 0, np.where(ok, e, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def choose_threshold(face_scores: np.ndarray, good: np.ndarray, natural: np.ndarray | None = None,
                     max_false_flag: float = 0.02) -> float:
    """The face-score cut below which faces are flagged doubtful.

    Among cuts that flag at most ``max_false_flag`` of the good ``natural``
    faces (well-boxed ones, the common case: a flag there is a false alarm a
    user sees), the one that best separates failed from good faces overall
    (max TPR - FPR, Youden's J). Falls back to 0.5 without both kinds of face.
    """
    s, g = np.asarray(face_scores, dtype=np.float64), np.asarray(good, dtype=bool)
    nat = np.ones_like(g) if natural is None else np.asarray(natural, dtype=bool)
    if g.all() or not g.any():
        return 0.5
    u = np.unique(s)
    cuts = np.concatenate([[u[0]], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-9]])
    flagged = s[None, :] < cuts[:, None]
    tpr, fpr = flagged[:, ~g].mean(axis=1), flagged[:, g].mean(axis=1)
    budget = flagged[:, g & nat].mean(axis=1) <= max_false_flag if (g & nat).any() else np.ones(len(cuts), bool)
    j = np.where(budget, tpr - fpr, -np.inf)
    return float(np.clip(cuts[int(np.argmax(j))], 0.0, 1.0))


def reliability(prob: np.ndarray, outcome: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Equal-width bins of predicted probability: mean prediction, observed frequency and count per bin."""
    p, o = _finite_pairs(prob, outcome)
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    out: dict[str, list[float]] = {"predicted": [], "observed": [], "count": []}
    for b in range(bins):
        sel = idx == b
        out["predicted"].append(float(p[sel].mean()) if sel.any() else float("nan"))
        out["observed"].append(float(o[sel].mean()) if sel.any() else float("nan"))
        out["count"].append(float(sel.sum()))
    return out


def expected_calibration_error(prob: np.ndarray, outcome: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean |observed - predicted| over equal-width probability bins."""
    r = reliability(prob, outcome, bins)
    n = np.array(r["count"])
    gap = np.abs(np.nan_to_num(np.array(r["observed"])) - np.nan_to_num(np.array(r["predicted"])))
    return float((gap * n).sum() / max(n.sum(), 1))


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``positive`` (ties count half); NaN without both classes."""
    s, y = np.asarray(score, dtype=np.float64), np.asarray(positive, dtype=bool)
    if y.all() or not y.any():
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = y.sum(), (~y).sum()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _finite_pairs(prob: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, o = np.asarray(prob, dtype=np.float64).ravel(), np.asarray(outcome, dtype=np.float64).ravel()
    keep = np.isfinite(p) & np.isfinite(o)
    return np.clip(p[keep], 0, 1), o[keep]
