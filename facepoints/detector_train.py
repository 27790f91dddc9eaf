"""Train and export the face detector (torch side).

    facepoints train-detector configs/detector_lean.yaml [-o key=value] [--resume]
    facepoints export-detector runs/detector/best.pt --out facepoints/weights/detector.onnx
    (or: python -m facepoints.detector_train train|export ...)

Targets are FCOS-style: a face is assigned to the pyramid levels its size
suits, the cells near its centre are positives (score 1, box = distances to
the tight box's sides), a ring around them and every ignore region count
neither way. Focal loss for the score, IoU loss for the box. Scenes are
composed afresh every step from a seed derived from (seed, epoch, index), so
a resumed run sees the same data as an uninterrupted one. Validation holds out
whole people (YouTube names) and photos; the score threshold is chosen there,
never on a test set.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from facepoints.checkpoint import atomic_save
from facepoints.config import load_config, save_config
from facepoints.datasets import DatasetSpec, load_dataset, split_by_group
from facepoints.detector_data import (
    FacePhoto,
    Scene,
    SceneConfig,
    compose_scene,
    load_negatives,
    natural_scene,
    photos_from_samples,
    searched_photos,
)
from facepoints.detector_model import STRIDES, DetectorNetConfig, ExportWrapper, FaceDetectorNet, count_parameters
from facepoints.detectors.base import nms
from facepoints.detectors.cnn import decode_cells
from facepoints.detectors.metrics import ImageResult, match_image, summarise, threshold_for_fp_budget
from facepoints.layout import memory_format

LEVEL_RANGES = ((0.0, 72.0), (36.0, 144.0), (72.0, 1e9))  # face side (pixels) each stride learns


@dataclass
class DetectorDataConfig:
    train: list[DatasetSpec] = field(default_factory=list)
    negatives: list[str] = field(default_factory=lambda: ["/usr/share/backgrounds",
                                                          "/usr/share/doc/opencv-doc/examples/data"])
    val_fraction: float = 0.1
    val_scenes: int = 300  # composed validation scenes from held-out people/photos
    val_natural: int = 200  # held-out photos as they are
    max_photos: int = 0  # > 0: every n-th photo so that about this many remain (quick runs, tests)
    search_formats: list[str] = field(default_factory=lambda: ["ibug-pts"])  # Haar-searched for bystanders
    unsearched_context: float = 2.0  # other sets are pasted at most this x the face box around the face


@dataclass
class DetectorOptimConfig:
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 12
    steps_per_epoch: int = 250
    warmup_steps: int = 200
    box_weight: float = 2.0
    points_weight: float = 0.5  # the five-point head's smooth-L1 loss (offsets in strides), when the net has one
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class DetectorEvalConfig:
    nms_iou: float = 0.4
    fp_budget: float = 0.05  # false detections per photo allowed when choosing the default threshold
    min_face_px: float = 10.0  # smallest face side the network is asked to find, in network pixels
    # The runtime pyramid (``CnnDetector.levels``), chosen on held-out photos by benchmarks/detector_pyramid.py
    band_px: float = 160.0
    pyramid_step: float = 0.5
    band_overlap: float = 1.0


@dataclass
class DetectorTrainConfig:
    name: str = "detector"
    out_dir: str = "runs/detector"
    seed: int = 0
    threads: int = 1
    workers: int = 1
    init_from: str = ""  # start from this checkpoint's weights (a fine-tuning stage)
    channels_last: bool = False  # NHWC tensors: the same sums, ~1.5x faster training steps on x86 CPUs
    data: DetectorDataConfig = field(default_factory=DetectorDataConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    model: DetectorNetConfig = field(default_factory=DetectorNetConfig)
    optim: DetectorOptimConfig = field(default_factory=DetectorOptimConfig)
    eval: DetectorEvalConfig = field(default_factory=DetectorEvalConfig)


# ---------------------------------------------------------------- targets


TARGET_CHANNELS = 17  # positive, weight, l, t, r, b, points known, 5 x (x, y)


def level_targets(boxes: np.ndarray, ignore: np.ndarray, height: int, width: int,
                  points: np.ndarray | None = None) -> list[np.ndarray]:
    """Per stride an array (17, h, w): positive, weight (0 = ignored), l, t, r, b in strides, then whether the
    five points (``points`` (N, 5, 2), one row per box) are known and their offsets from the cell in strides."""
    out = []
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) if len(boxes) else np.zeros(0)
    if points is None or len(points) != len(boxes):
        points = np.full((len(boxes), 5, 2), np.nan)
    for stride, (lo, hi) in zip(STRIDES, LEVEL_RANGES):
        h, w = math.ceil(height / stride), math.ceil(width / stride)
        t = np.zeros((TARGET_CHANNELS, h, w), np.float32)
        t[1] = 1.0
        cy, cx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = (cx + 0.5) * stride - 0.5, (cy + 0.5) * stride - 0.5
        for b in ignore:
            t[1][(cx >= b[0]) & (cx <= b[2]) & (cy >= b[1]) & (cy <= b[3])] = 0.0
        best_area = np.full((h, w), np.inf, np.float32)
        for b, s, five in zip(boxes, sides, points):
            bx, by = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            d = np.maximum(np.abs(cx - bx), np.abs(cy - by))
            near = lo * 0.75 <= s < hi * 1.25  # sizes just outside the range: neither taught nor punished
            if not near:
                continue
            if not (lo <= s < hi):
                t[1][d <= 0.5 * s] = np.where(t[0][d <= 0.5 * s] > 0, 1.0, 0.0)
                continue
            r = max(0.6 * stride, 0.25 * s)
            pos = (d <= r) & (best_area > s * s)
            t[1][(d <= max(2 * r, 0.5 * s)) & (t[0] == 0)] = 0.0
            t[0][pos], t[1][pos], best_area[pos] = 1.0, 1.0, s * s
            t[2][pos], t[3][pos] = (cx[pos] - b[0]) / stride, (cy[pos] - b[1]) / stride
            t[4][pos], t[5][pos] = (b[2] - cx[pos]) / stride, (b[3] - cy[pos]) / stride
            known = bool(np.isfinite(five).all())
            t[6][pos] = float(known)
            five = five if known else np.zeros((5, 2))
            t[7::2][:, pos] = (five[:, :1] - cx[pos]) / stride
            t[8::2][:, pos] = (five[:, 1:] - cy[pos]) / stride
        out.append(t)
    return out


class SceneDataset(Dataset):
    """Composed scenes; item i of epoch e is reproducible from (seed, e, i)."""

    def __init__(self, photos: list[FacePhoto], negatives: list[np.ndarray], cfg: DetectorTrainConfig) -> None:
        self.photos, self.negatives, self.cfg = photos, negatives, cfg
        self.searched = searched_photos(photos)
        self.epoch = 0

    def __len__(self) -> int:
        return self.cfg.optim.steps_per_epoch * self.cfg.optim.batch_size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
        scene = compose_scene(self.photos, self.negatives, self.cfg.scene, rng, self.searched)
        s = self.cfg.scene.size
        targets = level_targets(scene.boxes, scene.ignore, s, s, scene.points)
        return (torch.from_numpy(scene.image).permute(2, 0, 1).contiguous(), *map(torch.from_numpy, targets))


# ---------------------------------------------------------------- loss


def detection_loss(outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]], targets: list[torch.Tensor],
                   o: DetectorOptimConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal loss on every counted cell, IoU loss of the box at positives, smooth L1 of the five points (when the
    net predicts them) at positives whose points are known; each per positive."""
    cls_sum, box_sum, pts_sum, npos = 0.0, 0.0, 0.0, 0.0
    for (logit, dist, five), t in zip(outputs, targets):
        pos, weight = t[:, 0], t[:, 1]
        logit = logit[:, 0]
        p = torch.sigmoid(logit)
        ce = F.binary_cross_entropy_with_logits(logit, pos, reduction="none")
        pt = p * pos + (1 - p) * (1 - pos)
        alpha = o.focal_alpha * pos + (1 - o.focal_alpha) * (1 - pos)
        cls_sum = cls_sum + (alpha * (1 - pt) ** o.focal_gamma * ce * weight).sum()
        m = pos > 0
        if m.any():
            pred = dist.permute(0, 2, 3, 1)[m]
            tgt = t[:, 2:6].permute(0, 2, 3, 1)[m]
            box_sum = box_sum + iou_loss(pred, tgt).sum()
            if five is not None:
                known = t[:, 6][m][:, None]
                err = F.smooth_l1_loss(five.permute(0, 2, 3, 1)[m], t[:, 7:].permute(0, 2, 3, 1)[m],
                                       reduction="none", beta=0.1)
                pts_sum = pts_sum + (err * known).mean(dim=1).sum()
        npos = npos + float(m.sum())
    n = max(1.0, npos)
    parts = {"cls": cls_sum / n, "box": box_sum / n, "points": pts_sum / n}
    total = parts["cls"] + o.box_weight * parts["box"] + o.points_weight * parts["points"]
    return total, {**{k: float(v.detach()) if torch.is_tensor(v) else v for k, v in parts.items()}, "pos": npos}


def iou_loss(pred: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """GIoU loss of boxes given as (l, t, r, b) distances from the same point."""
    pa = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    ta = (tgt[:, 0] + tgt[:, 2]) * (tgt[:, 1] + tgt[:, 3])
    iw = torch.minimum(pred[:, 0], tgt[:, 0]) + torch.minimum(pred[:, 2], tgt[:, 2])
    ih = torch.minimum(pred[:, 1], tgt[:, 1]) + torch.minimum(pred[:, 3], tgt[:, 3])
    inter = iw * ih
    union = pa + ta - inter
    iou = inter / union.clamp(min=1e-6)
    cw = torch.maximum(pred[:, 0], tgt[:, 0]) + torch.maximum(pred[:, 2], tgt[:, 2])
    ch = torch.maximum(pred[:, 1], tgt[:, 1]) + torch.maximum(pred[:, 3], tgt[:, 3])
    enclose = (cw * ch).clamp(min=1e-6)
    return 1 - iou + (enclose - union) / enclose


# ---------------------------------------------------------------- validation


def pad_to_stride(image: np.ndarray, multiple: int = 32) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(image, ((0, ph), (0, pw), (0, 0))) if ph or pw else image


@torch.no_grad()
def detect_torch(wrapper: ExportWrapper, image: np.ndarray, threshold: float = 0.02,
                 nms_iou: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's decoding on the torch model: for validation during training."""
    # astype copies: cached photos are read-only arrays
    x = torch.from_numpy(pad_to_stride(image).astype(np.float32)).permute(2, 0, 1)[None]
    outputs = [t.numpy() for t in wrapper(x)[:2]]  # scores, box distances
    keep = outputs[0][0] >= threshold
    b, _ = decode_cells(outputs, keep, x.shape[2], x.shape[3], list(STRIDES))
    s = outputs[0][0][keep]
    k = nms(b, s, nms_iou)
    return b[k], s[k]


def validate(net: FaceDetectorNet, scenes: list[Scene], nms_iou: float) -> list[ImageResult]:
    wrapper = ExportWrapper(net).eval()
    out = []
    for sc in scenes:
        b, s = detect_torch(wrapper, sc.image, nms_iou=nms_iou)
        out.append(match_image(b, s, sc.boxes, sc.ignore))
    return out


def validation_scenes(photos: list[FacePhoto], negatives: list[np.ndarray], cfg: DetectorTrainConfig) -> list[Scene]:
    rng = np.random.default_rng([cfg.seed, 99991])
    searched = searched_photos(photos)
    composed = [compose_scene(photos, negatives, cfg.scene, rng, searched) for _ in range(cfg.data.val_scenes)]
    picks = rng.permutation(len(photos))[: cfg.data.val_natural]
    return composed + [natural_scene(photos[i], cfg.scene.size) for i in picks]


# ---------------------------------------------------------------- loop


def load_detector_config(path: str | Path | None, overrides: list[str] | None = None) -> DetectorTrainConfig:
    return load_config(DetectorTrainConfig, path, overrides)


def _prepare(cfg: DetectorTrainConfig, out: Path) -> tuple[list[FacePhoto], list[FacePhoto], list[np.ndarray]]:
    """Training and held-out photos (split by person/photo within each set), and the negatives."""
    cv2.setNumThreads(1)
    sets = [(spec, load_dataset(spec, progress=False)[0]) for spec in cfg.data.train]
    total = sum(len(s) for _, s in sets)
    every = max(1, total // cfg.data.max_photos) if cfg.data.max_photos > 0 else 1
    train: list[FacePhoto] = []
    val: list[FacePhoto] = []
    for spec, samples in sets:
        train_s, val_s = split_by_group(samples[::every], cfg.data.val_fraction, cfg.seed)
        search = spec.format in cfg.data.search_formats
        train += photos_from_samples(train_s, out / "cache", search, cfg.data.unsearched_context)
        val += photos_from_samples(val_s, out / "cache", search, cfg.data.unsearched_context)
    return train, val, load_negatives(cfg.data.negatives)


def train_detector(cfg: DetectorTrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train as configured; returns the best checkpoint (by validation AP). Every epoch writes last.pt."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    train_photos, val_photos, negatives = _prepare(cfg, out)
    save_config(cfg, out / "config.yaml")
    if progress:
        print(f"train photos {len(train_photos)}, validation photos {len(val_photos)}, negatives {len(negatives)}")
    neg_val = negatives[::-1]  # same pool, other crops: the validation seed differs
    val = validation_scenes(val_photos, neg_val, cfg)
    net = FaceDetectorNet(cfg.model).to(memory_format=memory_format(cfg.channels_last))
    resuming = resume and (out / "last.pt").is_file()
    if cfg.init_from and not resuming:  # a resumed stage continues from its own last.pt
        net.load_state_dict(torch.load(cfg.init_from, map_location="cpu", weights_only=True)["model"])
    o = cfg.optim
    opt = torch.optim.AdamW(net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    total = o.epochs * o.steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / o.warmup_steps)
                                              * 0.5 * (1 + math.cos(math.pi * min(1.0, k / total))))
    start, best_ap, history, legs = 0, -1.0, [], []
    if resuming:
        ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, best_ap, history = ck["epoch"] + 1, ck["best_ap"], ck["history"]
        legs = ck.get("legs") or [{"from_epoch": 0, "epochs": start}]
    elif resume:
        print(f"no {out / 'last.pt'} to resume from: starting afresh")
    if not legs or legs[-1]["epochs"] != o.epochs:  # each change of schedule: how export retells the recipe
        legs = [*legs, {"from_epoch": start, "epochs": o.epochs}]
    dataset = SceneDataset(train_photos, negatives, cfg)
    if progress:
        print(f"network: {count_parameters(net):,} parameters; {total} steps of {o.batch_size}")
    for epoch in range(start, o.epochs):
        dataset.epoch = epoch
        loader = DataLoader(dataset, batch_size=o.batch_size, shuffle=False, num_workers=cfg.workers,
                            drop_last=True)
        row = _train_epoch(net, loader, opt, sched, o, epoch, progress, memory_format(cfg.channels_last))
        results = validate(net, val, cfg.eval.nms_iou)
        thr = threshold_for_fp_budget(results, cfg.eval.fp_budget)
        summ = summarise(results, thr)
        natural = summarise(results[cfg.data.val_scenes:], thr)
        row.update(val_ap=round(summ.ap, 4), val_recall=round(summ.recall, 4), threshold=round(thr, 4),
                   natural_ap=round(natural.ap, 4), natural_recall=round(natural.recall, 4))
        history.append(row)
        improved = summ.ap > best_ap
        best_ap = max(best_ap, summ.ap)
        payload = {"model": net.state_dict(), "config": asdict(cfg), "epoch": epoch, "best_ap": best_ap,
                   "history": history, "legs": legs, "threshold": thr, "val": asdict(summ),
                   "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
        atomic_save(payload, out / "last.pt")
        if improved:
            atomic_save(payload, out / "best.pt")
        _write_history(history, out / "history.csv")
        if progress:
            print(f"epoch {epoch}: {row}", flush=True)
    return out / "best.pt"


def _train_epoch(net: FaceDetectorNet, loader: DataLoader, opt: torch.optim.Optimizer, sched: Any,
                 o: DetectorOptimConfig, epoch: int, progress: bool,
                 fmt: torch.memory_format = torch.contiguous_format) -> dict[str, Any]:
    net.train()
    sums = {"loss": 0.0, "cls": 0.0, "box": 0.0, "points": 0.0}
    n, t0 = 0, time.time()
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not progress, mininterval=10)
    for image, *targets in bar:
        loss, parts = detection_loss(net((image.float() / 255.0).contiguous(memory_format=fmt)), targets, o)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        sched.step()
        n += 1
        sums["loss"] += float(loss.detach())
        for k in ("cls", "box", "points"):
            sums[k] += parts[k]
        bar.set_postfix(loss=f"{sums['loss'] / n:.3f}")
    return {"epoch": epoch, **{k: round(v / max(1, n), 4) for k, v in sums.items()},
            "lr": opt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 1)}


def _write_history(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m facepoints.detector_train")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the face detector from a config")
    t.add_argument("config")
    t.add_argument("-o", "--override", action="append", default=[])
    t.add_argument("--resume", action="store_true")
    e = sub.add_parser("export", help="export a checkpoint to ONNX + sidecar JSON")
    e.add_argument("checkpoint")
    e.add_argument("--out", default="facepoints/weights/detector.onnx")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        print(f"best checkpoint: {train_detector(load_detector_config(args.config, args.override), args.resume)}")
    else:
        from facepoints.detector_export import export_detector

        print(f"wrote {export_detector(args.checkpoint, args.out)}")


if __name__ == "__main__":
    main()
