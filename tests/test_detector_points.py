"""The detector's five-point head: labels that follow pastes and mirrors, targets, the exported graph, the runtime,
and ``detect`` cropping a turned face upright from its first landmark pass."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from facepoints.detector_data import FacePhoto, Scene, SceneConfig, _paste, five_points
from facepoints.detector_model import STRIDES, DetectorNetConfig, ExportWrapper, FaceDetectorNet
from facepoints.detector_train import TARGET_CHANNELS, detection_loss, level_targets, load_detector_config
from facepoints.detectors.base import Detection
from facepoints.detectors.cnn import decode_cells
from facepoints.refine import first_crops
from tests.conftest import synthetic_face


def _pasted(flip: bool, roll: float) -> Scene:
    img, pts = synthetic_face(160, 0)
    photo = FacePhoto(img, [pts.astype(np.float64)], np.zeros((0, 4)), "p0")
    cfg = SceneConfig(size=256, roll_p=1.0, max_roll=abs(roll) + 1e-9, flip_p=float(flip), feather=(0.01, 0.01))
    scene = Scene(np.zeros((256, 256, 3), np.uint8), np.zeros((0, 4)), np.zeros((0, 4)))
    assert _paste(scene, photo, 90.0, cfg, np.random.default_rng(3), 1.6, np.array([128.0, 128.0]))
    return scene


@pytest.mark.parametrize("flip", [False, True])
def test_pasted_faces_carry_five_points_image_left_eye_first_even_when_mirrored(flip: bool) -> None:
    scene = _pasted(flip, 10.0)
    assert scene.points.shape == (len(scene.boxes), 5, 2) == (1, 5, 2)
    five, box = scene.points[0], scene.boxes[0]
    assert ((five >= box[:2]) & (five <= box[2:])).all()
    assert five[0, 0] < five[1, 0] and five[3, 0] < five[4, 0]  # eyes and mouth corners: image-left first
    # the drawn face's image-left eye is blue; mirrored, the red eye is on the left, and the label follows it
    r, _, b = scene.image[int(round(five[0, 1])), int(round(five[0, 0]))].astype(int)
    assert (r > b) if flip else (b > r)


def test_five_points_are_eye_centres_nose_tip_and_mouth_corners() -> None:
    _, pts = synthetic_face(128, 1)
    five = five_points(pts.astype(np.float64))
    assert np.allclose(five[0], pts[36:42].mean(0)) and np.allclose(five[1], pts[42:48].mean(0))
    assert np.allclose(five[2:], pts[[30, 48, 54]])
    assert np.allclose(five_points(pts.astype(np.float64), mirrored=True), five[[1, 0, 2, 4, 3]])


def test_targets_hold_each_positive_cells_offsets_to_the_points_and_decode_back() -> None:
    box = np.array([100.0, 60.0, 126.0, 90.0])  # stride 8 only
    five = np.array([[106.0, 70.0], [119.0, 71.0], [113.0, 78.0], [108.0, 85.0], [118.0, 85.5]])
    t = level_targets(box[None], np.zeros((0, 4)), 320, 320, five[None])
    assert t[0].shape[0] == TARGET_CHANNELS
    pos = t[0][0] > 0
    assert pos.any() and (t[0][6][pos] == 1).all()
    cy, cx = np.nonzero(pos)
    px, py = (cx + 0.5) * 8 - 0.5, (cy + 0.5) * 8 - 0.5
    for k in range(5):
        assert np.allclose(px + 8 * t[0][7 + 2 * k][pos], five[k, 0], atol=1e-4)
        assert np.allclose(py + 8 * t[0][8 + 2 * k][pos], five[k, 1], atol=1e-4)
    unknown = level_targets(box[None], np.zeros((0, 4)), 320, 320, np.full((1, 5, 2), np.nan))
    assert (unknown[0][6] == 0).all() and np.isfinite(unknown[0]).all()


def test_the_head_decodes_points_in_pixels_and_its_loss_teaches_only_known_points() -> None:
    torch.manual_seed(0)
    net = FaceDetectorNet(DetectorNetConfig(points=True)).eval()
    with torch.no_grad():
        net.points.weight.zero_()
        net.points.bias.copy_(torch.tensor([1.0, -0.5] * 5))  # every point one stride right, half a stride up
        outputs = [o.numpy() for o in ExportWrapper(net)(torch.rand(1, 3, 64, 96) * 255)]
    cells = sum((64 // s) * (96 // s) for s in STRIDES)
    assert outputs[2].shape == (1, 10, cells) and outputs[1].shape == (1, 4, cells)
    _, points = decode_cells(outputs, np.ones(cells, bool), 64, 96, list(STRIDES))
    points = torch.from_numpy(points)[None]
    centres = torch.cat([torch.stack(torch.meshgrid((torch.arange(64 // s) + 0.5) * s - 0.5,
                                                    (torch.arange(96 // s) + 0.5) * s - 0.5, indexing="ij")[::-1], -1)
                         .reshape(-1, 2) for s in STRIDES])
    steps = torch.cat([torch.full(((64 // s) * (96 // s), 1), float(s)) for s in STRIDES])
    assert torch.allclose(points[0, :, 0], centres + steps * torch.tensor([1.0, -0.5]), atol=1e-4)

    o = load_detector_config(None).optim
    box = np.array([[10.0, 10.0, 40.0, 42.0]])
    five = np.array([[[18.0, 20.0], [32.0, 20.0], [25.0, 28.0], [19.0, 35.0], [31.0, 35.0]]])
    net.train()
    x = torch.zeros(2, 3, 64, 64)
    known = [torch.from_numpy(np.stack([t, t])) for t in level_targets(box, np.zeros((0, 4)), 64, 64, five)]
    unknown = [torch.from_numpy(np.stack([t, t])) for t in level_targets(box, np.zeros((0, 4)), 64, 64)]
    _, with_points = detection_loss(net(x), known, o)
    _, without = detection_loss(net(x), unknown, o)
    assert with_points["points"] > 0 and without["points"] == 0
    assert with_points["box"] == pytest.approx(without["box"]) and with_points["cls"] == pytest.approx(without["cls"])


def test_a_trained_tiny_detector_with_the_head_exports_and_returns_points(tmp_path: Path, real_data: Path) -> None:
    from facepoints.detector_export import export_detector
    from facepoints.detector_train import train_detector
    from facepoints.detectors import CnnDetector

    neg = tmp_path / "negatives"
    neg.mkdir()
    import cv2

    cv2.imwrite(str(neg / "n.png"), np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    over = [f"out_dir={tmp_path / 'run'}", f"data.negatives=[{neg}]", "data.max_photos=40",
            f"data.train=[{{path: {real_data / '300w-68/helen/trainset'}, format: ibug-pts}}]",
            "data.val_scenes=4", "data.val_natural=4", "scene.size=128", "optim.batch_size=4",
            "optim.steps_per_epoch=2", "optim.epochs=1", "optim.warmup_steps=2", "workers=0"]
    cfg = load_detector_config(Path(__file__).resolve().parents[1] / "configs" / "detector_points.yaml", over)
    assert cfg.model.points
    train_detector(cfg, progress=False)
    onnx = export_detector(Path(cfg.out_dir) / "last.pt", tmp_path / "det.onnx")
    det = CnnDetector(onnx, threshold=0.0, threads=1, max_faces=5)
    assert "offsets" in det.meta["outputs"]
    dets = det.detect(np.full((100, 150, 3), 90, np.uint8))
    assert dets and all(d.points is not None and d.points.shape == (5, 2) for d in dets)
    assert all(np.isfinite(d.points).all() for d in dets)


def test_the_first_crop_turns_with_the_detectors_points_and_shrinks_to_the_upright_face() -> None:
    a = math.radians(40)
    c, s = math.cos(a), math.sin(a)
    eyes = np.array([[-10.0, 0.0], [10.0, 0.0]]) @ np.array([[c, s], [-s, c]]) + 100.0
    five = np.vstack([eyes, [[100.0, 110.0], [95.0, 120.0], [105.0, 120.0]]])
    boxes = np.array([[50.0, 50.0, 150.0, 150.0], [10.0, 10.0, 40.0, 44.0]])
    dets = [Detection(boxes[0], 0.9, "x", points=five), Detection(boxes[1], 0.8, "x")]
    crops, angles = first_crops(boxes, dets, turn=True)
    assert angles[0] == pytest.approx(a) and angles[1] == 0.0
    assert np.array_equal(crops[1], boxes[1])  # no points: the detector's own box, unturned, as before
    assert np.allclose((crops[0, :2] + crops[0, 2:]) / 2, 100.0)
    assert crops[0, 2] - crops[0, 0] == pytest.approx(100.0 / (c + s))
    still, none = first_crops(boxes, dets, turn=False)
    assert np.array_equal(still, boxes) and not none.any()


def test_detect_sees_a_turned_face_better_when_the_detector_gives_its_points(real_data: Path) -> None:
    """A real AFW face turned by 45 degrees, boxed as a detector boxes it (the axis-aligned box of the turned
    points): with the five points the first landmark pass is already upright, so fewer points land far off."""
    import cv2

    import facepoints
    from facepoints.datasets import load_dataset
    from facepoints.detectors.boxmap import BoxMap, BoxMaps
    from facepoints.geometry import tight_box

    class Given:
        box_maps = BoxMaps({"given": BoxMap()})  # the box is already the tight box

        def __init__(self, d: Detection) -> None:
            self.d = d

        def detect(self, image: np.ndarray) -> list[Detection]:
            return [self.d]

    errors = {True: [], False: []}
    for sample in load_dataset(str(real_data / "300w-68/afw"), progress=False)[0][:40:4]:
        h, w = sample.image.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 45.0, 1.0)
        img = cv2.warpAffine(sample.image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        pts = sample.points @ m[:, :2].T + m[:, 2]
        iod = np.linalg.norm(pts[45] - pts[36])
        for with_points in (True, False):
            d = Detection(tight_box(pts), 0.9, "given", points=five_points(pts) if with_points else None)
            model = facepoints.load(threads=1, detector=Given(d), refine=1, min_face_score=0.0)
            found = model.detect(img)
            errors[with_points].append(np.linalg.norm(found[0].points - pts, axis=1).mean() / iod)
    assert np.mean(errors[True]) < np.mean(errors[False]), errors
