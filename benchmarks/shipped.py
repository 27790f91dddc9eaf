"""The shipped models' test figures: one protocol for the published table, the model cards and CI.

    python benchmarks/shipped.py            # measure every shipped model, write the figures into its card

Each model runs on the untouched test sets (AFW and YouTube-Faces test) from
the tight ground-truth boxes, one thread, through the installed runtime. The
figures go into the model card beside the ``.onnx`` file with the runtime
versions; tests/test_regression.py recomputes them in CI, so a worse model or
a runtime that moves the points turns CI red. Test sets are measured here,
never used to choose anything.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from provenance import versions  # noqa: E402

from facepoints.config import data_root  # noqa: E402

DATA = data_root()
TEST_SETS = {
    "afw": DATA / "300w-68" / "afw",
    "youtube-test": DATA / "youtube-faces-68" / "test_frames_keypoints.csv",
}
# The annotation convention each test set was drawn in (models with several conventions answer in it).
TEST_CONVENTIONS = {"afw": "300w", "youtube-test": "youtube"}
TOLERANCE = {"nme": 0.02, "fr10": 0.35, "auc10": 0.003}  # percent points, percent points, AUC units


@functools.cache
def test_samples(name: str) -> list:
    from facepoints.datasets import load_dataset

    return load_dataset(str(TEST_SETS[name]), progress=False)[0]


def card_of(model_ref: str | Path):
    """A shipped name's or .onnx path's model card, read without starting an inference session."""
    from facepoints.card import ModelCard
    from facepoints.inference import resolve_model

    return ModelCard.for_model(resolve_model(model_ref))


def convention_for(card, dataset: str) -> str | None:
    """The test set's own convention when the model learned it, else the model's default."""
    wanted = TEST_CONVENTIONS[dataset]
    return wanted if wanted in card.conventions else None


def run(model_ref: str | Path, dataset: str, convention: str | None = None, flip_average: bool = False):
    """(EvalResult, points, scores, samples, convention) of one model on one test set, box = tight GT box.

    ``convention``: the output markup; default: the test set's own when the model learned it.
    ``flip_average``: the opt-in mode that also runs the mirrored crop (its row is named "<model> +flip").
    """
    import facepoints
    from facepoints.datasets import convert_sample
    from facepoints.metrics import compute_metrics

    convention = convention or convention_for(card_of(model_ref), dataset)
    model = facepoints.load(model_ref, threads=1, convention=convention, flip_average=flip_average)
    samples = test_samples(dataset)
    if model.scheme.name != samples[0].scheme:  # e.g. kaggle15: the 68 annotated points converted, same face box
        samples = [convert_sample(s, model.scheme) for s in samples]
    out = [model.landmarks_with_scores(s.image, s.crop_box[None]) for s in samples]
    pred, scores = np.stack([p[0] for p, _ in out]), np.stack([c[0] for _, c in out])
    gt, mask = np.stack([s.points for s in samples]), np.stack([s.mask for s in samples])
    name = f"{model.card.name} +flip" if flip_average else str(model.card.name)
    r = compute_metrics(pred, gt, mask, model.scheme, name=name, dataset=dataset,
                        sources=[s.source for s in samples])
    return r, pred, (scores if model.card.model != "baseline" else None), samples, convention


def measure(model_ref: str | Path, dataset: str) -> dict[str, float | str]:
    """NME %, FR@10 %, AUC@0.10 of one model on one test set: what its card records."""
    r, *_, convention = run(model_ref, dataset)
    out: dict[str, float | str] = {"nme": round(r.nme_mean, 4), "fr10": round(r.failure_rate, 4),
                                   "auc10": round(r.auc, 5), "faces": r.n_faces}
    if convention:
        out["convention"] = convention
    return out


def retrain(name: str, card) -> str:
    """The commands that rebuild this shipped file and its card from scratch."""
    from facepoints.checkpoint import read_checkpoint
    from facepoints.export import retrain_command

    ck = read_checkpoint(ROOT / "checkpoints" / f"{name}.pt")
    line = retrain_command(ck, name, int8="int8" in card.precision)
    if card.score_calibration:  # as benchmarks/regenerate.sh runs them: each model's own recipe and card
        own = name != "default"
        calibrate = f" --config configs/{ck['config']['name']}.yaml --out benchmarks/results/{name}" if own else ""
        cut = f" --model {name} --out benchmarks/results/not_a_face_{name}" if own else ""
        line += (f" && python benchmarks/calibrate_scores.py --model facepoints/weights/{name}.onnx{calibrate}"
                 f" --write-card && python benchmarks/not_a_face.py{cut} --write-card")
    return line + " && python benchmarks/shipped.py"


def record(names: list[str]) -> None:
    """Measure each shipped model on every test set and store the figures in its card."""
    from facepoints.card import ModelCard
    from facepoints.inference import model_dir

    for name in names:
        path = model_dir() / f"{name}.onnx"
        card = ModelCard.for_model(path)
        card.metrics = {ds: measure(path, ds) for ds in TEST_SETS}
        card.retrain = retrain(name, card)
        card.measured_with = {k: v for k, v in versions().items() if k in ("onnxruntime", "opencv-python-headless",
                                                                          "numpy", "pillow")}
        card.write(path)
        print(name, card.metrics)


def main() -> None:
    from facepoints.inference import available_models

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=None, help="shipped model names (default: all)")
    args = ap.parse_args()
    record(args.models or available_models())


if __name__ == "__main__":
    main()
