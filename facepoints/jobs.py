"""Jobs over many files: keypoints for a folder of photos, and a model's evaluation on datasets.

Both report what they skipped and why, and stream progress; neither hides a
file that could not be used.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facepoints.data import IMAGE_SUFFIXES, Sample, load_dataset
from facepoints.geometry import tight_box


@dataclass
class DetectSummary:
    out_dir: Path
    results: Path
    images_ok: int = 0
    faces: int = 0
    resumed: int = 0
    no_faces: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    annotated: list[Path] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{self.images_ok} image(s) processed, {self.faces} face(s) found"
                 + (f", {self.resumed} already done (resumed)" if self.resumed else "")]
        if self.no_faces:
            lines.append(f"no face found in {len(self.no_faces)} image(s): " + ", ".join(self.no_faces[:10])
                         + (" ..." if len(self.no_faces) > 10 else ""))
        for f, why in self.skipped:
            lines.append(f"skipped {f}: {why}")
        lines.append(f"results: {self.results}")
        if self.annotated:
            lines.append(f"annotated images: {self.out_dir} (e.g. {self.annotated[0]})")
        return "\n".join(lines)


def iter_images(paths: list[Path], recursive: bool = True) -> Iterator[tuple[Path, str | None]]:
    """Yield (path, problem): files named directly are always yielded, so a bad one gets reported."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in (p.rglob("*") if recursive else p.iterdir())
                           if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                yield p, "folder holds no images (" + ", ".join(IMAGE_SUFFIXES) + ")"
            for q in found:
                yield q, None
        elif p.exists():
            yield p, None
        else:
            yield p, "no such file or folder"


def _face_record(face) -> dict:
    return {
        "box": [round(float(v), 2) for v in face.box],
        "detection_score": round(float(face.detection_score), 4),
        "points": [[round(float(x), 2), round(float(y), 2)] for x, y in face.points],
        "scores": [round(float(s), 4) for s in face.scores],
    }


def run_detect(inputs: list[Path], out_dir: Path, *, model: str | None = None, fmt: str = "json",
               resume: bool = False, draw: bool = True, recursive: bool = True,
               detector: str | None = None) -> DetectSummary:
    from facepoints.inference import ImageError, load, read_image
    from facepoints.viz import draw_faces, save_image

    lm = load(model, detector=detector)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / f"results.{fmt}"
    summary = DetectSummary(out_dir=out_dir, results=results_path)
    done: set[str] = set()
    if fmt == "jsonl" and resume and results_path.exists():
        with open(results_path, encoding="utf-8") as f:
            for line in f:
                try:
                    done.add(json.loads(line)["file"])
                except (json.JSONDecodeError, KeyError):
                    continue  # a line cut by an interrupted run is simply redone
    records: list[dict] = []
    stream = open(results_path, "a" if (fmt == "jsonl" and resume) else "w", encoding="utf-8") if fmt == "jsonl" else None
    used_names: set[str] = set()
    try:
        items = list(iter_images(inputs, recursive))
        for path, problem in tqdm(items, desc="detecting", unit="img", disable=len(items) < 2):
            key = str(path)
            if key in done:
                summary.resumed += 1
                continue
            rec: dict = {"file": key}
            if problem is None:
                try:
                    image = read_image(path)
                    faces = lm.detect(image)
                except ImageError as e:
                    problem = str(e)
            if problem is not None:
                summary.skipped.append((key, problem))
                rec["error"] = problem
            else:
                summary.images_ok += 1
                summary.faces += len(faces)
                rec.update(width=int(image.shape[1]), height=int(image.shape[0]),
                           faces=[_face_record(f) for f in faces])
                if not faces:
                    summary.no_faces.append(key)
                if draw:
                    name = _unique_name(path, used_names)
                    target = out_dir / f"{name}_points.png"
                    save_image(target, draw_faces(image, [(f.box, f.points) for f in faces], scheme=lm.scheme))
                    rec["annotated"] = str(target)
                    summary.annotated.append(target)
            if stream is not None:
                stream.write(json.dumps(rec) + "\n")
                stream.flush()
            else:
                records.append(rec)
    finally:
        if stream is not None:
            stream.close()
    meta = {"model": lm.meta.get("name"), "scheme": lm.scheme.name,
            "skipped": [{"file": f, "reason": r} for f, r in summary.skipped], "no_faces": summary.no_faces}
    if fmt == "json":
        results_path.write_text(json.dumps({**meta, "images": records}, indent=1), encoding="utf-8")
    elif fmt == "csv":
        _write_csv(results_path, records, lm.scheme.num_points)
    return summary


def _unique_name(path: Path, used: set[str]) -> str:
    base = path.stem
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def _write_csv(path: Path, records: list[dict], k: int) -> None:
    header = ["file", "face", "x0", "y0", "x1", "y1", "detection_score"]
    header += [f"{a}{i}" for i in range(k) for a in ("x", "y")] + ["error"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for rec in records:
            faces = rec.get("faces") or []
            if not faces:
                w.writerow([rec["file"], "", *[""] * (len(header) - 3), rec.get("error", "no face found")])
            for j, face in enumerate(faces):
                pts = [c for xy in face["points"] for c in xy]
                w.writerow([rec["file"], j, *face["box"], face["detection_score"], *pts, ""])


# ---------------------------------------------------------------- evaluation


def predict_samples(model_ref: str, samples: list[Sample]) -> tuple[np.ndarray, str, object]:
    """Points for each sample, box = tight ground-truth box; ``.pt`` runs in torch, anything else in onnxruntime."""
    boxes = [tight_box(s.points, s.mask) for s in samples]
    if str(model_ref).endswith(".pt"):
        from facepoints.train import predict_checkpoint

        pred, name, scheme = predict_checkpoint(model_ref, [s.image for s in samples], boxes)
        return pred, name, scheme
    from facepoints.inference import load

    lm = load(model_ref)
    pred = np.stack([lm.landmarks(s.image, b[None])[0] for s, b in
                     tqdm(list(zip(samples, boxes)), desc="predicting", leave=False)])
    return pred, str(lm.meta.get("name", model_ref)), lm.scheme


def evaluate_model(model_ref: str, datasets: list[str], out_dir: Path, name: str | None = None) -> list:
    """Evaluate on each dataset; datasets whose faces carry attributes (WFLW's pose, occlusion, ...)
    also get one result per attribute subset, with their CED curves in one plot."""
    from facepoints.data import OWN_SCHEME_FORMATS, convert_sample, detect_format, split_dataset_path
    from facepoints.evaluate import attribute_subsets, evaluate_predictions, plot_ced, write_report

    out_dir = Path(out_dir)
    results = []
    model_scheme = None
    for ds in datasets:
        path, part = split_dataset_path(ds)
        if model_scheme is None and Path(path).is_file() and detect_format(path) in OWN_SCHEME_FORMATS:
            if str(model_ref).endswith(".pt"):  # custom points are read in the model's scheme unless they name one
                import torch

                from facepoints.schemes import scheme_from_dict

                model_scheme = scheme_from_dict(torch.load(model_ref, map_location="cpu", weights_only=True)["scheme"])
            else:
                from facepoints.inference import load

                model_scheme = load(model_ref).scheme
        samples, report = load_dataset(ds, default_scheme=model_scheme)
        if report.dropped:
            print(report.summary())
        if not samples:
            raise ValueError(f"no usable faces in {ds}")
        pred, model_name, scheme = predict_samples(model_ref, samples)
        if samples[0].scheme != scheme.name:
            samples = [convert_sample(s, scheme) for s in samples]
        label = (Path(path).stem if Path(path).is_file() else Path(path).name) + (f"-{part}" if part else "")
        method = name or model_name
        res = evaluate_predictions(samples, pred, scheme, name=method, dataset=label, out_dir=out_dir / label)
        results.append(res)
        subsets = attribute_subsets(samples, pred, scheme, name=method, dataset=label)
        if subsets:
            plot_ced([res, *subsets], out_dir / label / "subsets_ced.png", title=f"CED by attribute: {label}")
            results.extend(subsets)
    write_report(results, out_dir, "report")
    return results
