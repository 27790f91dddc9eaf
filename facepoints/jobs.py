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


def predict_samples(lm, samples: list[Sample]) -> np.ndarray:
    """Points for each sample from a loaded model (``load_any``), box = tight ground-truth box."""
    boxes = [tight_box(s.points, s.mask) for s in samples]
    return np.stack([lm.landmarks(s.image, b[None])[0] for s, b in
                     tqdm(list(zip(samples, boxes)), desc="predicting", leave=False)])


def evaluate_model(model_ref: str, datasets: list[str], out_dir: Path, name: str | None = None) -> list:
    """Evaluate on each dataset; datasets whose faces carry attributes (WFLW's pose, occlusion, ...)
    also get one result per attribute subset, with their CED curves in one plot."""
    from facepoints.datasets import FORMATS, convert_sample, detect_format, split_dataset_path
    from facepoints.inference import load_any
    from facepoints.metrics import attribute_subsets
    from facepoints.reports import evaluate_predictions, plot_ced, write_report

    out_dir = prepare_out_dir(out_dir)  # an --out that is a file, or a bad model, fails before any face is read
    lm = load_any(model_ref, max_pixels=None)
    scheme = lm.scheme
    results = []
    for ds in datasets:
        path, part = split_dataset_path(ds)
        # custom points are read in the model's scheme unless they name one
        own = Path(path).is_file() and FORMATS[detect_format(path)].own_scheme
        samples, report = load_dataset(ds, default_scheme=scheme if own else None)
        if report.dropped:
            print(report.summary())
        if not samples:
            raise ValueError(f"no usable faces in {ds}")
        pred = predict_samples(lm, samples)
        if samples[0].scheme != scheme.name:
            samples = [convert_sample(s, scheme) for s in samples]
        label = (Path(path).stem if Path(path).is_file() else Path(path).name) + (f"-{part}" if part else "")
        method = name or lm.name
        res = evaluate_predictions(samples, pred, scheme, name=method, dataset=label, out_dir=out_dir / label)
        results.append(res)
        subsets = attribute_subsets(samples, pred, scheme, name=method, dataset=label)
        if subsets:
            plot_ced([res, *subsets], out_dir / label / "subsets_ced.png", title=f"CED by attribute: {label}")
            results.extend(subsets)
    write_report(results, out_dir, "report")
    return results
