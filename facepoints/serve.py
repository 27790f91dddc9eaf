"""The web service: a REST API and a browser page over one shared ``LandmarkModel``.

``create_app`` builds a FastAPI app whose state (loaded models, limits, the
CPU limiter) lives in ``app.state``, so tests can run several apps side by
side. Uploads are checked before any pixel is decoded (bytes, then format and
pixel count from the header), so a hostile file costs a header read, not a
gigabyte of RAM. Detection and drawing run in worker threads, never on the
event loop, and at most ``Limits.workers`` of them at once: on a small CPU
more parallel jobs only thrash. Nothing here imports torch.
"""

import io
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
import cv2
import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from facepoints import __version__
from facepoints.inference import Face, ImageError, LandmarkModel, ModelError, as_rgb, available_models, load
from facepoints.schemes import PointScheme, SchemeError, load_scheme

log = logging.getLogger("facepoints.serve")

# Pillow format name -> what we call it; the same set the CLI reads (facepoints.data.IMAGE_SUFFIXES).
SUPPORTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
MULTIPART_OVERHEAD = 64 * 1024  # boundary lines and part headers around the file in a multipart body


@dataclass(frozen=True)
class Limits:
    """What one request may cost; every breach is a 4xx with a JSON body, never a crash."""

    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 50_000_000  # ~8200 x 6100: larger phone photos exist, decompression bombs are larger still
    max_side: int = 30_000  # OpenCV's warps assert on sides beyond 32767
    max_faces: int = 100  # upper bound of the max_faces option
    workers: int = 2  # CPU jobs at once (decode + detect + draw)
    max_pending: int = 512  # requests admitted at once; beyond this the service answers 503


class ApiError(Exception):
    """A request the service refuses; becomes ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str, **extra: Any) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


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


# ---------------------------------------------------------------- images


def decode_upload(data: bytes, limits: Limits) -> np.ndarray:
    """Uploaded bytes -> upright RGB uint8, refusing oversized, foreign or broken files with a reason.

    The size is read from the header before decoding, which is what stops a
    decompression bomb (a few KB of PNG that inflates to gigabytes).
    """
    if not data:
        raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
    if len(data) > limits.max_upload_bytes:
        raise ApiError(413, "too_large", f"the upload is {len(data)} bytes; the limit is {limits.max_upload_bytes}")
    supported = ", ".join(sorted(set(SUPPORTED_FORMATS.values())))
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ApiError(413, "too_many_pixels", f"the image has too many pixels ({e})") from None
    except UnidentifiedImageError:
        raise ApiError(400, "not_an_image",
                       f"the file is not an image this service can read (supported: {supported})") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged headers
        raise ApiError(400, "corrupt_image", f"cannot read the image header: {type(e).__name__}: {e}") from None
    with im:
        if im.format not in SUPPORTED_FORMATS:
            raise ApiError(415, "unsupported_format", f"{im.format} images are not supported (supported: {supported})")
        w, h = im.size
        if w < 1 or h < 1:
            raise ApiError(400, "corrupt_image", f"the image is empty ({w} x {h} pixels)")
        if w * h > limits.max_pixels or max(w, h) > limits.max_side:
            raise ApiError(413, "too_many_pixels",
                           f"the image is {w} x {h} = {w * h} pixels; the limit is {limits.max_pixels} pixels "
                           f"and {limits.max_side} per side")
        try:
            im.load()  # a truncated file raises here instead of decoding as half grey
        except Exception as e:  # noqa: BLE001
            raise ApiError(400, "corrupt_image", f"cannot decode the {im.format} image: {e}") from None
        try:
            upright = ImageOps.exif_transpose(im) or im
        except Exception:  # noqa: BLE001 - broken EXIF: the pixels are still fine, as stored
            upright = im
        try:
            return as_rgb(upright)
        except ImageError as e:
            raise ApiError(400, "corrupt_image", str(e)) from None


# ---------------------------------------------------------------- results


def _pose_and_expression(points: np.ndarray, size: tuple[int, int]) -> tuple[dict | None, dict | None]:
    """Head pose and expression cues of one face; a degenerate face (no pose solution) reports null, not 500."""
    from facepoints.apps.expression import expression_cues
    from facepoints.apps.pose import head_pose

    try:
        pose = head_pose(points, size).to_dict()
    except ValueError as e:
        log.warning("no head pose for a face: %s", e)
        pose = None
    try:
        expression = expression_cues(points).to_dict()
    except ValueError as e:
        log.warning("no expression cues for a face: %s", e)
        expression = None
    return pose, expression


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return round(v, 4) if np.isfinite(v) else None
    return value


def _convert(points: np.ndarray, scores: np.ndarray, src: PointScheme,
             dst: PointScheme) -> tuple[np.ndarray, np.ndarray]:
    """Points and scores in another scheme; a derived point's score is the lowest of its sources'."""
    if src.name == dst.name:
        return points, scores
    groups = dst.derive.get(src.name)
    if groups is None:
        raise ApiError(400, "unsupported_scheme", f"cannot convert {src.name} points to {dst.name}")
    pts = np.stack([points[list(g)].mean(axis=0) for g in groups])
    return pts, np.array([scores[list(g)].min() for g in groups])


def face_record(face: Face, size: tuple[int, int], model_scheme: PointScheme, out_scheme: PointScheme) -> dict:
    """One face as JSON; pose and expression need the 68 iBUG points, so other schemes report null."""
    pose = expression = None
    if model_scheme.name == "ibug68":
        pose, expression = _pose_and_expression(face.points, size)
    points, scores = _convert(face.points, face.scores, model_scheme, out_scheme)
    return {
        "box": [round(float(v), 2) for v in face.box],
        "detection_score": round(float(face.detection_score), 4),
        "points": [[round(float(x), 2), round(float(y), 2)] for x, y in points],
        "scores": [round(float(s), 4) for s in scores],
        "pose": _jsonable(pose),
        "expression": _jsonable(expression),
    }


def detect_faces(model: LandmarkModel, lock: threading.Lock, image: np.ndarray,
                 max_faces: int) -> tuple[list[Face], int]:
    """The best ``max_faces`` faces (detections come best first) and how many were found in all."""
    with lock:
        faces = model.detect(image)
    return faces[:max_faces], len(faces)


def landmarks_job(registry: ModelRegistry, data: bytes, limits: Limits, *, model: str | None,
                  max_faces: int, scheme: str | None) -> dict:
    """Everything ``POST /v1/landmarks`` computes; runs in a worker thread."""
    t0 = time.perf_counter()
    lm, lock = registry.get(model)
    out_scheme = _scheme(scheme, lm.scheme)
    image = decode_upload(data, limits)
    faces, found = detect_faces(lm, lock, image, max_faces)
    h, w = image.shape[:2]
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


def render_job(registry: ModelRegistry, data: bytes, limits: Limits, *, model: str | None, max_faces: int,
               points: bool, boxes: bool, pose: bool, effect: str | None) -> bytes:
    """Everything ``POST /v1/render`` computes: the annotated picture as PNG bytes."""
    from facepoints.viz import draw_faces

    lm, lock = registry.get(model)
    if effect:
        from facepoints.apps.ar import EFFECTS

        if effect not in EFFECTS:
            raise ApiError(400, "unknown_effect", f"no effect {effect!r}; available: {', '.join(sorted(EFFECTS))}")
    image = decode_upload(data, limits)
    faces, _ = detect_faces(lm, lock, image, max_faces)
    h, w = image.shape[:2]
    out = image
    full68 = lm.scheme.name == "ibug68"
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
        out = draw_faces(out, [(f.box, f.points if points else None) for f in faces], scheme=lm.scheme,
                         draw_boxes=boxes)
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


# ---------------------------------------------------------------- app


class FaceOut(BaseModel):
    box: list[float]
    detection_score: float
    points: list[list[float]]
    scores: list[float]
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


class _BodyLimit:
    """Refuses request bodies over the limit before they are read into memory or spooled to disk.

    FastAPI turns any error while parsing a form into a generic 400, so the
    breach is remembered here and the response replaced by a 413.
    """

    def __init__(self, app, max_bytes: int, upload_limit: int) -> None:
        self.app, self.max_bytes, self.upload_limit = app, max_bytes, upload_limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        message = f"the upload is larger than the limit of {self.upload_limit} bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _send_json(send, 413, error_body("too_large", message))
            return
        seen = 0
        breached = False
        started = False

        async def limited_receive():
            nonlocal seen, breached
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    breached = True
                    raise ApiError(413, "too_large", message)
            return msg

        async def guarded_send(msg) -> None:
            nonlocal started
            if breached:
                if not started:
                    started = True
                    await _send_json(send, 413, error_body("too_large", message))
                return
            started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except ApiError:
            if not started:
                await _send_json(send, 413, error_body("too_large", message))


async def _send_json(send, status: int, body: dict) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": raw})


def static_dir() -> Path:
    return Path(str(resources.files("facepoints") / "static"))


def create_app(model: LandmarkModel | str | Path | None = None, *, limits: Limits | None = None,
               detector: str | None = None) -> FastAPI:
    """The service around ``model`` (a loaded model, a shipped name, an .onnx path, or None for the default)."""
    limits = limits or Limits()
    lm = model if isinstance(model, LandmarkModel) else load(model, detector=detector)
    app = FastAPI(
        title="facepoints",
        version=__version__,
        summary="68 facial landmarks per face, with head pose and expression cues, from an uploaded photo.",
    )
    app.state.registry = ModelRegistry(lm, detector=detector)
    app.state.limits = limits
    app.state.cpu = anyio.CapacityLimiter(limits.workers)
    app.state.pending = 0
    app.add_middleware(_BodyLimit, max_bytes=limits.max_upload_bytes + MULTIPART_OVERHEAD,
                       upload_limit=limits.max_upload_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse(error_body("invalid_request", problems, details=details), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(error_body("internal_error", f"{type(exc).__name__}; details are in the server log"),
                            status_code=500)

    async def run_cpu(request: Request, fn, *args, **kw):
        """Admit, then run in a worker thread; too many waiting requests get a 503 instead of a long queue."""
        state = request.app.state
        if state.pending >= limits.max_pending:
            raise ApiError(503, "busy", f"{state.pending} requests in progress; try again shortly")
        state.pending += 1
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kw), limiter=state.cpu)
        finally:
            state.pending -= 1

    async def read_upload(image: UploadFile) -> bytes:
        data = await image.read(limits.max_upload_bytes + 1)
        await image.close()
        if len(data) > limits.max_upload_bytes:
            raise ApiError(413, "too_large", f"the upload is over the limit of {limits.max_upload_bytes} bytes")
        return data

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
        """
        data = await read_upload(image)
        registry = request.app.state.registry
        result = await run_cpu(request, landmarks_job, registry, data, limits, model=model, max_faces=max_faces,
                               scheme=scheme)
        return JSONResponse(result)  # already plain JSON types: skip re-validating 68 x 2 floats per face

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
        """The photo (upright) with points, boxes, pose axes and an optional AR effect drawn on it."""
        data = await read_upload(image)
        png = await run_cpu(request, render_job, request.app.state.registry, data, limits, model=model,
                            max_faces=max_faces, points=points, boxes=boxes, pose=pose, effect=effect or None)
        return Response(png, media_type="image/png")

    @app.get("/v1/models", tags=["service"])
    def models(request: Request) -> dict:
        """Shipped model names, the service's default, and the point schemes points can be reported in."""
        from facepoints.schemes import builtin_schemes

        reg: ModelRegistry = request.app.state.registry
        return {"default": reg.default_name, "models": reg.names(), "schemes": builtin_schemes()}

    @app.get("/healthz", tags=["service"])
    def healthz(request: Request) -> dict:
        """Liveness and what is loaded; cheap, no model call."""
        reg: ModelRegistry = request.app.state.registry
        return {"status": "ok", "version": __version__, "model": reg.default_name,
                "scheme": reg.default.scheme.name, "pending": request.app.state.pending,
                "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels}}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(static_dir() / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app


# ---------------------------------------------------------------- running


def run(host: str = "127.0.0.1", port: int = 8000, *, model: str | None = None, limits: Limits | None = None,
        log_level: str = "info", detector: str | None = None) -> None:
    """Serve until interrupted (``facepoints serve``)."""
    import uvicorn

    app = create_app(model, limits=limits, detector=detector)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_background(*args: str, host: str = "127.0.0.1", port: int | None = None,
                        timeout: float = 60.0) -> Iterator[str]:
    """Run ``facepoints serve`` in a child process on a loopback port and yield its base URL.

    A real process (not an in-process client) so tests and the load benchmark
    see what users get: uvicorn, sockets, the CLI's options. Extra ``args`` go
    to the command line. The child is stopped on exit, however the block ends.
    """
    port = port or free_port(host)
    cmd = [sys.executable, "-m", "facepoints.cli", "serve", "--host", host, "--port", str(port),
           "--log-level", "warning", *args]
    url = f"http://{host}:{port}"
    # a file, not a pipe: nobody reads a pipe while the server runs, and a full one would block the child
    with tempfile.TemporaryFile(mode="w+") as output:
        proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_until_up(proc, url, timeout, output)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _wait_until_up(proc: subprocess.Popen, url: str, timeout: float, output) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            output.seek(0)
            raise RuntimeError(f"`{' '.join(proc.args)}` exited with {proc.returncode}:\n{output.read()[-4000:]}")
        try:
            with opener.open(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service did not answer on {url} within {timeout:.0f} s")
        time.sleep(0.2)

