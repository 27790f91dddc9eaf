"""The web service: a REST API and a browser page over one shared ``LandmarkModel``.

``create_app`` builds a FastAPI app whose state (loaded models, limits, the
CPU limiter, the memory budgets) lives in ``app.state``, so tests can run
several apps side by side. Uploads are checked before any pixel is decoded
(bytes, then format and pixel count from the header), and each request
reserves the memory its decode will need before it starts, so a hostile file
costs a header read, not a gigabyte of RAM. Detection and drawing run in
worker threads, never on the event loop, at most ``Limits.workers`` at once,
and are skipped or stopped when the client has gone. Nothing here imports torch.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio
import cv2
import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from facepoints import __version__
from facepoints.inference import Face, LandmarkModel, ModelError, available_models, load
from facepoints.schemes import PointScheme, SchemeError, load_scheme
from facepoints.serve.common import MB, ApiError, Limits, error_body
from facepoints.serve.guards import BodyGuard, watch_disconnect
from facepoints.serve.handlers import install_docs, install_error_handlers
from facepoints.serve.images import Decoded, decode_photo, read_header
from facepoints.serve.memory import ByteBudget, rss_bytes, trim

log = logging.getLogger("facepoints.serve")
TRIM_AFTER_BYTES = 32 * MB  # jobs whose decode reserved this much hand freed memory back to the OS afterwards


class Abandoned(Exception):
    """The client disconnected; the rest of its job is not worth computing."""


# ---------------------------------------------------------------- models


@dataclass
class ModelRegistry:
    """Shipped models loaded on first use and then shared by every request.

    Each model gets a lock because OpenCV's cascade classifier keeps per-call
    buffers in the object and is not safe to run from two threads at once;
    onnxruntime would be, but it already uses every core for one batch.
    """

    default: LandmarkModel
    detector: str | None = None  # face detector of every model (facepoints.detectors.DETECTORS); None: the default
    models: dict[str, LandmarkModel] = field(default_factory=dict)
    locks: dict[str, threading.Lock] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.models[self.default_name] = self.default
        self.locks[self.default_name] = threading.Lock()

    @property
    def default_name(self) -> str:
        return str(self.default.meta.get("name") or self.default.path.stem)

    def names(self) -> list[str]:
        return sorted(set(available_models()) | set(self.models))

    def get(self, name: str | None) -> tuple[LandmarkModel, threading.Lock]:
        """A loaded model by name; only shipped names are accepted, so clients cannot open arbitrary paths."""
        key = name or self.default_name
        with self.guard:
            if key not in self.models:
                if key not in available_models():
                    raise ApiError(400, "unknown_model",
                                   f"no model named {key!r}; available: {', '.join(self.names())}")
                try:
                    self.models[key] = load(key, detector=self.detector)
                except ModelError as e:
                    raise ApiError(500, "model_error", str(e)) from None
                self.locks[key] = threading.Lock()
            return self.models[key], self.locks[key]


# ---------------------------------------------------------------- results


def face_record(face: Face, size: tuple[int, int], model_scheme: PointScheme, out_scheme: PointScheme) -> dict:
    """The one face record (``apps.record``); a scheme the points cannot be converted to is the client's 400."""
    from facepoints.apps.record import face_record as record

    try:
        return record(face, size, model_scheme, out_scheme)
    except SchemeError:
        raise ApiError(400, "unsupported_scheme", f"cannot convert {model_scheme.name} points to {out_scheme.name}") \
            from None


def detect_faces(model: LandmarkModel, lock: threading.Lock, image: np.ndarray,
                 max_faces: int) -> tuple[list[Face], int]:
    """The best ``max_faces`` faces (detections come best first) and how many were found in all."""
    with lock:
        faces = model.detect(image)
    return faces[:max_faces], len(faces)


def _go_on(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Abandoned


def _in_photo_pixels(face: Face, decoded: Decoded) -> Face:
    """A face found on the reduced image, in the photo's own pixels."""
    if decoded.factor == 1:
        return face
    return dataclasses.replace(face, box=decoded.to_photo(face.box.reshape(2, 2)).reshape(4),
                               points=decoded.to_photo(face.points))


def landmarks_job(registry: ModelRegistry, source: BinaryIO, limits: Limits, *, model: str | None,
                  max_faces: int, scheme: str | None, stop: threading.Event | None = None) -> dict:
    """Everything ``POST /v1/landmarks`` computes; runs in a worker thread."""
    t0 = time.perf_counter()
    lm, lock = registry.get(model)
    out_scheme = _scheme(scheme, lm.scheme)
    decoded = decode_photo(source, limits)
    _go_on(stop)
    faces, found = detect_faces(lm, lock, decoded.image, max_faces)
    _go_on(stop)
    faces = [_in_photo_pixels(f, decoded) for f in faces]
    w, h = decoded.width, decoded.height
    return {
        "model": str(lm.meta.get("name") or lm.path.stem),
        "scheme": out_scheme.name,
        "point_names": list(out_scheme.points),
        "width": w,
        "height": h,
        "faces_found": found,
        "faces": [face_record(f, (w, h), lm.scheme, out_scheme) for f in faces],
        "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


def _scheme(name: str | None, model_scheme: PointScheme) -> PointScheme:
    """The scheme to report points in; only built-in names, so clients cannot make the service read files."""
    from facepoints.schemes import builtin_schemes

    if not name:
        return model_scheme
    if name not in builtin_schemes():
        raise ApiError(400, "unsupported_scheme", f"no point scheme {name!r}; built in: {', '.join(builtin_schemes())}")
    try:
        return load_scheme(name)
    except SchemeError as e:
        raise ApiError(500, "scheme_error", str(e)) from None


def _draw(out: np.ndarray, faces: list[Face], scheme: PointScheme, *, points: bool, boxes: bool, pose: bool,
          effect: str | None) -> np.ndarray:
    from facepoints.viz import draw_faces

    h, w = out.shape[:2]
    full68 = scheme.name == "ibug68"
    if effect and faces and full68:
        from facepoints.apps.ar import apply_effect

        out = apply_effect(out, [f.points for f in faces], effect)
    if pose and full68:
        from facepoints.apps.pose import draw_pose_axes, head_pose

        for f in faces:
            try:
                out = draw_pose_axes(out, head_pose(f.points, (w, h)), f.points, (w, h))
            except ValueError as e:  # a degenerate face has no pose: draw the rest
                log.warning("no head pose for a face: %s", e)
    if points or boxes:
        out = draw_faces(out, [(f.box, f.points if points else None) for f in faces], scheme=scheme,
                         draw_boxes=boxes)
    return out


def render_job(registry: ModelRegistry, source: BinaryIO, limits: Limits, *, model: str | None, max_faces: int,
               points: bool, boxes: bool, pose: bool, effect: str | None, stop: threading.Event | None = None) -> bytes:
    """Everything ``POST /v1/render`` computes: the annotated picture as PNG bytes (reduced when the photo was)."""
    lm, lock = registry.get(model)
    if effect:
        from facepoints.apps.ar import EFFECTS

        if effect not in EFFECTS:
            raise ApiError(400, "unknown_effect", f"no effect {effect!r}; available: {', '.join(sorted(EFFECTS))}")
    decoded = decode_photo(source, limits)
    _go_on(stop)
    faces, _ = detect_faces(lm, lock, decoded.image, max_faces)
    _go_on(stop)
    out = _draw(decoded.image, faces, lm.scheme, points=points, boxes=boxes, pose=pose, effect=effect)
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


def _run_and_trim(fn: Callable[[], Any], cost: int) -> Any:
    """Run a job; after a heavy one, give the freed pixels back to the OS (the job's locals are gone by then)."""
    try:
        return fn()
    finally:
        if cost >= TRIM_AFTER_BYTES:
            trim()


# ---------------------------------------------------------------- app


class FaceOut(BaseModel):
    box: list[float]
    detection_score: float | None
    points: list[list[float]]
    scores: list[float]
    face_score: float | None = None
    doubtful: bool = False
    pose: dict[str, Any] | None = None
    expression: dict[str, Any] | None = None


class LandmarksOut(BaseModel):
    model: str
    scheme: str
    point_names: list[str]
    width: int
    height: int
    faces_found: int
    faces: list[FaceOut]
    elapsed_ms: float


def static_dir() -> Path:
    return Path(str(resources.files("facepoints") / "static"))


async def _captured(fn: Callable[[], Any], limiter: anyio.CapacityLimiter) -> tuple[Any, Exception | None]:
    try:
        return await anyio.to_thread.run_sync(fn, limiter=limiter), None
    except Exception as e:  # noqa: BLE001 - re-raised by the caller, outside the task group
        return None, e


async def run_job(request: Request, image: UploadFile, job: Callable[..., Any], kind: str, **kw: Any) -> Any:
    """Admit by count, then by the bytes the decode will need; run in a worker thread unless the client has gone.

    Returns None when the client disconnected first: its job was skipped, or
    stopped at the next step if it had started.
    """
    state = request.app.state
    limits: Limits = state.limits
    if state.pending >= limits.max_pending:
        raise ApiError(503, "busy", f"{state.pending} requests in progress; try again shortly")
    state.pending += 1
    stop = threading.Event()
    try:
        image.file.seek(0, 2)
        size = image.file.tell()
        if not size:
            raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
        if size > limits.max_upload_bytes:
            raise ApiError(413, "too_large", f"the upload is {size} bytes; the limit is {limits.max_upload_bytes}")
        header = await anyio.to_thread.run_sync(read_header, image.file, limits)  # file I/O: off the event loop
        cost = header.cost(limits, kind)
        fn = partial(_run_and_trim, partial(job, state.registry, image.file, limits, stop=stop, **kw), cost)
        result, error = None, None
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_disconnect, request, stop, tg.cancel_scope)
            async with state.decode_budget.reserve(cost):
                result, error = await _captured(fn, state.cpu)
            tg.cancel_scope.cancel()
    finally:
        state.pending -= 1
        await image.close()
    if stop.is_set() or isinstance(error, Abandoned):
        state.counters["abandoned"] += 1
        return None
    if error is not None:
        raise error
    state.counters["done"] += 1
    return result


def _gone() -> JSONResponse:
    """Nobody reads this: the client closed the connection (499, as nginx logs it)."""
    return JSONResponse(error_body("client_closed", "the client closed the connection first"), status_code=499)


def create_app(model: LandmarkModel | str | Path | None = None, *, limits: Limits | None = None,
               detector: str | None = None) -> FastAPI:
    """The service around ``model`` (a loaded model, a shipped name, an .onnx path, or None for the default)."""
    limits = limits or Limits()
    lm = model if isinstance(model, LandmarkModel) else load(model, detector=detector)
    app = FastAPI(
        title="facepoints",
        version=__version__,
        summary="68 facial landmarks per face, with head pose and expression cues, from an uploaded photo.",
        docs_url=None,
        redoc_url=None,
    )
    _install_state(app, ModelRegistry(lm, detector=detector), limits)

    ImageField = Annotated[UploadFile, File(description="A photo: JPEG, PNG, WebP, BMP or TIFF.")]
    ModelQ = Annotated[str | None, Query(description="A shipped model name (GET /v1/models); default: the service's.")]
    MaxFacesQ = Annotated[int, Query(ge=1, le=limits.max_faces, description="Keep the best N detections.")]

    @app.post("/v1/landmarks", response_model=LandmarksOut, tags=["landmarks"])
    async def landmarks(
        request: Request,
        image: ImageField,
        model: ModelQ = None,
        max_faces: MaxFacesQ = 20,
        scheme: Annotated[str | None, Query(description="Report points in this scheme (five, kaggle15, ...).")] = None,
    ) -> JSONResponse:
        """Faces in the photo: box, points, per-point scores, head pose (degrees) and expression cues.

        Coordinates are pixels of the photo as displayed (EXIF rotation applied), 0-based, pixel centres at integers.
        Photos over 16 megapixels are analysed reduced; coordinates are still the photo's own pixels.
        """
        result = await run_job(request, image, landmarks_job, "landmarks", model=model, max_faces=max_faces,
                               scheme=scheme)
        return _gone() if result is None else JSONResponse(result)  # plain JSON types: no re-validation

    @app.post("/v1/render", tags=["landmarks"], response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "The annotated photo as PNG."}})
    async def render(
        request: Request,
        image: ImageField,
        model: ModelQ = None,
        max_faces: MaxFacesQ = 20,
        points: bool = True,
        boxes: bool = True,
        pose: Annotated[bool, Query(description="Draw head-pose axes.")] = False,
        effect: Annotated[str | None, Query(description="AR effect: glasses or moustache.")] = None,
    ) -> Response:
        """The photo (upright) with points, boxes, pose axes and an optional AR effect drawn on it.

        Photos over 16 megapixels come back reduced (by an integer factor), as they were analysed.
        """
        png = await run_job(request, image, render_job, "render", model=model, max_faces=max_faces, points=points,
                            boxes=boxes, pose=pose, effect=effect or None)
        return _gone() if png is None else Response(png, media_type="image/png")

    _add_service_routes(app, limits)
    return app


def _install_state(app: FastAPI, registry: ModelRegistry, limits: Limits) -> None:
    """Per-app state (models, limits, CPU limiter, memory budgets), the body guard, errors and offline docs."""
    app.state.registry = registry
    app.state.limits = limits
    app.state.cpu = anyio.CapacityLimiter(limits.workers)
    app.state.pending = 0
    app.state.counters = {"done": 0, "abandoned": 0}
    app.state.decode_budget = ByteBudget(limits.decode_budget_bytes)
    app.state.body_budget = ByteBudget(limits.body_budget_bytes)
    app.add_middleware(BodyGuard, limits=limits, budget=app.state.body_budget)
    install_error_handlers(app)
    install_docs(app)


def _add_service_routes(app: FastAPI, limits: Limits) -> None:
    """/v1/models, /healthz, the page and its static files."""

    @app.get("/v1/models", tags=["service"])
    def models(request: Request) -> dict:
        """Shipped model names, the service's default, and the point schemes points can be reported in."""
        from facepoints.schemes import builtin_schemes

        reg: ModelRegistry = request.app.state.registry
        return {"default": reg.default_name, "models": reg.names(), "schemes": builtin_schemes()}

    @app.get("/healthz", tags=["service"])
    def healthz(request: Request) -> dict:
        """Liveness, what is loaded, the limits, and memory: resident now and at peak, budgets in use."""
        state = request.app.state
        reg: ModelRegistry = state.registry
        rss, peak = rss_bytes()
        return {"status": "ok", "version": __version__, "model": reg.default_name,
                "scheme": reg.default.scheme.name, "pending": state.pending, "requests": dict(state.counters),
                "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                           "work_pixels": limits.work_pixels, "decode_budget_bytes": limits.decode_budget_bytes,
                           "body_budget_bytes": limits.body_budget_bytes, "workers": limits.workers},
                "memory": {"rss_bytes": rss, "peak_rss_bytes": peak,
                           "decode_budget_used": state.decode_budget.used,
                           "decode_budget_peak": state.decode_budget.peak,
                           "body_budget_used": state.body_budget.used,
                           "body_budget_peak": state.body_budget.peak}}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(static_dir() / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

