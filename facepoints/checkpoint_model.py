"""A training checkpoint behind the runtime's interface: ``CheckpointModel`` is a ``LandmarkModel`` run in torch.

Only the forward pass differs; cropping, batching, refinement, detection and
un-cropping are ``LandmarkModel``'s own, so a ``.pt`` and its ``.onnx`` export
give the same points. Imports torch, so the runtime reaches it only through
``facepoints.inference.load_any`` when a checkpoint is named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facepoints.card import ModelCard
from facepoints.export import convention_shifts, point_offset
from facepoints.inference import DEFAULT_MAX_PIXELS, LandmarkModel, ModelError
from facepoints.refine import DUPLICATE_IOU, REFINE_TOL


def _load_checkpoint(path: Path):
    try:  # the training package is being split; its checkpoint reader moves to facepoints.checkpoint
        from facepoints.checkpoint import load_checkpoint
    except ImportError:
        from facepoints.train import load_checkpoint
    return load_checkpoint(path)


class CheckpointModel(LandmarkModel):
    """``LandmarkModel``'s methods (``landmarks``, ``landmarks_with_scores``, ``detect``) on a ``.pt`` checkpoint."""

    def __init__(self, path: str | Path, *, threads: int | None = None, **kw) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"no checkpoint file {self.path}")
        try:
            self._net, ck = _load_checkpoint(self.path)
        except Exception as e:  # noqa: BLE001 - torch.load and the rebuild raise many types
            raise ModelError(f"cannot load checkpoint {self.path}: {type(e).__name__}: {e}") from None
        norm = ck["normalisation"]
        card = ModelCard(name=str(ck["config"].get("name") or self.path.stem), scheme=ck["scheme"],
                         input_size=norm["input_size"], channels=norm["channels"], context=norm["context"],
                         model=str(ck.get("model_name", "")), provenance=f"checkpoint {self.path}",
                         conventions=convention_shifts(ck), point_offset=point_offset(ck))
        self._configure(card, detector=kw.pop("detector", None), box_maps=kw.pop("box_maps", None),
                        batch_size=kw.pop("batch_size", 64), refine=kw.pop("refine", 2),
                        convention=kw.pop("convention", None), max_pixels=kw.pop("max_pixels", DEFAULT_MAX_PIXELS),
                        flip_average=kw.pop("flip_average", False), min_face_score=kw.pop("min_face_score", None),
                        threads=threads, upright=kw.pop("upright", True),
                        refine_tol=kw.pop("refine_tol", REFINE_TOL),
                        duplicate_iou=kw.pop("duplicate_iou", DUPLICATE_IOU))
        if kw:
            raise TypeError(f"unexpected arguments {sorted(kw)}")
        if threads is not None:
            torch.set_num_threads(threads)

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points, scores = [], []
        with torch.no_grad():
            for i in range(0, len(x), self.batch_size):
                out = self._net(torch.from_numpy(np.ascontiguousarray(x[i:i + self.batch_size])))
                p = out["points"]
                points.append(p.numpy())
                s = out.get("scores")
                scores.append(s.numpy() if s is not None else np.ones(p.shape[:2], np.float32))
        return np.concatenate(points), np.concatenate(scores)
