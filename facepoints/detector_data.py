"""Training scenes for the face detector, composed from landmark datasets and faceless photos.

The landmark sets hold one annotated face per photo, and their boxes follow
from the 68 points (the tight box, the landmark model's convention; after a
roll it is the tight box of the rolled points, so the detector learns the box
the landmark model wants). Scenes are built by pasting face photos, whole or
cropped around the face, at many sizes, positions and rolls onto faceless
backgrounds, then degrading the result (light, blur, noise, JPEG). Other
people in a source photo have no points: OpenCV's Haar cascades (frontal and
profile, lenient) mark them as ignore regions in photos that show bystanders
(HELEN); one-person video frames (YouTube-Faces) are instead pasted tightly
around the face, which crops a rare bystander away. Either way no face is
taught as background. Nothing here imports torch or a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facepoints.datasets import Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Package sample images that show people, faces or face-like heads: never negatives.
NEGATIVE_EXCLUDE = ("messi", "basketball", "suzanne", "lena", "vtest", "ela_", "people", "face", "portrait")


@dataclass
class FacePhoto:
    """One training photo: its annotated faces (68 points each) and regions to ignore (unlabelled faces)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    faces: list[np.ndarray]  # (68, 2) float points per annotated face
    ignore: np.ndarray  # (M, 4) boxes of unannotated faces
    group: str = ""
    max_context: float = 1e9  # photos not searched for other faces are only pasted this tightly around the face


@dataclass
class SceneConfig:
    """How training scenes are composed; see ``compose_scene``."""

    size: int = 320  # square canvas side
    mosaic_p: float = 0.0  # a k x k mosaic of photo crops that fill their cells: faces without paste edges
    mosaic_k: tuple[float, ...] = (0.35, 0.3, 0.2, 0.15)  # chance of k = 1, 2, 3, 4 cells per side
    fill_context: tuple[float, float] = (1.2, 2.0)  # a cell shows this x the face box around the face
    negative_cell_p: float = 0.15
    # A cell showing any part of a searched photo (hands, clothes, hair, a face cut by the cell): people
    # without a face are what a detector trained on faces and wallpapers mistakes for faces.
    photo_cell_p: float = 0.0
    single_p: float = 0.35  # one large photo (portrait-like scene) instead of several small pastes
    max_pastes: int = 8
    min_face: float = 9.0  # tight-box side in canvas pixels
    max_face: float = 300.0
    small_max_face: float = 110.0  # upper size of faces in multi-paste scenes
    roll_p: float = 0.6  # share of faces rolled uniformly within +-max_roll; the rest near upright
    max_roll: float = 60.0
    context: tuple[float, float] = (1.25, 3.2)  # crop side around a face, times its box side
    flip_p: float = 0.5
    feather: tuple[float, float] = (0.02, 0.12)  # edge softness, share of the paste's side
    min_visible: float = 0.6  # a face cut by the canvas edge is a target if this share of its box is inside
    tiny: float = 7.0  # faces smaller than this (pixels) are ignored, not targets
    photometric_p: float = 0.8
    dark_p: float = 0.15
    blur_p: float = 0.2
    noise_p: float = 0.2
    jpeg_p: float = 0.3
    grey_p: float = 0.1


# ---------------------------------------------------------------- sources


def haar_ignore_boxes(image: np.ndarray, face_boxes: Sequence[np.ndarray],
                      cascades: Sequence[cv2.CascadeClassifier]) -> np.ndarray:
    """Haar detections that are not an annotated face: other people, to be ignored in training."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    found = []
    for i, clf in enumerate(cascades):
        for mirrored in (False, True) if i else (False,):
            img = np.ascontiguousarray(grey[:, ::-1]) if mirrored else grey
            for x, y, w, h in np.asarray(clf.detectMultiScale(img, 1.15, 3, minSize=(20, 20))).reshape(-1, 4):
                x = grey.shape[1] - x - w if mirrored else x
                found.append([x - 0.1 * w, y - 0.1 * h, x + 1.1 * w, y + 1.2 * h])
    out = []
    for b in found:
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        inside = any(f[0] - 0.25 * (f[2] - f[0]) <= cx <= f[2] + 0.25 * (f[2] - f[0])
                     and f[1] - 0.25 * (f[3] - f[1]) <= cy <= f[3] + 0.25 * (f[3] - f[1]) for f in face_boxes)
        if not inside:
            out.append(b)
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def _cascades() -> list[cv2.CascadeClassifier]:
    base = Path(cv2.data.haarcascades)
    return [cv2.CascadeClassifier(str(base / n)) for n in ("haarcascade_frontalface_alt2.xml",
                                                            "haarcascade_profileface.xml")]


def photos_from_samples(samples: Sequence[Sample], cache: Path | None = None, search: bool = True,
                        max_context: float = 2.0) -> list[FacePhoto]:
    """Landmark samples -> FacePhotos with Haar ignore regions (cached as JSON: they take minutes).

    ``search=False`` skips the search (for sets of one person per frame, like
    YouTube-Faces) and instead pastes only ``max_context`` x the face box
    around the face, which crops the rare bystander away.
    """
    key = hashlib.sha1("|".join(s.source for s in samples).encode()).hexdigest()[:12]
    cached: dict[str, list] = {}
    path = cache / f"ignore_{key}.json" if cache is not None else None
    if path is not None and path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
    cascades = None
    photos = []
    for s in samples:
        pts = s.points[s.mask].astype(np.float64)
        if len(pts) < 60:
            continue
        if not search:
            photos.append(FacePhoto(s.image, [np.asarray(s.points, dtype=np.float64)], np.zeros((0, 4)),
                                    s.group or s.source, max_context))
            continue
        if s.source not in cached:
            cascades = cascades or _cascades()
            box = np.concatenate([pts.min(0), pts.max(0)])
            cached[s.source] = haar_ignore_boxes(s.image, [box], cascades).round(1).tolist()
        faces = [np.asarray(s.points, dtype=np.float64)]
        photos.append(FacePhoto(s.image, faces, np.array(cached[s.source]).reshape(-1, 4), s.group or s.source))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cached), encoding="utf-8")
    return photos


def load_negatives(folders: Sequence[str | Path], max_side: int = 800) -> list[np.ndarray]:
    """Faceless photos (RGB, shrunk to ``max_side``) from folders such as /usr/share/backgrounds."""
    out = []
    for folder in folders:
        root = Path(folder)
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else []
        for p in files:
            if any(x in p.name.lower() for x in NEGATIVE_EXCLUDE):
                continue
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None or min(img.shape[:2]) < 64:
                continue
            s = min(1.0, max_side / max(img.shape[:2]))
            if s < 1:
                img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    if not out:
        raise FileNotFoundError(
            f"no negative photos found in {list(map(str, folders))}; install e.g. "
            "'apt-get install gnome-backgrounds mate-backgrounds opencv-doc' or set data.negatives")
    return out


# ---------------------------------------------------------------- composition


@dataclass
class Scene:
    image: np.ndarray  # (S, S, 3) uint8 RGB
    boxes: np.ndarray  # (N, 4) tight boxes of target faces
    ignore: np.ndarray  # (M, 4) regions neither positive nor negative
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2)))  # (N, 5, 2) five_points per box
    _protected: list[np.ndarray] = field(default_factory=list, repr=False)


FIVE_POINTS = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))


def five_points(points68: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """(68, 2) -> (5, 2): eye centres, nose tip, mouth corners, as YuNet's head predicts them; the eye and mouth
    corner on the image's left first in an unmirrored face, so a mirrored one swaps them back. NaN if unknown."""
    five = np.array([points68[list(i)].mean(axis=0) for i in FIVE_POINTS])
    return five[[1, 0, 2, 4, 3]] if mirrored else five


def _background(negatives: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    img = negatives[rng.integers(len(negatives))]
    h, w = img.shape[:2]
    side = rng.uniform(0.15, 1.0) * min(h, w)
    x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    m = np.array([[size / side, 0, -x0 * size / side], [0, size / side, -y0 * size / side]])
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(np.rot90(out, rng.integers(4)))


def _affine(center: np.ndarray, roll: float, scale: float, dest: np.ndarray, flip: bool) -> np.ndarray:
    m = cv2.getRotationMatrix2D((0.0, 0.0), roll, scale)
    if flip:
        m[:, 0] *= -1
    m[:, 2] = dest - m[:, :2] @ center
    return m


def _transform(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def _box_corners(b: np.ndarray) -> np.ndarray:
    return np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]])


def _aabb(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(0), points.max(0)])


def _intersects(a: np.ndarray, others: Sequence[np.ndarray]) -> bool:
    return any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for b in others)


def _paste(scene: Scene, photo: FacePhoto, face_side: float, cfg: SceneConfig, rng: np.random.Generator,
           context: float, center: np.ndarray) -> bool:
    """Paste the photo's region around its first face so that face has side ``face_side``; False if no room."""
    pts = photo.faces[0]
    fb = _aabb(pts[np.isfinite(pts).all(1)])
    side = max(fb[2] - fb[0], fb[3] - fb[1], 1.0)
    fc = (fb[:2] + fb[2:]) / 2
    h, w = photo.image.shape[:2]
    half = min(context, photo.max_context) * side / 2
    region = np.array([max(0, fc[0] - half), max(0, fc[1] - half), min(w, fc[0] + half), min(h, fc[1] + half)])
    roll = rng.uniform(-cfg.max_roll, cfg.max_roll) if rng.random() < cfg.roll_p else rng.normal(0, 6)
    m = _affine(fc, roll, face_side / side, center, rng.random() < cfg.flip_p)
    footprint = _aabb(_transform(_box_corners(region), m))
    if _intersects(footprint, scene._protected):
        return False
    src = photo.image[int(region[1]):int(np.ceil(region[3])), int(region[0]):int(np.ceil(region[2]))]
    m_src = m.copy()
    m_src[:, 2] += m[:, :2] @ np.array([int(region[0]), int(region[1])])
    roi = _scene_roi(footprint, cfg.size)
    feather = max(1, int(rng.uniform(*cfg.feather) * min(src.shape[:2])))  # drawn even off-scene: same stream
    if roi is not None:
        alpha = feathered_alpha(*src.shape[:2], feather)
        warped = _warp_into(src, m_src, roi, cv2.BORDER_CONSTANT)
        a = _warp_into(alpha, m_src, roi, cv2.BORDER_CONSTANT)[..., None]
        x0, y0, x1, y1 = roi
        scene.image[y0:y1, x0:x1] = (warped * a + scene.image[y0:y1, x0:x1] * (1 - a)).astype(np.uint8)
    _add_labels(scene, photo, m, region, cfg)
    return True


def feathered_alpha(height: int, width: int, feather: int) -> np.ndarray:
    """A paste's opacity: 1 inside, 0 in a ``feather``-pixel frame, the edge blurred by a Gaussian.

    The blur of a rectangle is the product of the blurs of its two sides, so
    two 1-D blurs replace a 2-D one whose kernel spans up to a quarter of a
    large photo.
    """
    def side(n: int) -> np.ndarray:
        r = np.zeros((1, n), np.float32)
        r[0, feather:-feather or None] = 1.0
        return cv2.GaussianBlur(r, (0, 0), feather / 2 + 0.1)[0] if feather > 1 else r[0]

    return np.outer(side(height), side(width))


def _scene_roi(footprint: np.ndarray, size: int) -> tuple[int, int, int, int] | None:
    """The pixels of a size x size scene that a paste with this footprint can touch; None if it misses the scene."""
    x0, y0 = (max(0, int(np.floor(v)) - 1) for v in footprint[:2])
    x1, y1 = (min(size, int(np.ceil(v)) + 2) for v in footprint[2:])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _warp_into(src: np.ndarray, m: np.ndarray, roi: tuple[int, int, int, int], border: int) -> np.ndarray:
    """``cv2.warpAffine(src, m)`` cut to ``roi`` of the output, computing only those pixels: a mosaic cell or a
    small paste is a fraction of the scene, and warping whole scenes was most of the composition time."""
    x0, y0, x1, y1 = roi
    shifted = m.copy()
    shifted[:, 2] -= (x0, y0)
    return cv2.warpAffine(src, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=border)


def _add_labels(scene: Scene, photo: FacePhoto, m: np.ndarray, region: np.ndarray, cfg: SceneConfig,
                canvas: np.ndarray | None = None) -> None:
    """Targets for the photo's faces that show well inside ``canvas`` (the scene or a mosaic cell), else ignores."""
    if canvas is None:
        canvas = np.array([0, 0, cfg.size - 1, cfg.size - 1], dtype=np.float64)
    boxes, ignore, five = list(scene.boxes), list(scene.ignore), list(scene.points)
    mirrored = bool(np.linalg.det(m[:, :2]) < 0)
    for pts in photo.faces:
        valid = pts[np.isfinite(pts).all(1)]
        inside = ((valid >= region[:2]) & (valid <= region[2:])).all(1).mean()
        box = _aabb(_transform(valid, m))
        vis = _visible_share(box, canvas) * inside
        side = max(box[2] - box[0], box[3] - box[1])
        if vis >= cfg.min_visible and side >= cfg.tiny and inside > 0.95:
            boxes.append(box)
            five.append(five_points(_transform(pts, m), mirrored) if len(pts) == 68 else np.full((5, 2), np.nan))
        elif vis > 0.05:
            ignore.append(np.concatenate([np.maximum(box[:2], canvas[:2]), np.minimum(box[2:], canvas[2:])]))
        scene._protected.append(box)
    for b in photo.ignore:
        box = _aabb(_transform(_box_corners(b), m))
        if _visible_share(box, canvas) > 0:
            ignore.append(box)
            scene._protected.append(box)
    scene.boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    scene.ignore = np.array(ignore, dtype=np.float64).reshape(-1, 4)
    scene.points = np.array(five, dtype=np.float64).reshape(-1, 5, 2)


def _visible_share(box: np.ndarray, canvas: np.ndarray) -> float:
    ix = max(0.0, min(box[2], canvas[2]) - max(box[0], canvas[0]))
    iy = max(0.0, min(box[3], canvas[3]) - max(box[1], canvas[1]))
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    return float(ix * iy / area)


def _fill_cell(scene: Scene, photo: FacePhoto, cell: np.ndarray, cfg: SceneConfig, rng: np.random.Generator) -> None:
    """Fill a square cell with the photo around its face (rolled, maybe mirrored): no paste edge near the face."""
    pts = photo.faces[0]
    fb = _aabb(pts[np.isfinite(pts).all(1)])
    side = max(fb[2] - fb[0], fb[3] - fb[1], 1.0)
    cell_side = cell[2] - cell[0]
    ctx = min(rng.uniform(*cfg.fill_context), photo.max_context)
    face = cell_side / ctx
    roll = rng.uniform(-cfg.max_roll, cfg.max_roll) if rng.random() < cfg.roll_p else rng.normal(0, 6)
    slack = max(0.0, (cell_side - face * 1.1) / 2)
    dest = (cell[:2] + cell[2:]) / 2 + rng.uniform(-slack, slack, size=2) * 0.7
    m = _affine((fb[:2] + fb[2:]) / 2, roll, face / side, dest, rng.random() < cfg.flip_p)
    x0, y0, x1, y1 = (int(round(v)) for v in cell)
    scene.image[y0:y1, x0:x1] = _warp_into(photo.image, m, (x0, y0, x1, y1), cv2.BORDER_REFLECT101)
    h, w = photo.image.shape[:2]
    _add_labels(scene, photo, m, np.array([0.0, 0.0, w - 1.0, h - 1.0]), cfg,
                np.array([x0, y0, x1 - 1, y1 - 1], dtype=np.float64))


def _photo_cell(scene: Scene, photo: FacePhoto, cell: np.ndarray, cfg: SceneConfig,
                rng: np.random.Generator) -> None:
    """Fill a cell with a random square of a photo whose faces are all known (annotated or ignored)."""
    h, w = photo.image.shape[:2]
    side = rng.uniform(0.25, 1.0) * min(h, w)
    x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    cell_side = cell[2] - cell[0]
    m = _affine(np.array([x0 + side / 2, y0 + side / 2]), rng.normal(0, 10), cell_side / side,
                (cell[:2] + cell[2:]) / 2, rng.random() < cfg.flip_p)
    cx0, cy0, cx1, cy1 = (int(round(v)) for v in cell)
    scene.image[cy0:cy1, cx0:cx1] = _warp_into(photo.image, m, (cx0, cy0, cx1, cy1), cv2.BORDER_REFLECT101)
    _add_labels(scene, photo, m, np.array([0.0, 0.0, w - 1.0, h - 1.0]), cfg,
                np.array([cx0, cy0, cx1 - 1, cy1 - 1], dtype=np.float64))


def searched_photos(photos: Sequence[FacePhoto]) -> list[FacePhoto]:
    """The photos whose every face is known (annotated or ignored): only these may fill a cell at random."""
    return [p for p in photos if p.max_context > 100]


def compose_mosaic(photos: Sequence[FacePhoto], negatives: Sequence[np.ndarray], cfg: SceneConfig,
                   rng: np.random.Generator, searched: Sequence[FacePhoto] | None = None) -> Scene:
    """k x k cells, each a photo crop that fills it (or a faceless crop): faces in their own context.
    ``searched`` is ``searched_photos(photos)``, passed in by callers that compose many scenes."""
    size = cfg.size
    k = int(rng.choice(len(cfg.mosaic_k), p=np.asarray(cfg.mosaic_k) / sum(cfg.mosaic_k))) + 1
    scene = Scene(np.zeros((size, size, 3), np.uint8), np.zeros((0, 4)), np.zeros((0, 4)))
    edges = np.linspace(0, size, k + 1).round()
    if cfg.photo_cell_p <= 0:
        searched = []
    elif searched is None:
        searched = searched_photos(photos)
    for i in range(k):
        for j in range(k):
            cell = np.array([edges[j], edges[i], edges[j + 1], edges[i + 1]])
            u = rng.random()
            if u < cfg.negative_cell_p:
                x0, y0, x1, y1 = (int(v) for v in cell)
                scene.image[y0:y1, x0:x1] = _background(negatives, max(x1 - x0, y1 - y0), rng)[:y1 - y0, :x1 - x0]
            elif u < cfg.negative_cell_p + cfg.photo_cell_p and searched:
                _photo_cell(scene, searched[rng.integers(len(searched))], cell, cfg, rng)
            else:
                _fill_cell(scene, photos[rng.integers(len(photos))], cell, cfg, rng)
    scene.image = photometric(scene.image, cfg, rng)
    return scene


def compose_scene(photos: Sequence[FacePhoto], negatives: Sequence[np.ndarray], cfg: SceneConfig,
                  rng: np.random.Generator, searched: Sequence[FacePhoto] | None = None) -> Scene:
    """One training scene: a mosaic of filled cells, or a faceless background with pasted faces."""
    if rng.random() < cfg.mosaic_p:
        return compose_mosaic(photos, negatives, cfg, rng, searched)
    size = cfg.size
    scene = Scene(_background(negatives, size, rng).copy(), np.zeros((0, 4)), np.zeros((0, 4)))
    single = rng.random() < cfg.single_p
    n = 1 if single else int(rng.integers(0, cfg.max_pastes + 1))
    hi = cfg.max_face if single else cfg.small_max_face
    for _ in range(n):
        for _attempt in range(4):
            face = float(np.exp(rng.uniform(np.log(cfg.min_face), np.log(hi))))
            ctx = rng.uniform(*cfg.context) * (rng.uniform(1.0, 2.0) if single else 1.0)
            margin = face * 0.3
            center = rng.uniform(-margin, size + margin, size=2)
            photo = photos[rng.integers(len(photos))]
            if _paste(scene, photo, face, cfg, rng, ctx, center):
                break
    scene.image = photometric(scene.image, cfg, rng)
    return scene


def photometric(img: np.ndarray, cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Light, colour, blur, noise and compression: what phone and web photos do to faces."""
    out = img.astype(np.float32)  # float32 throughout: float64 doubled the time of every step below
    if rng.random() < cfg.photometric_p:
        gain, bias = rng.uniform(0.6, 1.4), rng.uniform(-35, 35)
        colour = rng.uniform(0.85, 1.15, size=3)
        out = out * (gain * colour).astype(np.float32) + (bias * colour).astype(np.float32)
    if rng.random() < cfg.dark_p:
        out = out * np.float32(rng.uniform(0.15, 0.5))
    if rng.random() < cfg.grey_p:
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    out = np.clip(out, 0, 255)
    if rng.random() < cfg.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))
    if rng.random() < cfg.noise_p:
        out = out + rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(2, 12))
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_p:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else out
    return out


def natural_scene(photo: FacePhoto, max_side: int) -> Scene:
    """A held-out photo as it is (shrunk to ``max_side``): validation on unpasted faces."""
    h, w = photo.image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    img = cv2.resize(photo.image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else photo.image
    sx, sy = img.shape[1] / w, img.shape[0] / h

    def scale(b: np.ndarray) -> np.ndarray:
        return (b.reshape(-1, 4) + 0.5) * [sx, sy, sx, sy] - 0.5

    boxes = np.array([_aabb(p[np.isfinite(p).all(1)]) for p in photo.faces]).reshape(-1, 4)
    return Scene(np.ascontiguousarray(img), scale(boxes), scale(photo.ignore))
