"""Landmark accuracy metrics, pure numpy: NME (all and visible points), per-region NME, failure rate, CED, AUC.

Conventions, chosen to match the 300-W literature so numbers are comparable:

* NME of a face = mean Euclidean error over its *valid* ground-truth points,
  divided by the ground-truth distance between the scheme's ``normalise``
  pair (outer eye corners 36/45 for ibug68, i.e. "inter-ocular"), or, for
  schemes with ``normalise_by: box`` (AFLW), by sqrt(w * h) of the face box.
  Functions return fractions (0.05 = 5 %); ``EvalResult`` reports percent.
* Where the data marks occlusion, a second NME over the *visible* points only
  is reported beside the all-points one (same normaliser); occluded points
  keep their coordinates, so the all-points NME still measures them.
* Faces whose normaliser cannot be measured get NaN and are *reported* in
  ``EvalResult.skipped`` rather than silently dropped or guessed.
* A face with a non-finite prediction at a valid point gets error ``inf``: a
  model that returns NaN has failed, so it counts as a failure (FR, CED,
  AUC, median) and is left out of the mean only, with a note in ``skipped``.
* AUC is computed exactly (analytically) from the errors, not from a coarse
  CED grid, so it does not depend on the plotting resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only for annotations: datasets pull in PIL/tqdm, schemes.py yaml
    from facepoints.datasets import Sample
    from facepoints.schemes import PointScheme

FAILURE_THRESHOLD = 0.10
AUC_MAX_ERROR = 0.10
_EPS_NORM = 1e-6  # pixels: a normaliser shorter than this is a degenerate annotation


# --------------------------------------------------------------------------- metrics


def _as_batch(pred, gt, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if g.ndim == 2:  # a single face is accepted for convenience
        p, g = p[None], g[None]
        mask = None if mask is None else np.asarray(mask)[None]
    if p.shape != g.shape or g.ndim != 3 or g.shape[-1] != 2:
        raise ValueError(f"pred and gt must both be (N, K, 2); got {p.shape} and {g.shape}")
    m = np.ones(g.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != g.shape[:2]:
        raise ValueError(f"mask must be (N, K) = {g.shape[:2]}, got {m.shape}")
    # A point enters the metric only if it is marked valid AND annotated.
    m = m & np.isfinite(g).all(axis=-1)
    return p, g, m


def face_box_sizes(g: np.ndarray, m: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
    """sqrt(w * h) per face: of its annotation box where it has one, else of its valid points' tight box."""
    n = len(g)
    b = np.full((n, 4), np.nan) if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(n, 4)
    out = np.full(n, np.nan)
    for k in range(n):
        box = b[k]
        if not np.isfinite(box).all():
            pts = g[k][m[k]]
            if len(pts) < 2:
                continue
            box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
        w, h = box[2] - box[0], box[3] - box[1]
        if w > 0 and h > 0:
            out[k] = math.sqrt(w * h)
    return np.where(out > _EPS_NORM, out, np.nan)


def _scheme_normaliser(g: np.ndarray, m: np.ndarray, scheme: PointScheme, boxes: np.ndarray | None) -> np.ndarray:
    if scheme.normalise_by == "box":
        return face_box_sizes(g, m, boxes)
    return _normaliser(g, m, scheme.normalise)


def describe_normaliser(scheme: PointScheme) -> str:
    """What a scheme's NME is divided by, in words, for reports."""
    if scheme.normalise_by == "box":
        return "sqrt(w * h) of the face box (the annotation box; the tight box of the points where there is none)"
    i, j = scheme.normalise
    return f"the distance between ground-truth points {i} ({scheme.points[i]}) and {j} ({scheme.points[j]})"


def _normaliser(g: np.ndarray, m: np.ndarray, norm_pair: tuple[int, int]) -> np.ndarray:
    """Per-face normalising distance; NaN where it cannot be measured."""
    i, j = (int(v) for v in norm_pair)
    d = np.linalg.norm(g[:, i] - g[:, j], axis=-1)
    ok = m[:, i] & m[:, j] & (d > _EPS_NORM)
    return np.where(ok, d, np.nan)


def _masked_mean_error(p: np.ndarray, g: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Mean point error per face over valid points: NaN if none valid, inf if a valid point has no prediction."""
    pred_ok = np.isfinite(p).all(axis=-1)
    dist = np.linalg.norm(np.where(m[..., None], p - g, 0.0), axis=-1)
    dist = np.where(m & pred_ok, dist, 0.0)
    count = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = dist.sum(axis=1) / count
    mean = np.where(count > 0, mean, np.nan)
    missing_pred = (m & ~pred_ok).any(axis=1)
    return np.where(missing_pred & (count > 0), np.inf, mean)


def nme(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, norm_pair: tuple[int, int]) -> np.ndarray:
    """Per-face normalised mean error (N,), in fraction units (0.05 = 5 %).

    NaN for faces whose normalising pair is not annotated or coincides, or that
    have no valid point: the caller decides how to report those.
    """
    p, g, m = _as_batch(pred, gt, mask)
    return _masked_mean_error(p, g, m) / _normaliser(g, m, norm_pair)


def region_nme(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, scheme: PointScheme, boxes: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-region, per-face NME (each (N,), fraction units), normalised as the scheme says.

    Regions show *where* a model fails (e.g. the jaw contour is usually worst),
    which a single number hides. NaN where the region has no valid point.
    """
    p, g, m = _as_batch(pred, gt, mask)
    d = _scheme_normaliser(g, m, scheme, boxes)
    out: dict[str, np.ndarray] = {}
    for region, idx in scheme.regions.items():
        ix = list(idx)
        out[region] = _masked_mean_error(p[:, ix], g[:, ix], m[:, ix]) / d
    return out


def contour_nme(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, scheme: PointScheme, region: str = "jaw"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-face NME of a contour region split into (along, across) the ground-truth contour, each (N,).

    A contour such as the 300-W jaw has no anatomical point along it, so
    annotators disagree mostly about where on the line a point sits; this
    separates that sliding from errors off the line. The region's indices are
    taken as the contour's order; the tangent at a point joins its neighbours.
    """
    p, g, m = _as_batch(pred, gt, mask)
    ix = list(scheme.regions[region])
    d = _scheme_normaliser(g, m, scheme, None)
    gr, er, mr = g[:, ix], p[:, ix] - g[:, ix], m[:, ix]
    nxt, prv = np.r_[1:len(ix), len(ix) - 1], np.r_[0, 0:len(ix) - 1]
    tangent = gr[:, nxt] - gr[:, prv]
    length = np.linalg.norm(tangent, axis=-1, keepdims=True)
    ok = mr & mr[:, nxt] & mr[:, prv] & (length[..., 0] > _EPS_NORM) & np.isfinite(er).all(axis=-1)
    unit = tangent / np.where(length > _EPS_NORM, length, 1.0)
    along = np.abs((er * unit).sum(axis=-1))
    across = np.abs(er[..., 0] * unit[..., 1] - er[..., 1] * unit[..., 0])
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        split = [np.where(count > 0, np.where(ok, e, 0.0).sum(axis=1) / count, np.nan) / d for e in (along, across)]
    return split[0], split[1]


def _valid_errors(errors) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    return e[~np.isnan(e)]  # inf (failed prediction) is kept: it is a failure


def ced(errors, max_error: float = AUC_MAX_ERROR, steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: thresholds (steps+1,) over [0, max_error] and the fraction of faces with
    error <= each.

    NaN errors (unmeasurable faces) are ignored; an empty input gives zeros.
    """
    thr = np.linspace(0.0, float(max_error), int(steps) + 1)
    e = np.sort(_valid_errors(errors))
    if len(e) == 0:
        return thr, np.zeros_like(thr)
    return thr, np.searchsorted(e, thr, side="right") / len(e)


def auc(errors, max_error: float = AUC_MAX_ERROR) -> float:
    """Area under the CED on [0, max_error] divided by max_error (1.0 = perfect).

    Computed exactly: the CED is a step function, so its integral is
    mean(max(0, max_error - e)) and AUC = mean(max(0, 1 - e / max_error)).
    NaN for no measurable faces.
    """
    e = _valid_errors(errors)
    if len(e) == 0:
        return float("nan")
    return float(np.mean(np.clip(1.0 - e / float(max_error), 0.0, None)))


def failure_rate(errors, threshold: float = FAILURE_THRESHOLD) -> float:
    """Fraction of faces with error strictly above the threshold; NaN for no measurable faces."""
    e = _valid_errors(errors)
    if len(e) == 0:
        return float("nan")
    return float(np.mean(e > threshold))


# --------------------------------------------------------------------------- results


def _num(x: float | None) -> float | None:
    """JSON has no NaN/inf: they become null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class EvalResult:
    """One method on one dataset. Summary figures in percent (AUC as 0..1); ``errors`` in fractions.

    ``errors`` and ``sources`` are aligned with the evaluated faces (NaN for
    skipped ones), so per-face results can be traced back to files.
    """

    name: str
    dataset: str
    n_faces: int  # faces with a measurable error (failed predictions included)
    nme_mean: float  # percent, over finite errors
    nme_median: float  # percent
    failure_rate: float  # percent of faces with NME > 10 %
    auc: float  # AUC at 0.10, 0..1
    region_nme: dict[str, float]  # percent
    errors: np.ndarray  # (N,) per-face NME, fraction units
    skipped: list[tuple[str, str]]  # (source, reason)
    sources: list[str] = field(default_factory=list)
    scheme: str = ""
    normaliser: tuple[int, int] | None = None
    artifacts: dict[str, str] = field(default_factory=dict)  # kind -> file name in the report folder
    # Over visible points only, where the data marks occlusion (else NaN / None).
    nme_visible_mean: float = float("nan")  # percent
    errors_visible: np.ndarray | None = None  # (N,) fraction units
    normalised_by: str = ""  # describe_normaliser(scheme)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "scheme": self.scheme,
            "normaliser": None if self.normaliser is None else [int(v) for v in self.normaliser],
            "n_faces": int(self.n_faces),
            "nme_mean": _num(self.nme_mean),
            "nme_median": _num(self.nme_median),
            "failure_rate": _num(self.failure_rate),
            "auc": _num(self.auc),
            "failure_threshold": FAILURE_THRESHOLD,
            "auc_max_error": AUC_MAX_ERROR,
            "units": "nme_mean, nme_median, failure_rate, region_nme: percent; auc: 0..1; errors: fraction",
            "region_nme": {k: _num(v) for k, v in self.region_nme.items()},
            # null = skipped face; a failed (non-finite) prediction is recorded in `skipped` too.
            "errors": [_num(v) if not np.isinf(v) else "inf" for v in np.asarray(self.errors, dtype=np.float64)],
            "sources": list(self.sources),
            "skipped": [[s, r] for s, r in self.skipped],
            "artifacts": dict(self.artifacts),
            "normalised_by": self.normalised_by,
            "nme_visible_mean": _num(self.nme_visible_mean),
            "errors_visible": None if self.errors_visible is None else [
                _num(v) if not np.isinf(v) else "inf" for v in np.asarray(self.errors_visible, dtype=np.float64)],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        """Re-load a result from ``to_dict`` output (e.g. to plot runs from older reports together)."""

        def f(v):
            if v == "inf":
                return math.inf
            return float("nan") if v is None else float(v)

        return cls(
            name=d["name"],
            dataset=d["dataset"],
            n_faces=int(d["n_faces"]),
            nme_mean=f(d["nme_mean"]),
            nme_median=f(d["nme_median"]),
            failure_rate=f(d["failure_rate"]),
            auc=f(d["auc"]),
            region_nme={k: f(v) for k, v in d.get("region_nme", {}).items()},
            errors=np.array([f(v) for v in d.get("errors", [])], dtype=np.float64),
            skipped=[(s, r) for s, r in d.get("skipped", [])],
            sources=list(d.get("sources", [])),
            scheme=d.get("scheme", ""),
            normaliser=None if d.get("normaliser") is None else tuple(d["normaliser"]),
            artifacts=dict(d.get("artifacts", {})),
            nme_visible_mean=f(d.get("nme_visible_mean")),
            errors_visible=None if d.get("errors_visible") is None else np.array(
                [f(v) for v in d["errors_visible"]], dtype=np.float64),
            normalised_by=d.get("normalised_by", ""),
        )

    def to_markdown(self) -> str:
        from facepoints.reports import markdown_table  # the table belongs to the reports; the result knows its text

        lines = [f"### {self.name} on {self.dataset}", "", markdown_table([self]), ""]
        if self.normalised_by or self.normaliser is not None:
            by = self.normalised_by or (
                f"the distance between ground-truth points {self.normaliser[0]} and {self.normaliser[1]}")
            lines.append(
                f"NME normalised by {by}; FR = faces with NME > {FAILURE_THRESHOLD:.0%}; "
                f"AUC of the CED up to {AUC_MAX_ERROR:.0%}."
            )
            if self.errors_visible is not None:
                lines.append("NME vis = the same over the points marked visible only (occluded points left out).")
            lines.append("")
        if self.skipped:
            lines.append(f"Faces not measured or failed ({len(self.skipped)}):")
            lines.append("")
            for s, r in self.skipped[:20]:
                lines.append(f"- `{s}`: {r}")
            if len(self.skipped) > 20:
                lines.append(f"- ... and {len(self.skipped) - 20} more (see the JSON report)")
            lines.append("")
        return "\n".join(lines)


def _finite_mean_pct(errors: np.ndarray) -> float:
    """Mean of the finite errors, in percent (NaN when there are none)."""
    ok = errors[np.isfinite(errors)]
    return float(ok.mean() * 100.0) if len(ok) else float("nan")


def _skip_reason(g: np.ndarray, m: np.ndarray, norm_pair: tuple[int, int] | None) -> str:
    if not m.any():
        return "no valid ground-truth points"
    if norm_pair is None:
        return "no face box and too few points to measure the face size"
    i, j = norm_pair
    if not (m[i] and m[j]):
        return f"normalising points {i}/{j} not annotated"
    return f"normalising points {i}/{j} coincide (zero distance)"


def compute_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None,
    scheme: PointScheme,
    *,
    name: str,
    dataset: str,
    sources: Sequence[str] | None = None,
    visible: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
) -> EvalResult:
    """All summary metrics for one method on one dataset (see the module docstring for conventions).

    ``visible`` (N, K) adds the visible-only NME; ``boxes`` (N, 4) are the
    face boxes that ``normalise_by: box`` schemes divide by (NaN rows: none).
    """
    p, g, m = _as_batch(pred, gt, mask)
    n = len(g)
    srcs = [str(s) for s in sources] if sources is not None else [f"face_{k}" for k in range(n)]
    if len(srcs) != n:
        raise ValueError(f"{len(srcs)} sources for {n} faces")
    norm_pair = (int(scheme.normalise[0]), int(scheme.normalise[1]))
    by_box = scheme.normalise_by == "box"
    d = _scheme_normaliser(g, m, scheme, boxes)
    errors = _masked_mean_error(p, g, m) / d
    errors_visible = None
    if visible is not None:
        errors_visible = _masked_mean_error(p, g, m & np.asarray(visible, dtype=bool).reshape(m.shape)) / d
    skipped = [(srcs[k], _skip_reason(g[k], m[k], None if by_box else norm_pair))
               for k in np.flatnonzero(np.isnan(errors))]
    skipped += [(srcs[k], "non-finite prediction: counted as a failure, left out of the mean NME")
                for k in np.flatnonzero(np.isinf(errors))]
    measured = errors[~np.isnan(errors)]
    return EvalResult(
        name=name,
        dataset=dataset,
        n_faces=len(measured),
        nme_mean=_finite_mean_pct(measured),
        nme_median=float(np.median(measured) * 100.0) if len(measured) else float("nan"),
        failure_rate=failure_rate(measured) * 100.0,
        auc=auc(measured),
        region_nme={region: _finite_mean_pct(e) for region, e in region_nme(p, g, m, scheme, boxes).items()},
        errors=errors,
        skipped=skipped,
        sources=srcs,
        scheme=scheme.name,
        normaliser=None if by_box else norm_pair,
        nme_visible_mean=float("nan") if errors_visible is None else _finite_mean_pct(errors_visible),
        errors_visible=errors_visible,
        normalised_by=describe_normaliser(scheme),
    )


def attribute_subsets(
    samples: Sequence[Sample], pred: np.ndarray, scheme: PointScheme, *, name: str, dataset: str
) -> list[EvalResult]:
    """One result per attribute (WFLW's pose, expression, ...): the faces that have it, named ``"<name> [<attr>]"``.

    Attributes in the order first seen; those no face has are left out.
    """
    pred = np.asarray(pred, dtype=np.float64)
    if len(pred) != len(samples):
        raise ValueError(f"{len(pred)} predictions for {len(samples)} samples")
    names: list[str] = []
    for s in samples:
        names += [a for a in s.attributes if a not in names]
    out = []
    for attr in names:
        idx = [k for k, s in enumerate(samples) if s.attributes.get(attr)]
        if idx:
            out.append(metrics_for([samples[k] for k in idx], pred[idx], scheme, name=f"{name} [{attr}]",
                                    dataset=dataset))
    return out


def metrics_for(samples: Sequence[Sample], pred: np.ndarray, scheme: PointScheme, *, name: str,
                 dataset: str) -> EvalResult:
    k = scheme.num_points
    if len(samples) == 0:
        gt = np.zeros((0, k, 2))
        mask = np.zeros((0, k), dtype=bool)
        pred = np.asarray(pred, dtype=np.float64).reshape(0, k, 2)
    else:
        gt = np.stack([np.asarray(s.points, dtype=np.float64) for s in samples])
        mask = np.stack([np.asarray(s.mask, dtype=bool) for s in samples])
    visible = None
    if any(s.visible is not None for s in samples):
        visible = np.stack([np.ones(k, bool) if s.visible is None else np.asarray(s.visible, bool) for s in samples])
    boxes = np.stack([np.full(4, np.nan) if s.box is None else np.asarray(s.box, np.float64) for s in samples]) \
        if samples else None
    return compute_metrics(pred, gt, mask, scheme, name=name, dataset=dataset, sources=[s.source for s in samples],
                           visible=visible, boxes=boxes)
