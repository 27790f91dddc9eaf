"""The detector's torch side: training targets, scene composition, a tiny train/resume/export round trip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facepoints.detector_data import (
    FacePhoto,
    Scene,
    SceneConfig,
    _paste,
    _warp_into,
    compose_scene,
    feathered_alpha,
    natural_scene,
)
from facepoints.detector_model import STRIDES, DetectorNetConfig, ExportWrapper, FaceDetectorNet
from facepoints.detector_train import detection_loss, iou_loss, level_targets, load_detector_config, train_detector
from facepoints.detectors.cnn import decode_cells
from facepoints.geometry import tight_box
from tests.conftest import synthetic_face


def test_targets_put_a_face_on_the_level_its_size_suits_and_decode_back_to_its_box() -> None:
    box = np.array([100.0, 60.0, 126.0, 90.0])  # 30 px: stride 8 only (stride 16 starts at 36 px)
    t = level_targets(box[None], np.zeros((0, 4)), 320, 320)
    assert [int(x[0].sum() > 0) for x in t] == [1, 0, 0]
    pos = t[0][0] > 0
    cy, cx = np.nonzero(pos)
    px, py = (cx + 0.5) * 8 - 0.5, (cy + 0.5) * 8 - 0.5
    decoded = np.stack([px - 8 * t[0][2][pos], py - 8 * t[0][3][pos], px + 8 * t[0][4][pos], py + 8 * t[0][5][pos]], 1)
    assert np.allclose(decoded, box, atol=1e-4)
    big = level_targets(np.array([[0.0, 0.0, 250.0, 260.0]]), np.zeros((0, 4)), 320, 320)
    assert [int(x[0].sum() > 0) for x in big] == [0, 0, 1]


def test_ignore_regions_and_the_ring_around_positives_count_neither_way() -> None:
    t = level_targets(np.array([[100.0, 100.0, 150.0, 150.0]]), np.array([[200.0, 200.0, 260.0, 260.0]]), 320, 320)[0]
    pos, weight = t[0] > 0, t[1]
    assert (weight[pos] == 1).all()
    assert weight[28, 28] == 0  # centre (227.5, 227.5) lies in the ignore box
    assert weight[5, 5] == 1  # plain background is a negative
    assert ((weight == 0) & ~pos)[int(100 / 8):int(150 / 8), int(100 / 8):int(150 / 8)].any()  # the ring


def test_iou_loss_is_zero_for_the_true_box_and_grows_with_the_error() -> None:
    tgt = torch.tensor([[2.0, 3.0, 4.0, 5.0]])
    assert float(iou_loss(tgt, tgt)) == pytest.approx(0.0, abs=1e-6)
    assert float(iou_loss(tgt * 1.2, tgt)) < float(iou_loss(tgt * 2.0, tgt))


def _photo(seed: int = 0) -> FacePhoto:
    img, pts = synthetic_face(160, seed)
    return FacePhoto(img, [pts.astype(np.float64)], np.zeros((0, 4)), f"p{seed}")


def test_a_paste_is_warped_only_where_it_lands_with_the_pixels_a_whole_scene_warp_gives() -> None:
    photo = _photo(1).image
    m = cv2.getRotationMatrix2D((80.0, 80.0), 33.0, 0.7)
    m[:, 2] += (40.0, 25.0)
    whole = cv2.warpAffine(photo, m, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    part = _warp_into(photo, m, (37, 90, 181, 200), cv2.BORDER_REFLECT101)
    assert part.shape == (110, 144, 3)
    diff = np.abs(part.astype(int) - whole[90:200, 37:181])
    assert (diff > 0).mean() < 1e-3  # OpenCV's 1/32-pixel fixed point rounds a few edge pixels the other way
    assert diff.max() <= 255 // 32 + 1


@pytest.mark.parametrize("shape, feather", [((120, 90), 14), ((40, 64), 3), ((30, 30), 1)])
def test_the_separable_feather_is_the_blurred_rectangle(shape: tuple[int, int], feather: int) -> None:
    rect = np.zeros(shape, np.float32)
    rect[feather:-feather, feather:-feather] = 1.0
    blurred = cv2.GaussianBlur(rect, (0, 0), feather / 2 + 0.1) if feather > 1 else rect
    alpha = feathered_alpha(*shape, feather)
    assert alpha.shape == shape
    assert np.abs(alpha - blurred).max() < 1e-5


def test_a_rolled_paste_moves_the_pixels_and_the_box_together() -> None:
    photo = _photo()
    cfg = SceneConfig(size=256, roll_p=1.0, max_roll=45.0, flip_p=0.0, feather=(0.01, 0.01))
    scene = Scene(np.zeros((256, 256, 3), np.uint8), np.zeros((0, 4)), np.zeros((0, 4)))
    assert _paste(scene, photo, 90.0, cfg, np.random.default_rng(3), 1.6, np.array([128.0, 128.0]))
    assert len(scene.boxes) == 1
    b = scene.boxes[0]
    assert 85 <= max(b[2] - b[0], b[3] - b[1]) <= 130  # 90 px face, grown by the roll's axis-aligned box
    # the drawn face's blue (image-left) eye keeps its colour at the moved eye centre
    eye = photo.faces[0][36:42].mean(0)
    src_blue = photo.image[int(round(eye[1])), int(round(eye[0]))]
    assert src_blue[2] > 150 and src_blue[0] < 80
    hits = np.argwhere((scene.image[..., 2] > 150) & (scene.image[..., 0] < 80))
    centre = hits.mean(0)[::-1]
    assert b[0] < centre[0] < b[2] and b[1] < centre[1] < b[3]


def test_composed_scenes_are_reproducible_and_keep_faces_inside_the_canvas() -> None:
    photos = [_photo(i) for i in range(4)]
    negatives = [np.random.default_rng(i).integers(0, 255, (200, 300, 3), dtype=np.uint8) for i in range(3)]
    cfg = SceneConfig(size=192)
    a = compose_scene(photos, negatives, cfg, np.random.default_rng([0, 1, 2]))
    b = compose_scene(photos, negatives, cfg, np.random.default_rng([0, 1, 2]))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    for _ in range(20):
        s = compose_scene(photos, negatives, cfg, np.random.default_rng(_))
        assert s.image.shape == (192, 192, 3)
        for box in s.boxes:  # targets are mostly inside and not tiny
            inside = np.clip(box, 0, 191)
            assert (inside[2] - inside[0]) * (inside[3] - inside[1]) >= 0.55 * (box[2] - box[0]) * (box[3] - box[1])


def test_photo_cells_label_each_face_they_show_and_keep_labels_inside_their_cell() -> None:
    photos = [FacePhoto(p.image, p.faces, p.ignore, p.group, max_context=1e9) for p in map(_photo, range(3))]
    negatives = [np.zeros((64, 64, 3), np.uint8)]
    cfg = SceneConfig(size=192, mosaic_p=1.0, negative_cell_p=0.0, photo_cell_p=1.0, mosaic_k=(0.0, 1.0),
                      photometric_p=0.0, dark_p=0.0, grey_p=0.0, blur_p=0.0, noise_p=0.0, jpeg_p=0.0)
    shown = 0
    for seed in range(30):
        s = compose_scene(photos, negatives, cfg, np.random.default_rng(seed))
        assert s.image.min() < 200  # every cell shows a photo: no empty canvas
        shown += len(s.boxes) + len(s.ignore)
        for box in s.ignore:  # a face cut by its cell is ignored only within that cell
            cells = np.floor(np.array([box[0], box[1], box[2] - 1e-6, box[3] - 1e-6]) / 96)
            assert cells[0] == cells[2] and cells[1] == cells[3], box
    assert shown > 30  # random crops of face photos show whole or cut faces, and every one is labelled


def test_natural_validation_scenes_scale_the_box_with_the_photo() -> None:
    photo = _photo()
    sc = natural_scene(photo, 80)
    assert max(sc.image.shape[:2]) == 80
    expected = (tight_box(photo.faces[0]) + 0.5) * 0.5 - 0.5
    assert np.allclose(sc.boxes[0], expected, atol=1e-6)


def test_export_graph_gives_scores_and_box_sides_in_pixels_that_the_runtime_decodes() -> None:
    torch.manual_seed(0)
    net = FaceDetectorNet().eval()
    image, trained_stem = torch.rand(1, 3, 64, 96) * 255, net.stem[0].weight.clone()
    with torch.no_grad():
        scores, distances = ExportWrapper(net)(image)
        plain_scores, plain_distances = ExportWrapper(net, fold_scale=False)(image)
        raw = net(image / 255.0)
    # the exported stem takes 0-255 directly: the same network as dividing the photo by 255
    assert torch.allclose(scores, plain_scores, atol=1e-6) and torch.allclose(distances, plain_distances, atol=1e-3)
    assert torch.equal(net.stem[0].weight, trained_stem)  # folding works on a copy: training goes on unchanged
    cells = sum((64 // s) * (96 // s) for s in STRIDES)
    assert scores.shape == (1, cells) and distances.shape == (1, 4, cells)
    # the stride-8 map's last cell (row 7, column 11) is centred at ((11 + 0.5) 8 - 0.5, (7 + 0.5) 8 - 0.5)
    # and the stride-32 map's last cell, the last of all (row 1, column 2), at (79.5, 47.5)
    keep = np.zeros(cells, bool)
    keep[[(64 // 8) * (96 // 8) - 1, cells - 1]] = True
    boxes, points = decode_cells([scores.numpy(), distances.numpy()], keep, 64, 96, list(STRIDES))
    for box, (cx, cy), stride, level in zip(boxes, [(91.5, 59.5), (79.5, 47.5)], (8, 32), (0, 2)):
        d = raw[level][1][0, :, -1, -1].numpy() * stride
        np.testing.assert_allclose(box, [cx - d[0], cy - d[1], cx + d[2], cy + d[3]], rtol=1e-5)
    assert points is None


@pytest.fixture
def tiny_config(tmp_path: Path, real_data: Path):
    neg = tmp_path / "negatives"
    neg.mkdir()
    for i in range(3):
        rng = np.random.default_rng(i)
        img = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(neg / f"n{i}.png"), img)
    over = [f"out_dir={tmp_path / 'run'}", f"data.negatives=[{neg}]", "data.max_photos=40",
            f"data.train=[{{path: {real_data / '300w-68/helen/trainset'}, format: ibug-pts}}]",
            "data.val_scenes=4", "data.val_natural=4", "scene.size=128", "optim.batch_size=4",
            "optim.steps_per_epoch=2", "optim.epochs=2", "optim.warmup_steps=2", "workers=0"]
    return load_detector_config(Path(__file__).resolve().parents[1] / "configs" / "detector.yaml", over)


def test_a_2x2_stem_and_a_one_block_head_keep_every_level_on_its_stride() -> None:
    """The lean designs (configs/detector_lean.yaml) must tile the photo exactly as the cell decoding assumes."""
    x = torch.rand(2, 3, 64, 96)
    for cfg in (DetectorNetConfig(stem_kernel=2), DetectorNetConfig(head_depth=1, neck=32, points=True)):
        net = FaceDetectorNet(cfg).eval()
        with torch.no_grad():
            levels = net(x)
        assert [lv[0].shape[-2:] for lv in levels] == [(64 // s, 96 // s) for s in STRIDES]
        assert len(net.head) == cfg.head_depth and net.stem[0].kernel_size == (cfg.stem_kernel,) * 2
    lean = load_detector_config(Path(__file__).resolve().parents[1] / "configs" / "detector_lean.yaml")
    assert lean.model.stem_kernel == 2 and lean.model.neck == 32 and lean.model.points


def test_channels_last_training_is_the_same_sums_in_another_memory_order() -> None:
    """``channels_last`` may only change the speed: the same loss and gradients as the NCHW network."""
    torch.manual_seed(0)
    plain = FaceDetectorNet()
    nhwc = FaceDetectorNet()
    nhwc.load_state_dict(plain.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64)
    targets = [torch.from_numpy(np.stack([t, t])) for t in
               level_targets(np.array([[10.0, 10.0, 40.0, 42.0]]), np.zeros((0, 4)), 64, 64)]
    optim = load_detector_config(None).optim
    losses = []
    for net, inp in ((plain, x), (nhwc, x.contiguous(memory_format=torch.channels_last))):
        loss, _ = detection_loss(net(inp), targets, optim)
        loss.backward()
        losses.append(float(loss))
    assert nhwc.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    g1, g2 = (torch.cat([p.grad.flatten() for p in net.parameters()]) for net in (plain, nhwc))
    assert float((g1 - g2).norm()) <= 1e-4 * float(g1.norm())  # float sums in another order, nothing more


@pytest.mark.parametrize("channels_last", [False, True])
def test_train_checkpoints_every_epoch_resumes_and_exports(tiny_config, tmp_path: Path, channels_last: bool) -> None:
    cfg = tiny_config
    cfg.optim.epochs = 1
    cfg.channels_last = channels_last
    best = train_detector(cfg, progress=False)
    out = Path(cfg.out_dir)
    assert best.is_file() and (out / "config.yaml").is_file() and (out / "history.csv").is_file()
    first = torch.load(out / "last.pt", weights_only=True)
    assert first["epoch"] == 0
    cfg.optim.epochs = 2
    train_detector(cfg, resume=True, progress=False)
    second = torch.load(out / "last.pt", weights_only=True)
    assert second["epoch"] == 1 and len(second["history"]) == 2
    assert second["history"][0] == first["history"][0]  # resumed, not restarted

    from facepoints.detector_export import export_detector
    from facepoints.detectors import CnnDetector

    onnx = export_detector(out / "last.pt", tmp_path / "det.onnx")
    det = CnnDetector(onnx, threshold=0.0, threads=1)
    assert det.meta["strides"] == list(STRIDES) and "box_map" in det.meta
    retrain = det.meta["retrain"]  # the resumed run's schedule, retold so that the commands rebuild it
    assert "-o optim.epochs=1" in retrain and retrain.count("--resume -o optim.epochs=2") == 1
    dets = det.detect(np.full((100, 150, 3), 90, np.uint8))
    assert all(0.0 <= d.score <= 1.0 for d in dets)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
