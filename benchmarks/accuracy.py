"""Accuracy of the shipped models, dlib and MediaPipe on the same faces, in one run.

    python benchmarks/accuracy.py --mediapipe-python .mpvenv/bin/python

Boxes are the tight ground-truth boxes. dlib's 68-point predictor expects
boxes from its own HOG detector, so for a fair comparison the tight box is
mapped to dlib's box convention by a linear map fitted on *training* faces
(YouTube-Faces training + HELEN), never on the test faces. MediaPipe Face Mesh
runs in its own venv (see mediapipe_ref.py) and its 468 vertices are mapped to
the 68 points on training faces too. An int8 model is measured next to its
float32 twin (exported from checkpoints/, needs torch). Writes
benchmarks/results/accuracy.{md,json} and a CED plot per dataset.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facepoints.datasets import Sample, load_dataset
from facepoints.geometry import tight_box
from facepoints.metrics import EvalResult, compute_metrics
from facepoints.reports import markdown_table, plot_ced
from facepoints.schemes import load_scheme

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import shipped  # noqa: E402
from provenance import markdown, provenance  # noqa: E402

DATA = shipped.DATA
RESULTS = ROOT / "benchmarks" / "results"
TRAIN_SETS = [DATA / "youtube-faces-68" / "training_frames_keypoints.csv", DATA / "300w-68" / "helen" / "trainset"]


def _box_params(box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])


class DlibReference:
    """dlib's 68-point shape predictor (from face-recognition-models), fed with mapped boxes."""

    def __init__(self, train_samples: list[Sample]) -> None:
        import dlib

        folder = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0])
        self.dlib = dlib
        self.predictor = dlib.shape_predictor(str(folder / "models" / "shape_predictor_68_face_landmarks.dat"))
        self.detector = dlib.get_frontal_face_detector()
        self.coef, self.fit_info = self._fit_box_map(train_samples)

    def _fit_box_map(self, samples: list[Sample]) -> tuple[np.ndarray, dict]:
        """Least squares: dlib box (cx, cy, w, h) from the tight box, in units of the tight box size."""
        rows, targets = [], []
        for s in tqdm(samples, desc="fitting dlib box map", leave=False):
            tb = _box_params(tight_box(s.points, s.mask))
            dets = self.detector(s.image, 1)
            best = None
            for d in dets:
                db = _box_params(np.array([d.left(), d.top(), d.right(), d.bottom()], float))
                if abs(db[0] - tb[0]) < 0.3 * tb[2] and abs(db[1] - tb[1]) < 0.3 * tb[3]:
                    best = db
            if best is None:
                continue
            rows.append(tb)
            targets.append(best)
        a, b = np.array(rows), np.array(targets)
        # dlib centre = tight centre + (ax * w, ay * h); dlib size = s * tight size
        ax = np.median((b[:, 0] - a[:, 0]) / a[:, 2])
        ay = np.median((b[:, 1] - a[:, 1]) / a[:, 3])
        sw = np.sum(b[:, 2] * a[:, 2]) / np.sum(a[:, 2] ** 2)
        sh = np.sum(b[:, 3] * a[:, 3]) / np.sum(a[:, 3] ** 2)
        info = {"faces_used": len(a), "faces_tried": len(samples), "ax": ax, "ay": ay, "sw": sw, "sh": sh}
        return np.array([ax, ay, sw, sh]), info

    def to_dlib_box(self, box: np.ndarray):
        cx, cy, w, h = _box_params(box)
        ax, ay, sw, sh = self.coef
        cx, cy, w, h = cx + ax * w, cy + ay * h, sw * w, sh * h
        return self.dlib.rectangle(int(round(cx - w / 2)), int(round(cy - h / 2)),
                                   int(round(cx + w / 2)), int(round(cy + h / 2)))

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = []
        for box in boxes:
            shape = self.predictor(image, self.to_dlib_box(box))
            out.append([[p.x, p.y] for p in shape.parts()])
        return np.asarray(out, dtype=np.float64)


class MediaPipeReference:
    """MediaPipe Face Mesh (468 vertices) in its own venv, mapped to the 68 iBUG points on training faces.

    Each iBUG point is the mesh vertex that lands closest to it on average,
    plus that vertex's mean offset (in units of the face box), both fitted on
    training faces only, like dlib's box map. Face Mesh runs its own face
    detector on a crop of twice the tight box; where it finds no face, the mean
    training shape placed in the box stands in (counted in the notes), so a miss
    costs what a guess costs instead of vanishing from the table.
    """

    CROP = 256

    def __init__(self, python: str, train_samples: list[Sample]) -> None:
        self.python = python
        mesh, found, _ = self.mesh(train_samples)
        gt = np.stack([s.points for s in train_samples])[found]
        boxes = np.stack([tight_box(s.points, s.mask) for s in train_samples])[found]
        m = mesh[found]
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None, None]
        # (faces, 468, 68) distances in box units: choose one vertex per iBUG point
        err = np.nanmean(np.linalg.norm(m[:, :, None] - gt[:, None], axis=-1) / size, axis=0)
        self.vertex = np.argmin(err, axis=0)
        self.offset = np.nanmean((gt - m[:, self.vertex]) / size, axis=0)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        self.mean_shape = np.nanmean((gt - centre[:, None]) / size, axis=0)
        self.fit_info = {"faces_used": int(found.sum()), "faces_tried": len(train_samples),
                         "mean_fit_error_box_pct": float(100 * err[self.vertex, np.arange(68)].mean())}

    def mesh(self, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray, float]:
        """468 vertices per face in image pixels, which faces Face Mesh found, and its ms per face."""
        import subprocess
        import tempfile

        from facepoints.geometry import apply_affine, crop_matrix, invert_affine, warp_crop

        mats = [crop_matrix(tight_box(s.points, s.mask), self.CROP, 2.0) for s in samples]
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "crops.npz", Path(tmp) / "mesh.npz"
            np.savez(src, **{f"c{i}": warp_crop(s.image, m, self.CROP) for i, (s, m) in enumerate(zip(samples, mats))})
            subprocess.run([self.python, str(ROOT / "benchmarks" / "mediapipe_ref.py"), str(src), str(dst)], check=True)
            out = np.load(dst)
            crop_pts, ms = out["points"].astype(np.float64), out["ms"]
        pts = np.stack([apply_affine(p, invert_affine(m)) for p, m in zip(crop_pts, mats)])
        return pts, np.isfinite(pts).all(axis=(1, 2)), float(ms.mean())

    def run(self, samples: list[Sample]) -> tuple[np.ndarray, int, float]:
        mesh, found, ms = self.mesh(samples)
        boxes = np.stack([tight_box(s.points, s.mask) for s in samples])
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None, None]
        pred = mesh[:, self.vertex] + self.offset * size
        guess = (boxes[:, :2] + boxes[:, 2:])[:, None] / 2 + self.mean_shape * size
        pred[~found] = guess[~found]
        return pred, int((~found).sum()), ms


@functools.cache
def fit_faces(n: int) -> list[Sample]:
    """About n training faces, spread evenly over the training sets: what the reference methods' maps are fitted on."""
    faces: list[Sample] = []
    for p in TRAIN_SETS:
        s, _ = load_dataset(str(p), progress=False)
        faces += s[:: max(1, len(s) // (n // len(TRAIN_SETS)))]
    return faces


def run_method(name: str, predict, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Points (and per-point scores when the method has them) for every face, box = tight GT box."""
    t = time.perf_counter()
    pts, scores = [], []
    for s in tqdm(samples, desc=name, leave=False):
        out = predict(s.image, tight_box(s.points, s.mask)[None])
        if isinstance(out, tuple):
            pts.append(out[0][0])
            scores.append(out[1][0])
        else:
            pts.append(out[0])
    ms = (time.perf_counter() - t) / len(samples) * 1000
    return np.stack(pts), (np.stack(scores) if scores else None), ms


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def confidence_report(name: str, ds: str, pred: np.ndarray, scores: np.ndarray, samples: list[Sample],
                      out: Path) -> dict:
    """Does a low score flag a bad point? Per-point error (by eye distance) against score, binned by decile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gt = np.stack([s.points for s in samples])
    mask = np.stack([s.mask for s in samples])
    d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)[:, None]
    err = (np.linalg.norm(pred - gt, axis=-1) / d)[mask]
    sc = scores[mask]
    rho = spearman(sc, err)
    edges = np.quantile(sc, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(edges, sc, side="right") - 1, 0, 9)
    centres = [float(np.median(sc[idx == i])) for i in range(10)]
    means = [float(100 * err[idx == i].mean()) for i in range(10)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(centres, means, "o-")
    ax.set_xlabel("per-point confidence (decile median)")
    ax.set_ylabel("mean point error (% eye distance)")
    ax.set_title(f"{name} on {ds}: Spearman rho = {rho:.2f}")
    fig.tight_layout()
    fig.savefig(out / f"confidence_{ds}_{name}.png", dpi=100)
    plt.close(fig)
    return {"method": name, "dataset": ds, "spearman_score_vs_error": rho,
            "lowest_decile_error_pct": means[0], "highest_decile_error_pct": means[-1]}


def our_methods(models: list[str], with_float: bool) -> list[str | Path]:
    """Shipped model names, each int8 one followed by its float32 twin."""
    from speed import float_twin

    names: list[str | Path] = list(models)
    if with_float:
        for m in models:
            twin = float_twin(m)
            if twin is not None:
                names.insert(names.index(m) + 1, twin)
    return names


def reference_methods(args: argparse.Namespace, notes: list[str]) -> dict:
    methods: dict = {}
    if not args.no_dlib:
        if importlib.util.find_spec("dlib") is None:
            notes.append("dlib not installed (pip install -e '.[bench]'): skipped")
        else:
            ref = DlibReference(fit_faces(args.fit_faces))
            notes.append("dlib box map (fitted on training faces, HOG detections matched to tight boxes): "
                         + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in ref.fit_info.items()))
            methods["dlib"] = ref.landmarks
    if args.mediapipe_python:
        mp_ref = MediaPipeReference(args.mediapipe_python, fit_faces(args.fit_faces))
        notes.append("MediaPipe Face Mesh 0.10.21 (468 vertices -> 68 points: nearest vertex + mean offset, fitted on "
                     "training faces): " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                    for k, v in mp_ref.fit_info.items()))
        methods["mediapipe"] = mp_ref
    else:
        notes.append("MediaPipe not measured: pass --mediapipe-python (a venv with mediapipe==0.10.21)")
    return methods


def run_reference(name: str, fn, samples: list[Sample], ds: str, notes: list[str]) -> tuple[np.ndarray, None]:
    if isinstance(fn, MediaPipeReference):
        pred, missed, ms = fn.run(samples)
        notes.append(f"MediaPipe on {ds}: no face found in {missed} of {len(samples)} crops (mean training "
                     f"shape in the box stands in); {ms:.1f} ms per face including its own face detector")
        return pred, None
    return run_method(f"{name} on {ds}", fn, samples)[0], None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["seed_baseline", "default", "kaggle15"],
                    help="shipped names or .onnx paths")
    ap.add_argument("--no-dlib", action="store_true")
    ap.add_argument("--no-float", action="store_true", help="skip the float32 twin of int8 models")
    ap.add_argument("--flip-average", nargs="*", default=["default"],
                    help="models that also get a row with flip averaging (the opt-in mode)")
    ap.add_argument("--mediapipe-python", default=os.environ.get("FACEPOINTS_MEDIAPIPE_PYTHON", ""),
                    help="python of a venv with mediapipe==0.10.21 (see mediapipe_ref.py); empty = skip")
    ap.add_argument("--fit-faces", type=int, default=600, help="training faces used to fit dlib's box map")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    prov = provenance()

    scheme = load_scheme("ibug68")
    notes: list[str] = []
    refs = reference_methods(args, notes)
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[EvalResult] = []
    confidence = []
    for ds in shipped.TEST_SETS:
        per_ds = []
        for m in our_methods(args.models, not args.no_float):
            r, pred, scores, samples, convention = shipped.run(m, ds)
            if convention:
                notes.append(f"{r.name} on {ds}: answered in the test set's own convention ({convention})")
            if scores is not None and r.scheme == "ibug68":
                confidence.append(confidence_report(r.name, ds, pred, scores, samples, args.out))
            per_ds.append(r)
        for m in args.flip_average:
            per_ds.append(shipped.run(m, ds, flip_average=True)[0])
        samples = shipped.test_samples(ds)
        gt, mask = np.stack([s.points for s in samples]), np.stack([s.mask for s in samples])
        for name, fn in refs.items():
            pred, _ = run_reference(name, fn, samples, ds, notes)
            per_ds.append(compute_metrics(pred, gt, mask, scheme, name=name, dataset=ds,
                                          sources=[s.source for s in samples]))
        plot_ced([r for r in per_ds if r.scheme == "ibug68"], args.out / f"accuracy_{ds}_ced.png",
                 title=f"CED on {ds} ({len(samples)} faces)")
        results += per_ds
    conventions = convention_table(args.models)
    write_accuracy(results, notes, confidence, prov, args.out, conventions)


def convention_table(models: list[str]) -> list[dict]:
    """Each learned convention's output on each test set: what answering in the other markup costs."""

    rows = []
    for m in models:
        card = shipped.card_of(m)
        if card.scheme["name"] != "ibug68":
            continue
        for convention in card.conventions:
            for ds in shipped.TEST_SETS:
                r = shipped.run(m, ds, convention)[0]
                rows.append({"model": card.name, "convention": convention, "dataset": ds, "nme": r.nme_mean,
                             "jaw": r.region_nme.get("jaw"), "brows": r.region_nme.get("brows"),
                             "eyes": r.region_nme.get("eyes")})
    return rows


def write_accuracy(results: list[EvalResult], notes: list[str], confidence: list[dict], prov: dict, out: Path,
                   conventions: list[dict]) -> None:
    ibug = [r for r in results if r.scheme == "ibug68"]
    other = [r for r in results if r.scheme != "ibug68"]
    text = ["# Accuracy (boxes = tight ground-truth boxes)", "", markdown(prov), "",
            "MediaPipe runs in its own venv: `python3 -m venv .mpvenv && .mpvenv/bin/pip install mediapipe==0.10.21`. "
            "The test sets (AFW, YouTube-Faces test) chose nothing: checkpoints were selected on held-out training "
            "people and photos.", "", markdown_table(ibug), "",
            "NME: mean point error / outer-eye-corner distance (points 36, 45). FR: faces with NME > 10 %."]
    if other:
        text += ["", "## Other point schemes", "", markdown_table(other), "",
                 "kaggle15: NME divided by the distance between the eye centres (points 0 and 1); the 68 annotated "
                 "points converted to the 15 Kaggle points, same tight 68-point box."]
    if conventions:
        text += ["", "## Annotation conventions", "",
                 "One network, one learned offset per training source's markup (models.HeatmapNet); the test set's "
                 "own convention is what the tables above use.", "",
                 "| model | answers in | dataset | NME % | jaw % | brows % | eyes % |",
                 "|---|---|---|---:|---:|---:|---:|"]
        text += [f"| {c['model']} | {c['convention']} | {c['dataset']} | {c['nme']:.2f} | {c['jaw']:.2f} | "
                 f"{c['brows']:.2f} | {c['eyes']:.2f} |" for c in conventions]
    text += [""] + [f"- {n}" for n in notes]
    if confidence:
        text += ["", "## Per-point confidence (held-out faces)", "",
                 "| method | dataset | Spearman(score, error) | error % in lowest-score decile | in highest |",
                 "|---|---|---:|---:|---:|"]
        text += [f"| {c['method']} | {c['dataset']} | {c['spearman_score_vs_error']:.3f} | "
                 f"{c['lowest_decile_error_pct']:.2f} | {c['highest_decile_error_pct']:.2f} |" for c in confidence]
        text += ["", "Negative rho: error grows as confidence falls. Plots: `confidence_<dataset>_<method>.png`."]
    text += ["", "CED plots: " + ", ".join(f"`accuracy_{ds}_ced.png`" for ds in shipped.TEST_SETS)]
    (out / "accuracy.md").write_text("\n".join(text) + "\n", encoding="utf-8")
    (out / "accuracy.json").write_text(json.dumps({"provenance": prov, "results": [r.to_dict() for r in results],
                                                   "notes": notes, "confidence": confidence,
                                                   "conventions": conventions}, indent=1),
                                       encoding="utf-8")
    print("\n".join(text))


if __name__ == "__main__":
    main()
