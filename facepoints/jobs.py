"""A model's evaluation on datasets, as ``facepoints evaluate`` runs it (to move to the evaluation package).

Models load through ``facepoints.inference.load_any``, so a ``.pt`` checkpoint and
its ``.onnx`` export take the same crop, batch and un-crop path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facepoints.batch import prepare_out_dir
from facepoints.datasets import Sample, load_dataset
from facepoints.geometry import tight_box


def predict_samples(model_ref: str, samples: list[Sample]) -> tuple[np.ndarray, str, object]:
    """Points for each sample, box = tight ground-truth box; a ``.pt`` checkpoint runs in torch (``load_any``)."""
    from facepoints.inference import load_any

    boxes = [tight_box(s.points, s.mask) for s in samples]
    lm = load_any(model_ref, max_pixels=None)
    pred = np.stack([lm.landmarks(s.image, b[None])[0] for s, b in
                     tqdm(list(zip(samples, boxes)), desc="predicting", leave=False)])
    return pred, lm.name, lm.scheme


def evaluate_model(model_ref: str, datasets: list[str], out_dir: Path, name: str | None = None) -> list:
    """Evaluate on each dataset; datasets whose faces carry attributes (WFLW's pose, occlusion, ...)
    also get one result per attribute subset, with their CED curves in one plot."""
    from facepoints.datasets import FORMATS, convert_sample, detect_format, split_dataset_path
    from facepoints.metrics import attribute_subsets
    from facepoints.reports import evaluate_predictions, plot_ced, write_report

    out_dir = prepare_out_dir(out_dir)  # an --out that is a file fails before any face is read
    results = []
    model_scheme = None
    for ds in datasets:
        path, part = split_dataset_path(ds)
        if model_scheme is None and Path(path).is_file() and FORMATS[detect_format(path)].own_scheme:
            from facepoints.inference import load_any

            # custom points are read in the model's scheme unless they name one
            model_scheme = load_any(model_ref).scheme
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
