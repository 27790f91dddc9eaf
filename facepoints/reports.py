"""Evaluation reports: markdown tables, JSON/markdown files, CED plots and best/worst face grids.

The figures come from ``facepoints.metrics``; nothing here imports torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facepoints.metrics import AUC_MAX_ERROR, FAILURE_THRESHOLD, EvalResult, auc, ced, metrics_for
from facepoints.viz import draw_points

if TYPE_CHECKING:
    from facepoints.datasets import Sample
    from facepoints.schemes import PointScheme

GT_COLOR = (0, 255, 0)
PRED_COLOR = (255, 0, 0)


# --------------------------------------------------------------------------- tables and reports


def _fmt(v: float | None, spec: str) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return format(v, spec)


def markdown_table(results: Sequence[EvalResult]) -> str:
    """One row per (method, dataset): faces, NME %, FR@10 %, AUC@0.10, then per-region NME % columns."""
    regions: list[str] = []
    for r in results:
        for k in r.region_nme:
            if k not in regions:
                regions.append(k)
    vis = any(r.errors_visible is not None for r in results)
    head = ["Method", "Dataset", "Faces", "NME %", *(["NME vis %"] if vis else []), "FR@10 %", "AUC@0.10",
            *[f"{k} %" for k in regions]]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in results:
        cells = [
            r.name,
            r.dataset,
            str(r.n_faces),
            _fmt(r.nme_mean, ".2f"),
            *([_fmt(r.nme_visible_mean, ".2f")] if vis else []),
            _fmt(r.failure_rate, ".2f"),
            _fmt(r.auc, ".4f"),
            *[_fmt(r.region_nme.get(k), ".2f") if k in r.region_nme else "-" for k in regions],
        ]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def write_report(results: Sequence[EvalResult], out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.json`` (full figures, per-face errors) and ``<stem>.md`` (tables); returns {"json", "md"}
    paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{stem}.json"
    md_path = out / f"{stem}.md"
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({"results": [r.to_dict() for r in results]}, f, indent=1, allow_nan=False)
        f.write("\n")
    parts = [f"# Evaluation: {stem}", "", markdown_table(results), ""]
    parts.append(
        f"NME in percent of the normalising distance (outer eye corners for ibug68); "
        f"FR@10 = faces with NME > {FAILURE_THRESHOLD:.0%}; AUC@0.10 = area under the CED "
        f"up to {AUC_MAX_ERROR:.0%}, divided by {AUC_MAX_ERROR} (1 = perfect)."
    )
    parts.append("")
    by_scheme = {r.scheme: r.normalised_by for r in results if r.scheme and r.normalised_by}
    for sch, by in by_scheme.items():
        parts.append(f"- {sch}: NME divided by {by}.")
    if any(r.errors_visible is not None for r in results):
        parts.append("- NME vis: over the points marked visible only; NME: over all annotated points.")
    if by_scheme or any(r.errors_visible is not None for r in results):
        parts.append("")
    for r in results:
        if r.skipped or any(f.endswith(".png") for f in r.artifacts.values()):
            parts.append(f"## {r.name} on {r.dataset}")
            parts.append("")
            for kind, fname in r.artifacts.items():
                if fname.endswith(".png"):  # the report's own json/md need no link to themselves
                    parts.extend([f"![{kind}]({fname})", ""])
            if r.skipped:
                parts.append(f"Faces not measured or failed ({len(r.skipped)}):")
                parts.append("")
                parts.extend(f"- `{s}`: {why}" for s, why in r.skipped[:50])
                if len(r.skipped) > 50:
                    parts.append(f"- ... and {len(r.skipped) - 50} more (see {json_path.name})")
                parts.append("")
    md_path.write_text("\n".join(parts), encoding="utf-8")
    return {"json": json_path, "md": md_path}


# --------------------------------------------------------------------------- plots


def _figure(figsize: tuple[float, float]):
    """A figure not registered with pyplot: no global state, no GUI backend, safe in threads and tests."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def plot_ced(
    results: Sequence[EvalResult],
    out_path: str | Path,
    max_error: float = AUC_MAX_ERROR,
    title: str = "Cumulative error distribution",
) -> Path:
    """CED curves, one per result, legend with NME and AUC; saved as PNG."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = _figure((6.4, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    for r in results:
        thr, frac = ced(r.errors, max_error=max_error)
        label = f"{r.name} ({r.dataset}): NME {_fmt(r.nme_mean, '.2f')}%, AUC {_fmt(auc(r.errors, max_error), '.3f')}"
        ax.plot(thr * 100.0, frac, label=label, linewidth=1.6)
    ax.set_xlim(0, max_error * 100.0)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("NME (% of normalising distance)")
    ax.set_ylabel("fraction of faces")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if results:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110, format="png")
    return out


def _face_crop(
    image: np.ndarray, gt: np.ndarray, mask: np.ndarray, pred: np.ndarray, size: int, scheme: PointScheme | None
) -> np.ndarray:
    """Square crop around the face with ground truth and prediction drawn (both are needed to see the error)."""
    from facepoints.geometry import apply_affine, crop_matrix, tight_box, warp_crop

    valid_gt = mask & np.isfinite(gt).all(axis=1)
    valid_pred = np.isfinite(pred).all(axis=1)
    both = np.concatenate([gt[valid_gt], pred[valid_pred]])
    try:
        box = tight_box(both)
    except ValueError:  # nothing to centre on: show the whole image
        h, w = image.shape[:2]
        box = np.array([0.0, 0.0, w - 1.0, h - 1.0])
    m = crop_matrix(box, size, context=1.3)
    crop = warp_crop(image, m, size)
    g = apply_affine(gt, m)
    p = apply_affine(pred, m)
    r = max(1, size // 96)
    if scheme is not None:
        # Region colours for the prediction, white for the truth: still two clearly distinct sets.
        crop = draw_points(crop, g, mask=valid_gt, color=(255, 255, 255), radius=r)
        return draw_points(crop, p, color=PRED_COLOR, radius=r, scheme=scheme)
    crop = draw_points(crop, g, mask=valid_gt, color=GT_COLOR, radius=r)
    return draw_points(crop, p, color=PRED_COLOR, radius=r)


def plot_extremes(
    samples: Sequence[Sample],
    pred: np.ndarray,
    errors: np.ndarray,
    out_path: str | Path,
    n: int = 8,
    scheme: PointScheme | None = None,
    *,
    crop_size: int = 192,
) -> Path:
    """Grid of the n best (top row) and n worst (bottom row) faces; saved as PNG.

    The worst faces are where annotation errors and model blind spots show
    up, so they are worth looking at after every evaluation. Faces with NaN
    error (not measurable) are not shown.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64)
    if len(e) != len(samples) or len(pred) != len(samples):
        raise ValueError(f"{len(samples)} samples, {len(pred)} predictions, {len(e)} errors")
    order = np.flatnonzero(~np.isnan(e))
    order = order[np.argsort(e[order], kind="stable")]
    n = max(1, int(n))
    if len(order) >= 2 * n:
        best, worst = order[:n], order[::-1][:n]
    else:  # too few faces for two full rows: split them without repeating any
        half = (len(order) + 1) // 2
        best, worst = order[:half], order[half:][::-1]
    rows = [("best", best)] + ([("worst", worst)] if len(worst) else [])
    cols = max(1, max(len(idx) for _, idx in rows))
    fig = _figure((2.0 * cols, 2.35 * len(rows) + 0.4))
    for r, (label, idx) in enumerate(rows):
        for c in range(cols):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 1)
            ax.axis("off")
            if c >= len(idx):
                continue
            k = int(idx[c])
            s = samples[k]
            crop = _face_crop(
                np.asarray(s.image),
                np.asarray(s.points, dtype=np.float64),
                np.asarray(s.mask, dtype=bool),
                pred[k],
                crop_size,
                scheme,
            )
            ax.imshow(crop)
            err = "failed" if np.isinf(e[k]) else f"{e[k] * 100:.2f}%"
            ax.set_title(f"{label}: {err}\n{Path(str(s.source)).name[:28]}", fontsize=7)
    truth = "white" if scheme is not None else "green"
    pred_c = "region colours" if scheme is not None else "red"
    if not len(order):
        fig.text(0.5, 0.5, "no measurable faces", ha="center")
    fig.suptitle(f"ground truth: {truth}, prediction: {pred_c}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100, format="png")
    return out


# --------------------------------------------------------------------------- entry point


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "eval"


def evaluate_predictions(
    samples: Sequence[Sample],
    pred: np.ndarray,
    scheme: PointScheme | str,
    *,
    name: str,
    dataset: str,
    out_dir: str | Path | None = None,
) -> EvalResult:
    """Metrics for predictions (N, K, 2) in image pixels against the samples' annotations.

    With ``out_dir``, also writes ``<name>_<dataset>.json/.md``, ``..._ced.png``
    and ``..._extremes.png`` there (file names in ``result.artifacts``).
    """
    if isinstance(scheme, str):
        from facepoints.schemes import load_scheme

        scheme = load_scheme(scheme)
    pred = np.asarray(pred, dtype=np.float64)
    if len(pred) != len(samples):
        raise ValueError(f"{len(pred)} predictions for {len(samples)} samples")
    result = metrics_for(samples, pred, scheme, name=name, dataset=dataset)
    if out_dir is not None:
        out = Path(out_dir)
        stem = _slug(f"{name}_{dataset}")
        ced_path = plot_ced([result], out / f"{stem}_ced.png", title=f"CED: {name} on {dataset}")
        ext_path = plot_extremes(samples, pred, result.errors, out / f"{stem}_extremes.png", scheme=scheme)
        result.artifacts = {"ced": ced_path.name, "extremes": ext_path.name, "json": f"{stem}.json", "md": f"{stem}.md"}
        write_report([result], out, stem)
    return result
