"""The torch-free runtime against the ONNX contract, with tiny models built by onnx.helper (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepoints import inference, model_files
from facepoints.detectors import BoxMaps, FaceDetector
from facepoints.inference import (
    Face,
    ImageError,
    LandmarkModel,
    ModelError,
    ModelNotFoundError,
    as_rgb,
    available_models,
    load,
    read_image,
)
from facepoints.schemes import convert_points, load_scheme

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
K = 68
SIZE = 32
CONTEXT = 1.25


def toy_points(seed: int = 0) -> np.ndarray:
    """Normalised base points: 0 -> crop centre, 1 -> crop corner (0, 0), 2 -> (1, 1), 3 far outside."""
    base = np.random.default_rng(seed).uniform(0.2, 0.8, (K, 2))
    base[0], base[1], base[2], base[3] = (0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (-1.0, 2.0)
    return base


def make_model(
    folder: Path,
    name: str = "toy",
    *,
    channels: int = 3,
    size: int = SIZE,
    base: np.ndarray | None = None,
    slope: float = 0.0,
    batch: int | str = "batch",
    output_names: tuple[str, str] = ("points", "scores"),
    sidecar: dict | None = None,
) -> Path:
    """A model whose points are ``base + slope * mean(crop)`` and whose scores are ``mean(crop)``.

    The output depends on each face's own pixels, so a batch mixed up or
    misordered shows; with a black image (or slope 0) the points are ``base``
    exactly, so the mapping back to the image can be checked to the pixel.
    """
    base = toy_points() if base is None else base
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape3"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "slope"], ["shift"]),
        helper.make_node("Add", ["base", "shift"], [output_names[0]]),
        helper.make_node("Reshape", ["mean4", "shape2"], ["mean2"]),
        helper.make_node("Mul", ["mean2", "ones"], [output_names[1]]),
    ]
    inits = [
        helper.make_tensor("shape3", TensorProto.INT64, [3], [-1, 1, 1]),
        helper.make_tensor("shape2", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("slope", TensorProto.FLOAT, [1, K, 2], np.full(K * 2, slope, np.float32)),
        helper.make_tensor("base", TensorProto.FLOAT, [1, K, 2], base.astype(np.float32).ravel()),
        helper.make_tensor("ones", TensorProto.FLOAT, [1, K], np.ones(K, np.float32)),
    ]
    graph = helper.make_graph(
        nodes, "toy", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info(output_names[0], TensorProto.FLOAT, [batch, K, 2]),
         helper.make_tensor_value_info(output_names[1], TensorProto.FLOAT, [batch, K])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    meta = {
        "name": name, "model": "toy", "scheme": load_scheme("ibug68").to_dict(), "input_size": size,
        "channels": channels, "context": CONTEXT, "provenance": "built in tests", "licence": "none", "metrics": {},
    }
    path.with_suffix(".json").write_text(json.dumps(meta if sidecar is None else sidecar), encoding="utf-8")
    return path


class CountingSession:
    """Wraps an onnxruntime session to count ``run`` calls and batch sizes."""

    def __init__(self, session) -> None:
        self.session, self.batches = session, []

    def run(self, names, feeds):
        self.batches.append(len(feeds["image"]))
        return self.session.run(names, feeds)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def sloped(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("models"), slope=0.3)


def textured(h: int = 200, w: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h // 10 + 1, w // 10 + 1, 3), dtype=np.uint8)
    return np.kron(img, np.ones((10, 10, 1), np.uint8))[:h, :w].copy()


# ---------------------------------------------------------------- mapping back to the image


def test_points_map_back_to_the_image_exactly(toy: Path) -> None:
    model = load(toy)
    assert (model.input_size, model.channels, model.context, model.scheme.num_points) == (SIZE, 3, CONTEXT, K)
    image = np.zeros((200, 300, 3), np.uint8)
    box = np.array([50.0, 40.0, 130.0, 100.0])  # not square: the crop is square around its centre
    pts = model.landmarks(image, box[None])
    assert pts.shape == (1, K, 2)
    cx, cy, side = 90.0, 70.0, 80.0 * CONTEXT
    assert np.allclose(pts[0, 0], [cx, cy], atol=1e-3)  # (0.5, 0.5) -> box centre
    assert np.allclose(pts[0, 1], [cx - side / 2, cy - side / 2], atol=1e-3)  # (0, 0) -> crop's outer corner
    assert np.allclose(pts[0, 2], [cx + side / 2, cy + side / 2], atol=1e-3)  # (1, 1) -> opposite corner
    expected = np.stack([cx - side / 2 + toy_points()[:, 0] * side, cy - side / 2 + toy_points()[:, 1] * side], 1)
    assert np.allclose(pts[0, 4:], expected[4:], atol=1e-3)


def test_points_are_clipped_to_the_image(toy: Path) -> None:
    model = load(toy)
    image = np.zeros((200, 300, 3), np.uint8)
    pts = model.landmarks(image, np.array([[250.0, 150.0, 299.0, 199.0]]))  # box at the bottom-right corner
    assert pts[..., 0].min() >= -0.5 and pts[..., 0].max() <= 299.5
    assert pts[..., 1].min() >= -0.5 and pts[..., 1].max() <= 199.5
    far = model.landmarks(image, np.array([[50.0, 40.0, 130.0, 100.0]]))[0, 3]  # (-1, 2) normalised
    assert np.allclose(far, [-0.5, 199.5])
    corner = model.landmarks(image, np.array([[250.0, 150.0, 299.0, 199.0]]))[0, 2]  # (1, 1) beyond the corner
    assert np.allclose(corner, [299.5, 199.5])


def test_scores_come_from_the_model(toy: Path) -> None:
    model = load(toy)
    grey = np.full((100, 100, 3), 51, np.uint8)
    _, scores = model.landmarks_with_scores(grey, [[20, 20, 80, 80]])
    assert scores.shape == (1, K) and np.allclose(scores, 0.2, atol=1e-6)


# ---------------------------------------------------------------- batching


def test_a_batch_is_one_run_and_equals_per_face_runs(sloped: Path) -> None:
    model = load(sloped)
    model._session = counter = CountingSession(model._session)
    image = textured()
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 220, (7, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (7, 1))], axis=1)
    pts, scores = model.landmarks_with_scores(image, boxes)
    assert counter.batches == [7]
    singles = [model.landmarks_with_scores(image, b[None]) for b in boxes]
    assert np.allclose(pts, np.concatenate([p for p, _ in singles]), atol=1e-4)
    assert np.allclose(scores, np.concatenate([s for _, s in singles]), atol=1e-6)
    assert np.ptp(scores[:, 0]) > 0.01  # faces differ, so an order mix-up would show
    model.batch_size = 3
    counter.batches.clear()
    assert np.allclose(model.landmarks(image, boxes), pts, atol=1e-4)
    assert counter.batches == [3, 3, 1]


def test_a_model_with_a_fixed_batch_size_gets_padded_batches(tmp_path: Path, sloped: Path) -> None:
    fixed = load(make_model(tmp_path, "fixed4", slope=0.3, batch=4))
    fixed._session = counter = CountingSession(fixed._session)
    image = textured()
    boxes = np.array([[10, 10, 60, 60], [100, 20, 180, 100], [200, 100, 260, 190], [0, 0, 300, 200],
                      [50, 50, 90, 90.0]])
    assert np.allclose(fixed.landmarks(image, boxes), load(sloped).landmarks(image, boxes), atol=1e-4)
    assert counter.batches == [4, 4]


def test_no_boxes_give_empty_arrays(toy: Path) -> None:
    model = load(toy)
    image = np.zeros((50, 50, 3), np.uint8)
    pts, scores = model.landmarks_with_scores(image, np.zeros((0, 4)))
    assert pts.shape == (0, K, 2) and scores.shape == (0, K)
    assert model.landmarks(image, []).shape == (0, K, 2)
    with pytest.raises(ValueError, match="N, 4"):
        model.landmarks(image, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        model.landmarks(image, [[0, 0, np.nan, 10]])


# ---------------------------------------------------------------- image inputs


def test_greyscale_and_single_channel_models(tmp_path: Path, sloped: Path) -> None:
    rgb = textured()
    grey = rgb[..., 0].copy()
    box = [[40, 30, 160, 150]]
    three = load(sloped)
    assert np.allclose(three.landmarks(grey, box), three.landmarks(np.stack([grey] * 3, -1), box))
    one = load(make_model(tmp_path, "grey", channels=1, slope=0.3))
    assert one.landmarks(rgb, box).shape == (1, K, 2)
    assert one.landmarks(grey, box).shape == (1, K, 2)


def test_array_conversions() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert as_rgb(grey).shape == (3, 4, 3) and (as_rgb(grey)[..., 2] == grey).all()
    assert (as_rgb(grey[..., None]) == as_rgb(grey)).all()
    assert (as_rgb(grey.astype(np.uint16) * 257) == as_rgb(grey)).all()
    assert (as_rgb(grey / 255.0) == as_rgb(grey)).all()
    rgba = np.dstack([as_rgb(grey), np.zeros((3, 4), np.uint8)])
    assert (as_rgb(rgba) == as_rgb(grey)).all()
    for bad in (np.zeros((3, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8), np.zeros(5, np.uint8)):
        with pytest.raises(ImageError):
            as_rgb(bad)


def photo(h: int = 40, w: int = 60) -> Image.Image:
    """A JPEG-friendly picture with no symmetry, so any wrong rotation shows."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // w, y * 255 // h, np.where(x < w // 3, 255, 0)], -1).astype(np.uint8)
    return Image.fromarray(arr)


@pytest.mark.parametrize(("orientation", "k"), [(6, -1), (8, 1), (3, 2), (1, 0)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, k: int, toy: Path) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo().save(path, quality=95, exif=exif)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"))  # the pixels as stored, no transposition
    upright = read_image(path)
    assert upright.dtype == np.uint8
    assert np.array_equal(upright, np.rot90(stored, k=k))
    assert upright.shape[:2] == ((60, 40) if orientation in (6, 8) else (40, 60))
    model = load(toy)
    box = [[5, 5, 30, 35]]
    assert np.allclose(model.landmarks(path, box), model.landmarks(upright, box))
    assert np.allclose(model.landmarks(str(path), box), model.landmarks(upright, box))


def test_unusual_image_files(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent: shown on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (4, 4, 3) and tuple(out[0, 0]) == (200, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(tmp_path / "b.png")  # 16-bit greyscale
    assert read_image(tmp_path / "b.png").dtype == np.uint8
    assert (read_image(tmp_path / "b.png") == round(1000 / 257)).all()
    Image.fromarray(np.full((4, 4), 77, np.uint8), "L").save(tmp_path / "c.png")
    assert (read_image(tmp_path / "c.png") == 77).all() and read_image(tmp_path / "c.png").shape == (4, 4, 3)
    photo().convert("CMYK").save(tmp_path / "d.jpg")
    assert read_image(tmp_path / "d.jpg").shape == (40, 60, 3)


def test_unreadable_files_raise_image_error_with_path_and_reason(tmp_path: Path, toy: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n", encoding="utf-8")
    photo(200, 300).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    for name in ("notes.jpg", "cut.jpg", "empty.png", "missing.jpg", "folder.jpg"):
        with pytest.raises(ImageError, match="cannot read image") as err:
            read_image(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    assert "truncated" in str(pytest.raises(ImageError, read_image, tmp_path / "cut.jpg").value)
    assert issubclass(ImageError, ValueError)
    with pytest.raises(ImageError):
        load(toy).detect(tmp_path / "cut.jpg")


# ---------------------------------------------------------------- loading models


def test_load_by_name_path_and_default(tmp_path: Path, monkeypatch) -> None:
    models = tmp_path / "models"
    make_model(models, "toy")
    monkeypatch.setattr(model_files, "model_dir", lambda: models)
    assert available_models() == ["toy"]
    assert load("toy").meta["name"] == "toy"
    assert load(models / "toy.onnx").path == models / "toy.onnx"
    assert load(str(models / "toy.onnx"), threads=1).scheme.name == "ibug68"
    for ref in ("nope", None, tmp_path / "nope.onnx", "other/nope.onnx"):
        with pytest.raises(ModelNotFoundError, match="available models: toy"):
            load(ref)
    make_model(models, "default")
    assert load().meta["name"] == "default"
    assert available_models() == ["default", "toy"]


def test_the_face_finders_ship_beside_the_landmark_models_but_are_not_offered_as_one() -> None:
    shipped = {p.stem for p in inference.model_dir().glob("*.onnx")}
    assert {"detector", "verifier", "default"} <= shipped
    assert "default" in available_models() and not {"detector", "verifier"} & set(available_models())


def test_shipped_default_model_puts_the_features_where_they_are() -> None:
    """On the sample portrait: eyes in the upper half of the face box, left of right, mouth below the nose."""
    from facepoints.cli import sample_image_path

    model = load()
    faces = model.detect(sample_image_path())
    assert len(faces) == 1
    f = faces[0]
    x0, y0, x1, y1 = f.box
    eyes = f.points[36:48].reshape(2, 6, 2).mean(axis=1)  # image-left eye, image-right eye
    mid = (y0 + y1) / 2
    assert (eyes[:, 1] < mid).all() and eyes[0, 0] < (x0 + x1) / 2 < eyes[1, 0]
    assert f.points[30, 1] < f.points[48:68, 1].mean() < y1  # nose tip above the mouth, mouth inside the box
    assert np.linalg.norm(eyes[0] - eyes[1]) > 0.3 * (x1 - x0)


def test_broken_models_fail_at_load_with_the_reason(tmp_path: Path) -> None:
    path = make_model(tmp_path, "nosidecar")
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="no sidecar"):
        LandmarkModel(path)
    with pytest.raises(ModelError, match="lacks"):
        LandmarkModel(make_model(tmp_path, "partial", sidecar={"name": "partial", "input_size": SIZE}))
    with pytest.raises(ModelError, match="contract"):
        LandmarkModel(make_model(tmp_path, "renamed", output_names=("landmarks", "conf")))
    wrong = make_model(tmp_path, "wrongsize", size=24)
    meta = json.loads(wrong.with_suffix(".json").read_text())
    wrong.with_suffix(".json").write_text(json.dumps({**meta, "input_size": SIZE}))
    with pytest.raises(ModelError, match="sidecar says"):
        LandmarkModel(wrong)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "junk.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cannot load"):
        LandmarkModel(tmp_path / "junk.onnx")


# ---------------------------------------------------------------- whole pipeline


def test_detect_runs_detector_box_map_and_landmarks(real_data: Path, toy: Path, tmp_path: Path) -> None:
    from tests.test_detect import COMPOSITE_FACES, composite, youtube_test_faces

    image, truths = composite(youtube_test_faces(real_data, COMPOSITE_FACES))
    model = load(toy, detector=FaceDetector(), refine=0)
    faces = model.detect(image)
    assert len(faces) == len(truths) and all(isinstance(f, Face) for f in faces)
    dets = FaceDetector().detect(image)
    boxes = BoxMaps.load().apply(dets)
    for face, det, box in zip(faces, dets, boxes):
        assert np.allclose(face.box, box) and face.detection_score == det.score
        assert face.points.shape == (K, 2) and face.scores.shape == (K,)
        assert np.allclose(face.points[0], [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], atol=1e-3)
    assert model.detect(np.full((120, 160), 128, np.uint8)) == []

    # refinement re-crops around the tight box of the previous pass's points (upright=False: not turned by the
    # roll of the points; test_detect checks the turned crops on real faces)
    inside = make_model(tmp_path, "inside", base=np.random.default_rng(5).uniform(0.2, 0.8, (K, 2)), slope=0.3)
    once = load(inside, refine=0, upright=False).detect(image)
    twice = load(inside, refine=1, upright=False, refine_tol=0).detect(image)
    for a, b in zip(once, twice):
        tight = np.concatenate([a.points.min(axis=0), a.points.max(axis=0)])
        assert np.allclose(b.box, tight, atol=1e-6)
        assert np.allclose(b.points, load(inside).landmarks(image, tight[None])[0], atol=1e-4)


def test_runtime_never_imports_torch() -> None:
    code = "import sys, facepoints.inference, facepoints.detectors; sys.exit('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr or "facepoints.inference imported torch"


# ---------------------------------------------------------------- sharing, boxes, records, checkpoints


NONSENSE_BOXES = {
    "huge": ([-1e308, -1e308, 1e308, 1e308], "more than 8 times"),
    "inverted": ([50, 50, 10, 10], "empty or inverted"),
    "zero-size": ([20, 20, 20, 40], "empty or inverted"),
    "outside": ([500, 500, 600, 600], "wholly outside"),
    "not finite": ([0, 0, np.nan, 10], "not finite"),
    "complex": ([1 + 2j, 0, 10, 10], "complex"),
}


@pytest.mark.parametrize("name", NONSENSE_BOXES)
def test_landmarks_refuse_nonsense_boxes_naming_the_box(toy: Path, name: str) -> None:
    box, why = NONSENSE_BOXES[name]
    model = load(toy)
    image = textured()
    with pytest.raises(ValueError, match=why) as info:
        model.landmarks(image, [[10, 10, 60, 60], box])
    assert name == "complex" or "box 1 [" in str(info.value)
    assert model.landmarks(image, [[-20, -20, 40, 40]]).shape == (1, K, 2)  # cut by the frame: still a face


def test_a_face_record_is_one_dict_in_any_scheme(toy: Path) -> None:
    from facepoints.apps.record import face_record

    model = load(toy)
    pts, scores = model.landmarks_with_scores(textured(), [[20, 30, 120, 150]])
    face = Face(np.array([20.0, 30, 120, 150]), pts[0], scores[0], float("nan"), model.scheme)
    rec = face.to_dict()
    assert list(rec) == ["box", "detection_score", "points", "scores", "face_score", "doubtful"]
    assert rec["detection_score"] is None and rec["face_score"] is None and rec["doubtful"] is False
    assert len(rec["points"]) == K and rec["points"][0] == [round(float(v), 2) for v in pts[0, 0]]
    five = face.to_dict("five")
    expected, _ = convert_points(pts[0], None, "ibug68", "five")
    assert np.allclose(five["points"], expected, atol=0.01)
    groups = load_scheme("five").derive["ibug68"]
    assert five["scores"] == [round(float(scores[0][list(g)].min()), 4) for g in groups]
    full = face_record(face, (300, 200), model.scheme, "five")
    assert {"yaw", "pitch", "roll"} <= full["pose"].keys() and "smile_width" in full["expression"]
    assert full["points"] == five["points"]


@pytest.mark.parametrize("name", ["seed_baseline"])
def test_load_any_runs_a_checkpoint_like_its_export(name: str, tmp_path: Path) -> None:
    import torch

    from facepoints.cli import sample_image_path
    from facepoints.inference import load_any

    payload = torch.load(ROOT / "checkpoints" / f"{name}.pt", map_location="cpu", weights_only=True)
    ck = tmp_path / f"{name}.pt"  # as today's training writes it (the shipped file predates "conventions")
    torch.save({"conventions": [], **payload}, ck)

    torch_model, onnx_model = load_any(ck), load_any(name)
    assert type(torch_model).__name__ == "CheckpointModel" and isinstance(torch_model, LandmarkModel)
    assert torch_model.scheme == onnx_model.scheme and torch_model.input_size == onnx_model.input_size
    photo = read_image(sample_image_path())
    boxes = [[180, 90, 268, 172], [100, 60, 300, 260]]
    assert np.abs(torch_model.landmarks(photo, boxes) - onnx_model.landmarks(photo, boxes)).max() < 1e-3
    (a,), (b,) = torch_model.detect(photo), onnx_model.detect(photo)
    assert np.abs(a.points - b.points).max() < 1e-2
