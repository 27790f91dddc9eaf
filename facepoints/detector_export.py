"""Export a detector checkpoint to ONNX with its model card, checked against torch, and fit its box map.

The graph takes a float RGB image (1, 3, H, W) in 0-255 with H and W any
multiples of 32, and returns every cell's score and decoded box; thresholds,
NMS and the rescale stay in numpy (``facepoints.detectors.cnn``). The box map
(CNN box -> tight landmark box) is fitted on training photos only, through the
exported model itself, so the shipped file and its map agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facepoints.config import from_dict
from facepoints.detector_model import STRIDES, DetectorNetConfig, ExportWrapper, FaceDetectorNet, count_parameters
from facepoints.detectors.cnn import SIDECAR_FORMAT, output_names

LICENCE = ("Weights trained by the facepoints project from scratch (no pretrained weights) on research-use data: "
           "YouTube Faces frames (68-point annotations of the facial keypoints teaching set) and the HELEN training "
           "set of 300-W; backgrounds from Debian's gnome-backgrounds, mate-backgrounds and opencv-doc packages. "
           "Code MIT; the weights inherit the datasets' research-use terms.")


def load_detector_checkpoint(path: str | Path) -> tuple[FaceDetectorNet, dict[str, Any]]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ck["config"]
    net = FaceDetectorNet(from_dict(DetectorNetConfig, cfg["model"]))
    net.load_state_dict(ck["model"])
    return net.eval(), ck


def _onnx_export(net: FaceDetectorNet, out: Path) -> None:
    wrapper = ExportWrapper(net).eval()
    x = torch.rand(1, 3, 256, 320) * 255
    names = output_names(net.points is not None)
    cells_axis = {"scores": 1, "distances": 2, "offsets": 2}
    torch.onnx.export(wrapper, (x,), str(out), input_names=["image"], output_names=names,
                      dynamic_axes={"image": {2: "height", 3: "width"}, **{n: {cells_axis[n]: "cells"} for n in names}},
                      opset_version=17, dynamo=False)


def check_against_torch(net: FaceDetectorNet, onnx_path: Path) -> float:
    """Largest score difference between torch and onnxruntime on two input shapes."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wrapper = ExportWrapper(net, fold_scale=False).eval()  # the network as trained: checks the folding too
    worst = 0.0
    for h, w in ((320, 320), (224, 416)):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h)) * 255
        with torch.no_grad():
            ts, *geometry = wrapper(x)
        os_, *onnx_geometry = sess.run(output_names(net.points is not None), {"image": x.numpy()})
        worst = max(worst, float(np.abs(ts.numpy() - os_).max()))
        for t, o in zip(geometry, onnx_geometry):
            if not np.allclose(t.numpy(), o, atol=1e-2 * max(h, w)):
                raise RuntimeError(f"ONNX box distances or point offsets differ from torch at input {h}x{w}")
    if worst > 1e-3:
        raise RuntimeError(f"ONNX scores differ from torch by {worst:.2e}")
    return worst


def fit_cnn_box_map(onnx_path: Path, cfg: dict[str, Any], limit: int = 800) -> tuple[dict[str, float], int]:
    """BoxMap fitted on training photos (not the held-out ones) with the exported model's own boxes."""
    from facepoints.datasets import DatasetSpec, load_dataset, split_by_group
    from facepoints.detectors import CnnDetector, fit_box_map
    from facepoints.detectors.boxmap import matched_detection
    from facepoints.geometry import tight_box

    samples = []
    for spec in cfg["data"]["train"]:
        samples += load_dataset(from_dict(DatasetSpec, spec), progress=False)[0]
    if cfg["data"].get("max_photos", 0) > 0:
        samples = samples[:: max(1, len(samples) // cfg["data"]["max_photos"])]
    train, _ = split_by_group(samples, cfg["data"]["val_fraction"], cfg["seed"])
    train = train[:: max(1, len(train) // limit)]
    det = CnnDetector(onnx_path, threads=1)
    found, tights = [], []
    for s in train:
        t = tight_box(s.points, s.mask)
        d = matched_detection(det.detect(s.image), t, 0.5)
        if d is not None:
            found.append(d)
            tights.append(t)
    if not found:  # an untrained network finds nothing: keep its boxes as they are
        return {"a_x": 0.0, "a_y": 0.0, "s_w": 1.0, "s_h": 1.0}, 0
    return fit_box_map(found, np.array(tights)).to_dict(), len(found)


def retrain_command(ck: dict[str, Any], checkpoint: str, out: str) -> str:
    """The commands that rebuild the checkpoint, a resumed run's legs included (its epochs given explicitly)."""
    cfg = ck["config"]
    legs = ck.get("legs") or [{"from_epoch": 0, "epochs": ck["epoch"] + 1}]
    run = f"facepoints train-detector configs/{cfg['name']}.yaml -o out_dir={cfg['out_dir']}"
    steps = [f"{run} -o optim.epochs={legs[0]['epochs']}"
             + (f" (after the stage that writes {cfg['init_from']})" if cfg.get("init_from") else "")]
    steps += [f"{run} --resume -o optim.epochs={leg['epochs']}" for leg in legs[1:]]
    return "; ".join([*steps, f"facepoints export-detector {cfg['out_dir']}/{checkpoint} --out {out}"])


def outputs_card(net: FaceDetectorNet) -> dict[str, str]:
    """The card's description of the graph's outputs (``ExportWrapper``)."""
    cells = "L cells: the stride maps flattened row by row, finest first; cell centres at (i + 0.5) stride - 0.5"
    out = {"scores": f"(1, L) probability-like face score per cell ({cells})",
           "distances": "(1, 4, L) from the cell centre to the box's left, top, right, bottom, input pixels"}
    if net.points is not None:
        out["offsets"] = ("(1, 10, L) eye centres (the image's left first), nose tip, mouth corners as x, y "
                          "offsets from the cell centre, input pixels")
    return out


def export_detector(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``out`` (.onnx) and its sidecar .json (the model card)."""
    net, ck = load_detector_checkpoint(checkpoint)
    cfg = ck["config"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _onnx_export(net, out)
    diff = check_against_torch(net, out)
    meta: dict[str, Any] = {
        "format": SIDECAR_FORMAT, "model": "facepoints face detector (anchor-free, depthwise-separable, FPN-lite)",
        "input": "float32 RGB (1, 3, H, W), values 0-255, H and W multiples of 32", "outputs": outputs_card(net),
        "strides": list(STRIDES), "max_stride": max(STRIDES),
        "threshold": round(float(ck["threshold"]), 4),
        "threshold_rule": f"lowest score with at most {cfg['eval']['fp_budget']} false detections per validation "
                          "photo (held-out training people and photos; no test set)",
        "nms_iou": cfg["eval"]["nms_iou"], "min_face_px": cfg["eval"]["min_face_px"],
        "band_px": cfg["eval"].get("band_px", 160.0), "pyramid_step": cfg["eval"].get("pyramid_step", 0.5),
        "band_overlap": cfg["eval"].get("band_overlap", 1.0),
        "box_convention": "tight box of the 68 iBUG points (brows to chin), the landmark model's box; "
                          "after a roll, the axis-aligned box of the rolled points",
        "training_data": [spec["path"] for spec in cfg["data"]["train"]], "negatives": cfg["data"]["negatives"],
        "retrain": retrain_command(ck, Path(checkpoint).name, out.name),
        "training": {"epochs": ck["epoch"] + 1, "checkpoint": Path(checkpoint).name, "seed": cfg["seed"],
                     "validation": ck["val"], "history": ck["history"]},
        "parameters": count_parameters(net), "precision": "float32",
        "onnx_vs_torch_max_score_diff": diff, "licence": LICENCE,
    }
    side = out.with_suffix(".json")
    side.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    meta["box_map"], meta["box_map_faces"] = fit_cnn_box_map(out, cfg)
    meta["box_map_fitted_on"] = "training photos of the config's data.train, validation people held out"
    side.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
