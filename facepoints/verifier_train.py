"""Train and export the face verifier (torch side): the detector's own mistakes are its negatives.

    facepoints train-verifier configs/verifier.yaml [-o key=value] [--resume]
    facepoints export-verifier runs/verifier/best.pt --out facepoints/weights/verifier.onnx

Mining runs the shipped detector, at a low candidate threshold, over the
detector recipe's photos: the searched HELEN photos as they are (their
unannotated faces are ignore regions), composed scenes and the faceless
backgrounds. A candidate that matches an annotated face (IoU >= 0.5) is a
positive, one that overlaps no face or ignore region (IoU < 0.3) a negative,
anything between is dropped. The detector recipe's held-out people and photos
give the validation candidates, so the verifier and its threshold are chosen
without a test set. Crops are stored with extra context and cut again every
step, turned, shifted and zoomed, through the landmark model's crop path.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from facepoints.checkpoint import atomic_save
from facepoints.config import load_config, path_field, save_config
from facepoints.detector_data import FacePhoto, Scene, compose_scene, natural_scene, searched_photos
from facepoints.detector_train import _prepare, load_detector_config
from facepoints.detectors.base import box_iou
from facepoints.detectors.cnn import CnnDetector
from facepoints.detectors.metrics import _overlaps_ignore
from facepoints.detectors.verifier import VERIFIER_FORMAT
from facepoints.geometry import apply_affine, crop_matrix, crop_to_input, tight_box, warp_crop
from facepoints.verifier_model import VerifierExport, VerifierNet, VerifierNetConfig


@dataclass
class VerifierDataConfig:
    detector_config: str = path_field("detector_wide.yaml")  # whose photos, people split and negatives
    detector: str = path_field("")  # the detector whose candidates are learnt ("": the shipped one)
    candidate_threshold: float = 0.05
    natural_max_side: int = 1024
    composed_scenes: int = 3000
    val_composed_scenes: int = 400
    store_size: int = 96
    store_context: float = 2.25  # stored crops hold this x the box, room for the turns and shifts


@dataclass
class VerifierAugmentConfig:
    rotate: float = 45.0  # uniform, degrees either way
    scale: float = 0.15  # box side times exp(U(-s, s))
    shift: float = 0.08  # share of the box side
    flip: float = 0.5
    photometric_p: float = 0.5
    grey_p: float = 0.1  # within the photometric step: black-and-white photos are common, and colour is a cue


@dataclass
class VerifierOptimConfig:
    lr: float = 3.0e-3
    weight_decay: float = 1.0e-4
    batch_size: int = 128
    epochs: int = 20


@dataclass
class VerifierTrainConfig:
    name: str = "verifier"
    out_dir: str = "runs/verifier"
    seed: int = 0
    threads: int = 1
    workers: int = 1
    data: VerifierDataConfig = field(default_factory=VerifierDataConfig)
    model: VerifierNetConfig = field(default_factory=VerifierNetConfig)
    augment: VerifierAugmentConfig = field(default_factory=VerifierAugmentConfig)
    optim: VerifierOptimConfig = field(default_factory=VerifierOptimConfig)


def load_verifier_config(path: str | Path | None, overrides: list[str] | None = None) -> VerifierTrainConfig:
    return load_config(VerifierTrainConfig, path, overrides)


# ---------------------------------------------------------------- mining


@dataclass
class Candidates:
    crops: np.ndarray  # (N, S, S, 3) uint8, the box centred with store_context
    boxes: np.ndarray  # (N, 4) the detection's box in crop pixels
    labels: np.ndarray  # (N,) 1 face, 0 not a face
    scores: np.ndarray  # (N,) the detector's score

    @staticmethod
    def concat(parts: list[Candidates]) -> Candidates:
        return Candidates(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("crops", "boxes", "labels",
                                                                                     "scores")))


def label_candidates(boxes: np.ndarray, faces: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """1 face (IoU >= 0.5), 0 background (IoU < 0.3 with every face and no ignore region), -1 neither."""
    out = np.full(len(boxes), -1, np.int8)
    iou = box_iou(boxes, faces).max(axis=1) if len(faces) and len(boxes) else np.zeros(len(boxes))
    ign = np.asarray(ignore, dtype=np.float64).reshape(-1, 4)
    for i, b in enumerate(boxes):
        if iou[i] >= 0.5:
            out[i] = 1
        elif iou[i] < 0.3 and not (len(ign) and _overlaps_ignore(b, ign, 0.3)):
            out[i] = 0
    return out


def stored_crop(image: np.ndarray, box: np.ndarray, size: int, context: float) -> tuple[np.ndarray, np.ndarray]:
    m = crop_matrix(box, size, context)
    corners = apply_affine(np.asarray(box, dtype=np.float64).reshape(2, 2), m)
    return warp_crop(image, m, size), corners.reshape(4)


def mine_scenes(scenes: list[Scene], detector: CnnDetector, cfg: VerifierDataConfig, desc: str) -> Candidates:
    crops, boxes, labels, scores = [], [], [], []
    for sc in tqdm(scenes, desc=desc, mininterval=5.0):
        dets = detector.detect(sc.image)
        if not dets:
            continue
        b = np.array([d.box for d in dets])
        lab = label_candidates(b, sc.boxes, sc.ignore)
        for d, box, y in zip(dets, b, lab):
            if y < 0:
                continue
            crop, inner = stored_crop(sc.image, box, cfg.store_size, cfg.store_context)
            crops.append(crop)
            boxes.append(inner)
            labels.append(y)
            scores.append(d.score)
    s = cfg.store_size
    return Candidates(np.array(crops, np.uint8).reshape(-1, s, s, 3), np.array(boxes).reshape(-1, 4),
                      np.array(labels, np.int8), np.array(scores, np.float32))


def annotated_faces(photos: list[FacePhoto], cfg: VerifierDataConfig) -> Candidates:
    """Every annotated face as a positive, its box from its points: faces the detector scored low are taught too."""
    crops, boxes = [], []
    for p in photos:
        for pts in p.faces:
            crop, inner = stored_crop(p.image, tight_box(pts), cfg.store_size, cfg.store_context)
            crops.append(crop)
            boxes.append(inner)
    n, s = len(crops), cfg.store_size
    return Candidates(np.array(crops, np.uint8).reshape(-1, s, s, 3), np.array(boxes).reshape(-1, 4),
                      np.ones(n, np.int8), np.full(n, np.nan, np.float32))


def mining_sets(cfg: VerifierTrainConfig, out: Path) -> dict[str, tuple[list[FacePhoto], list[Scene]]]:
    """Training and validation photos and scenes from the detector recipe, split by person and photo as it was."""
    dcfg = load_detector_config(cfg.data.detector_config)
    cache = Path(dcfg.out_dir) if Path(dcfg.out_dir).is_dir() else out / "cache"
    train, val, negatives = _prepare(dcfg, cache)
    sets: dict[str, tuple[list[FacePhoto], list[Scene]]] = {}
    for split, photos, n, negs in (("train", train, cfg.data.composed_scenes, negatives[::2]),
                                   ("val", val, cfg.data.val_composed_scenes, negatives[1::2])):
        rng = np.random.default_rng([cfg.seed, 0 if split == "train" else 1])
        searched = searched_photos(photos)
        natural = [natural_scene(p, cfg.data.natural_max_side) for p in searched]
        composed = [compose_scene(photos, negatives, dcfg.scene, rng, searched) for _ in range(n)]
        empty = [Scene(img, np.zeros((0, 4)), np.zeros((0, 4))) for img in negs]
        sets[split] = (photos, natural + composed + empty)
    return sets


def mine(cfg: VerifierTrainConfig, out: Path) -> dict[str, Candidates]:
    """The detector's candidates on training and held-out scenes, and every annotated face; cached in
    out/mined.npz."""
    path = out / "mined.npz"
    if path.is_file():
        z = np.load(path)
        return {s: Candidates(z[f"{s}_crops"], z[f"{s}_boxes"], z[f"{s}_labels"], z[f"{s}_scores"])
                for s in ("train", "val")}
    detector = CnnDetector(model=cfg.data.detector or None, threshold=cfg.data.candidate_threshold,
                           threads=cfg.threads)
    mined = {s: Candidates.concat([mine_scenes(scenes, detector, cfg.data, f"mining {s}"),
                                   annotated_faces(photos, cfg.data)])
             for s, (photos, scenes) in mining_sets(cfg, out).items()}
    np.savez(path, **{f"{s}_{k}": getattr(c, k) for s, c in mined.items()
                      for k in ("crops", "boxes", "labels", "scores")})
    return mined


# ---------------------------------------------------------------- training


class CandidateDataset(Dataset):
    """Stored crops cut again to the network's input: turned, zoomed, shifted and flipped when training."""

    def __init__(self, cands: Candidates, cfg: VerifierTrainConfig, train: bool) -> None:
        self.c, self.cfg, self.train = cands, cfg, train
        self.epoch = 0
        self.photometric = A.Compose([
            A.RandomBrightnessContrast(0.3, 0.3, p=1.0), A.GaussianBlur(blur_limit=(3, 5), p=0.3),
            A.ImageCompression(quality_range=(30, 90), p=0.3), A.ToGray(p=cfg.augment.grey_p),
        ], p=cfg.augment.photometric_p)

    def __len__(self) -> int:
        return len(self.c.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        crop, box = self.c.crops[i], self.c.boxes[i].astype(np.float64)
        angle = 0.0
        if self.train:
            a = self.cfg.augment
            rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
            side = max(box[2] - box[0], box[3] - box[1])
            centre = (box[:2] + box[2:]) / 2 + rng.uniform(-a.shift, a.shift, 2) * side
            half = (box[2:] - box[:2]) / 2 * np.exp(rng.uniform(-a.scale, a.scale))
            box = np.concatenate([centre - half, centre + half])
            angle = np.deg2rad(rng.uniform(-a.rotate, a.rotate))
            if rng.random() < a.flip:
                crop = crop[:, ::-1]
                box = np.array([crop.shape[1] - 1 - box[2], box[1], crop.shape[1] - 1 - box[0], box[3]])
        m = self.cfg.model
        x = warp_crop(np.ascontiguousarray(crop), crop_matrix(box, m.input_size, m.context, angle), m.input_size)
        if self.train:
            x = self.photometric(image=x)["image"]
        return torch.from_numpy(crop_to_input(x, 3)), torch.tensor(float(self.c.labels[i]))


def evaluate(net: VerifierNet, loader: DataLoader) -> dict[str, float]:
    """Loss, and the share of background kept when 99 % of faces are: what the detector can gain."""
    net.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            logits.append(net(x))
            labels.append(y)
    z, y = torch.cat(logits), torch.cat(labels)
    loss = float(F.binary_cross_entropy_with_logits(z, y))
    cut = float(torch.quantile(z[y == 1], 0.01)) if (y == 1).any() else 0.0
    kept = float((z[y == 0] >= cut).float().mean()) if (y == 0).any() else 0.0
    return {"val_loss": round(loss, 5), "background_kept_at_99": round(kept, 4)}


def train_verifier(cfg: VerifierTrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Mine (once), then train; every epoch writes last.pt, the lowest validation loss best.pt."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    cv2.setNumThreads(1)
    mined = mine(cfg, out)
    if progress:
        print({s: {"faces": int((c.labels == 1).sum()), "background": int((c.labels == 0).sum())}
               for s, c in mined.items()})
    net = VerifierNet(cfg.model)
    o = cfg.optim
    opt = torch.optim.AdamW(net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    train_set = CandidateDataset(mined["train"], cfg, train=True)
    steps = o.epochs * (len(train_set) // o.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=max(1, steps), pct_start=0.1)
    val_loader = DataLoader(CandidateDataset(mined["val"], cfg, train=False), batch_size=256)
    start, best, history = 0, float("inf"), []
    if resume and (out / "last.pt").is_file():
        ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, best, history = ck["epoch"] + 1, ck["best"], ck["history"]
    for epoch in range(start, o.epochs):
        train_set.epoch = epoch
        loader = DataLoader(train_set, batch_size=o.batch_size, shuffle=True, drop_last=True,
                            num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed + epoch))
        net.train()
        total = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{o.epochs}", disable=not progress, mininterval=2.0)
        for x, y in bar:
            loss = F.binary_cross_entropy_with_logits(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(y)
            bar.set_postfix(loss=f"{float(loss):.4f}")
        row = {"epoch": epoch, "train_loss": round(total / max(1, len(loader) * o.batch_size), 5),
               **evaluate(net, val_loader)}
        history.append(row)
        payload = {"model": net.state_dict(), "config": asdict(cfg), "epoch": epoch, "history": history,
                   "best": min(best, row["val_loss"]), "optimizer": opt.state_dict(),
                   "scheduler": sched.state_dict()}
        atomic_save(payload, out / "last.pt")
        if row["val_loss"] < best:
            best = row["val_loss"]
            atomic_save(payload, out / "best.pt")
        if progress:
            print(f"epoch {epoch}: {row}", flush=True)
    return out / "best.pt"


# ---------------------------------------------------------------- export


def export_verifier(checkpoint: str | Path, out: str | Path) -> Path:
    """ONNX (dynamic batch) and its card; the card's rule and thresholds come from benchmarks/verifier.py."""
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = VerifierNetConfig(**{**ck["config"]["model"], "widths": tuple(ck["config"]["model"]["widths"])})
    net = VerifierNet(model)
    net.load_state_dict(ck["model"])
    net.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    x = torch.rand(2, 3, model.input_size, model.input_size)
    wrapper = VerifierExport(net).eval()  # export restores the wrapper's mode afterwards: eval, not train
    with torch.no_grad():
        ref = wrapper(x).numpy()
    torch.onnx.export(wrapper, (x,), str(out), input_names=["image"], output_names=["face"],
                      dynamic_axes={"image": {0: "batch"}, "face": {0: "batch"}}, opset_version=17, dynamo=False)
    import onnxruntime as ort

    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["face"], {"image": x.numpy()})[0]
    if not np.allclose(ref, got, atol=1e-4):
        raise RuntimeError(f"ONNX verifier differs from torch by {np.abs(ref - got).max():.2e}")
    c = ck["config"]
    card = {"format": VERIFIER_FORMAT, "input_size": model.input_size, "context": model.context,
            "input": "float32 RGB crops (N, 3, S, S) in [0, 1], cut by facepoints.geometry.prepare_input",
            "output": "(N,) probability that the crop's box is a face",
            "training": {"epochs": ck["epoch"] + 1, "checkpoint": Path(checkpoint).name, "seed": c["seed"],
                         "history": ck["history"], "detector_config": Path(c["data"]["detector_config"]).name,
                         "candidate_threshold": c["data"]["candidate_threshold"]},
            "retrain": f"facepoints train-verifier configs/{c['name']}.yaml; facepoints export-verifier "
                       f"{c['out_dir']}/{Path(checkpoint).name} --out facepoints/weights/{out.name}; "
                       "python benchmarks/verifier.py --write-card",
            "parameters": sum(p.numel() for p in net.parameters())}
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out
