"""The REST API on a real uvicorn server on 127.0.0.1: results, limits, errors and concurrency."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from facepoints.inference import LandmarkModel, resolve_model
from facepoints.schemes import load_scheme
from facepoints.serve import Limits, create_app
from tests.serve.helpers import ASTRONAUT, ROOT, SlowModel, assert_error, png_bytes, post

# ---------------------------------------------------------------- service basics


def test_healthz_models_and_openapi_docs(server: str) -> None:
    health = httpx.get(f"{server}/healthz").json()
    assert health["status"] == "ok" and health["scheme"] == "ibug68"
    assert health["limits"]["max_upload_bytes"] == 10 * 1024 * 1024
    models = httpx.get(f"{server}/v1/models").json()
    assert models["default"] in models["models"] and "five" in models["schemes"]
    docs = httpx.get(f"{server}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/landmarks", "/v1/render", "/healthz"} <= set(spec["paths"])
    body = spec["paths"]["/v1/landmarks"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "<label for=\"file\"" in page.text
    assert httpx.get(f"{server}/static/app.js").status_code == 200
    assert_error(httpx.get(f"{server}/no/such/page"), 404, "not_found")


def test_api_docs_load_nothing_from_other_hosts(server: str) -> None:
    """/docs and /redoc worked only online (Swagger UI from a CDN); their scripts and styles now come from here."""
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{server}{page}").text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and not re.search(r"https?://|//cdn", html), html
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), asset
            r = httpx.get(f"{server}{asset}")
            assert r.status_code == 200 and len(r.content) > 1000, asset
    assert "SwaggerUIBundle" in httpx.get(f"{server}/static-docs/swagger-ui-bundle.js").text[:5000]


def test_landmarks_on_the_sample_photo(server: str, reference) -> None:
    r = post(server, "/v1/landmarks", ASTRONAUT)
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["width"], res["height"], res["scheme"], res["faces_found"]) == (512, 512, "ibug68", 1)
    assert len(res["point_names"]) == 68
    (face,) = res["faces"]
    pts = np.array(face["points"])
    assert pts.shape == (68, 2) and len(face["scores"]) == 68
    assert all(0.0 <= s <= 1.0 for s in face["scores"])
    # the same numbers as the library (JSON rounds to 0.01 px)
    np.testing.assert_allclose(pts, reference.points, atol=0.01)
    np.testing.assert_allclose(face["box"], reference.box, atol=0.01)
    # a frontal portrait: small head angles, finite expression cues
    pose = face["pose"]
    assert abs(pose["yaw"]) < 30 and abs(pose["pitch"]) < 30 and abs(pose["roll"]) < 20, pose
    assert face["expression"] and all(np.isfinite(v) for v in face["expression"].values())


def test_scheme_option_converts_points(server: str, reference) -> None:
    res = post(server, "/v1/landmarks", ASTRONAUT, scheme="five").json()
    (face,) = res["faces"]
    five = load_scheme("five")
    groups = five.derive["ibug68"]
    expected = np.stack([reference.points[list(g)].mean(axis=0) for g in groups])
    assert res["scheme"] == "five" and res["point_names"] == list(five.points)
    np.testing.assert_allclose(face["points"], expected, atol=0.02)
    assert len(face["scores"]) == 5 and face["pose"] is not None  # pose comes from the model's 68 points


def test_model_and_max_faces_options(server: str) -> None:
    models = httpx.get(f"{server}/v1/models").json()["models"]
    for name in models:
        res = post(server, "/v1/landmarks", ASTRONAUT, model=name).json()
        assert res["model"] == name and len(res["faces"]) == 1
    # two copies of the face side by side; max_faces keeps the best one and says how many there were
    photo = Image.open(io.BytesIO(ASTRONAUT)).convert("RGB")
    pair = Image.new("RGB", (1024, 512))
    pair.paste(photo, (0, 0))
    pair.paste(photo, (512, 0))
    res = post(server, "/v1/landmarks", png_bytes(pair), "pair.png").json()
    assert res["faces_found"] == 2 and len(res["faces"]) == 2
    res = post(server, "/v1/landmarks", png_bytes(pair), "pair.png", max_faces=1).json()
    assert res["faces_found"] == 2 and len(res["faces"]) == 1
    assert_error(post(server, "/v1/landmarks", ASTRONAUT, max_faces=0), 422, "invalid_request")
    assert_error(post(server, "/v1/landmarks", ASTRONAUT, max_faces=1000), 422, "invalid_request")
    assert_error(post(server, "/v1/landmarks", ASTRONAUT, model="no-such-model"), 400, "unknown_model")
    assert_error(post(server, "/v1/landmarks", ASTRONAUT, model="../weights/default"), 400, "unknown_model")
    assert_error(post(server, "/v1/landmarks", ASTRONAUT, scheme="nope"), 400, "unsupported_scheme")


def test_render_returns_the_annotated_png(server: str) -> None:
    plain = np.asarray(Image.open(io.BytesIO(ASTRONAUT)).convert("RGB")).astype(int)

    def render(**params) -> np.ndarray:
        r = post(server, "/v1/render", ASTRONAUT, **params)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)

    nothing = render(points="false", boxes="false")
    assert nothing.shape == plain.shape and np.abs(nothing - plain).max() == 0
    marked = render()
    changed = np.abs(marked - plain).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    # drawing happens on the face only (top half, centre), and there is a fair amount of it
    assert changed.sum() > 500 and 120 < xs.mean() < 350 and ys.mean() < 256
    axes = render(points="false", boxes="false", pose="true")
    glasses = render(points="false", boxes="false", effect="glasses")
    assert (np.abs(axes - plain).sum(axis=2) > 0).sum() > 100
    assert (np.abs(glasses - plain).sum(axis=2) > 0).sum() > 300
    assert_error(post(server, "/v1/render", ASTRONAUT, effect="hat"), 400, "unknown_effect")


# ---------------------------------------------------------------- limits and errors


def test_bad_uploads_get_clear_json_errors(server: str) -> None:
    assert_error(post(server, "/v1/landmarks", b""), 400, "empty_file")
    assert_error(post(server, "/v1/landmarks", b"just some text\n" * 10), 400, "not_an_image")
    assert_error(post(server, "/v1/landmarks", ASTRONAUT[: len(ASTRONAUT) // 2]), 400, "corrupt_image")
    gif = png_bytes(Image.open(io.BytesIO(ASTRONAUT)).convert("P"), format="GIF")
    err = assert_error(post(server, "/v1/render", gif, "photo.gif"), 415, "unsupported_format")
    assert "GIF" in err["message"] and "JPEG" in err["message"]
    missing = httpx.post(f"{server}/v1/landmarks", files={"other": ("x.jpg", ASTRONAUT)})
    assert "image" in assert_error(missing, 422, "invalid_request")["message"]
    not_multipart = httpx.post(f"{server}/v1/landmarks", content=ASTRONAUT, headers={"content-type": "image/jpeg"})
    assert_error(not_multipart, 422, "invalid_request")


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_other_supported_formats(server: str, fmt: str, reference) -> None:
    photo = Image.open(io.BytesIO(ASTRONAUT)).convert("RGB")
    res = post(server, "/v1/landmarks", png_bytes(photo, format=fmt, **({"lossless": True} if fmt == "WEBP" else {})),
               f"photo.{fmt.lower()}").json()
    assert len(res["faces"]) == 1
    np.testing.assert_allclose(res["faces"][0]["points"], reference.points, atol=2.0)


def test_upload_size_limit_with_and_without_content_length(server: str) -> None:
    big = b"\xff\xd8" + bytes(11 * 1024 * 1024)
    assert_error(post(server, "/v1/landmarks", big), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        boundary = b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"
        yield boundary
        for _ in range(12):
            yield bytes(1024 * 1024)
        yield b"\r\n--xyz--\r\n"

    r = httpx.post(f"{server}/v1/landmarks", content=chunks(),
                   headers={"content-type": "multipart/form-data; boundary=xyz"}, timeout=60)
    assert_error(r, 413, "too_large")
    # the server is still fine afterwards
    assert post(server, "/v1/landmarks", ASTRONAUT).status_code == 200


def test_pixel_limit_refuses_before_decoding(in_thread_server, model: LandmarkModel) -> None:
    url = in_thread_server(create_app(model, limits=Limits(max_pixels=100_000)))
    err = assert_error(post(url, "/v1/landmarks", ASTRONAUT), 413, "too_many_pixels")
    assert "512 x 512" in err["message"]
    small = Image.open(io.BytesIO(ASTRONAUT)).resize((300, 300))
    assert post(url, "/v1/landmarks", png_bytes(small), "small.png").status_code == 200


def test_cpu_work_runs_off_the_event_loop(in_thread_server) -> None:
    url = in_thread_server(create_app(SlowModel(resolve_model(None))))
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, url, "/v1/landmarks", ASTRONAUT)
        time.sleep(0.2)
        t = time.perf_counter()
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert time.perf_counter() - t < SlowModel.delay / 2
        assert slow.result().status_code == 200


def test_overload_gets_503_busy_not_a_queue_without_end(in_thread_server) -> None:
    url = in_thread_server(create_app(SlowModel(resolve_model(None)), limits=Limits(max_pending=2, workers=1)))
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: post(url, "/v1/landmarks", ASTRONAUT), range(6)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 2 and set(codes) <= {200, 503}, codes
    busy = [r for r in results if r.status_code == 503]
    assert busy, codes
    assert_error(busy[0], 503, "busy")


def test_concurrent_requests_share_one_model_safely(server: str, reference) -> None:
    photo = Image.open(io.BytesIO(ASTRONAUT)).convert("RGB")
    mirrored = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    variants = [ASTRONAUT, png_bytes(photo.resize((400, 400))), png_bytes(mirrored)]
    jobs = [variants[i % 3] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda d: post(server, "/v1/landmarks", d).json(), jobs))
    for i, res in enumerate(results):
        assert res["faces"], res
        assert res["faces"] == results[i % 3]["faces"]  # same input, same answer, whatever ran beside it
    np.testing.assert_allclose(results[0]["faces"][0]["points"], reference.points, atol=0.01)


def test_serve_command_help_and_bad_options() -> None:
    from typer.testing import CliRunner

    from facepoints.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["serve", "--help"])
    assert out.exit_code == 0 and "--port" in out.output and "--max-upload-mb" in out.output
    bad = runner.invoke(app, ["serve", "--workers", "0"])
    assert bad.exit_code != 0


def test_load_benchmark_runs_against_the_server(server: str) -> None:
    """The benchmark on a small setting: every answer right, and the server's peak RSS under the stated ceiling."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load.py"), "--url", server, "--requests", "6",
                           "--concurrency", "6", "--heavy", "1", "--no-write"], check=False, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0 and summary["ok"] == 6 and summary["requests_per_s"] > 0
    assert summary["heavy"] == 1 and summary["within_ceiling"] is True
    assert summary["idle_rss_mb"] < summary["peak_rss_mb"] <= summary["rss_ceiling_mb"], summary
