"""The one batch runner behind detect and the photo apps: no lost work, resume, skip reporting, worker processes."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facepoints.batch import DetectTask, run_batch
from facepoints.cli import app, sample_image_path
from facepoints.inference import ImageError, load
from facepoints.results import csv_header, resume_jsonl
from tests.helpers import photo_folder, too_wide_png

runner = CliRunner()
APPS = [("align", []), ("pose", []), ("expression", []), ("ar", ["--effect", "glasses"]), ("detect", [])]
RESULTS = {"align": "align.json", "pose": "pose.json", "expression": "expression.json", "ar": "ar-glasses.json",
           "detect": "results.json"}


@pytest.fixture(scope="module")
def model():
    return load(threads=1)


@pytest.mark.parametrize("cmd,extra", APPS, ids=[c for c, _ in APPS])
def test_one_bad_photo_never_loses_the_batch(tmp_path: Path, cmd: str, extra: list[str]) -> None:
    """A photo too wide to crop (it raised out of pose/align/ar/expression) sits between two good ones."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_image_path(), folder / "a_good.jpg")
    too_wide_png(folder / "b_wide.png")
    shutil.copy(sample_image_path(), folder / "c_good.jpg")
    out = tmp_path / "out"
    result = runner.invoke(app, [cmd, str(folder), "--out", str(out), "--workers", "1", *extra])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / RESULTS[cmd]).read_text())
    records = {Path(r["file"]).name: r for r in doc["images" if cmd == "detect" else "photos"]}
    assert len(records["a_good.jpg"]["faces"]) == 1 and len(records["c_good.jpg"]["faces"]) == 1
    assert len(records["b_wide.png"]["faces"]) == 1  # decoded reduced, so it fits OpenCV's warps now
    assert (records["b_wide.png"]["width"], records["b_wide.png"]["height"]) == (33000, 1500)
    assert "3 face(s)" in result.output


@dataclass
class BreaksOn:
    """A task that breaks on one photo: it raises, or its worker process dies (as if killed for memory)."""

    bad: str
    how: str = "raise"
    name: str = "detect"
    records_key: str = "images"
    on_empty: bool = True

    def __call__(self, photo, model):
        if photo.path.name == self.bad:
            if self.how == "exit":
                os._exit(3)
            raise ImageError("the image is 40000 x 10 pixels; cropping faces needs sides of at most 32766")
        return DetectTask(draw=False)(photo, model)


@pytest.mark.parametrize("workers", [1, 2])
def test_whatever_a_photo_raises_is_its_reason_and_the_rest_is_done(tmp_path: Path, model, workers: int) -> None:
    folder = photo_folder(tmp_path / "in", 3)
    summary = run_batch([folder], tmp_path / "out", model, BreaksOn("img1.jpg"), workers=workers, progress=False)
    assert summary.images_ok == 2 and summary.faces == 2
    assert summary.skipped == [(str(folder / "img1.jpg"), "the image is 40000 x 10 pixels; cropping faces needs "
                                                          "sides of at most 32766")]
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [Path(r["file"]).name for r in doc["images"]] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert "error" in doc["images"][1] and len(doc["images"][2]["faces"]) == 1


def test_folder_scans_and_named_files_report_every_skip(tmp_path: Path, model) -> None:
    folder = photo_folder(tmp_path / "in", 1)
    (folder / "anim.gif").write_bytes(b"GIF89a")
    (folder / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    os.symlink(tmp_path / "gone.jpg", folder / "dangling.jpg")
    gif = tmp_path / "named.gif"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(gif)
    summary = run_batch([folder, gif, tmp_path / "missing.jpg"], tmp_path / "out", model, DetectTask(draw=False),
                        progress=False)
    reasons = {Path(f).name: why for f, why in summary.skipped}
    assert set(reasons) == {"anim.gif", "phone.heic", "dangling.jpg", "named.gif", "missing.jpg"}
    assert reasons["dangling.jpg"] == "dangling symbolic link"
    assert "GIF images are not supported" in reasons["named.gif"]
    assert summary.images_ok == 1 and summary.faces == 1
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(doc["images"]) == 6 and len(doc["skipped"]) == 5


def test_a_missing_file_on_the_command_line_is_reported_and_the_rest_is_done(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pose", str(tmp_path / "nope.jpg"), str(sample_image_path()), "--out",
                                 str(tmp_path / "o"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "nope.jpg: no such file" in result.output and "1 face(s)" in result.output


def test_resume_cuts_a_partial_last_line_before_appending(tmp_path: Path, model) -> None:
    folder = photo_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    run_batch([folder / "img0.jpg"], out, model, DetectTask(draw=False), fmt="jsonl", progress=False)
    results = out / "results.jsonl"
    first = results.read_text()
    results.write_text(first + '{"file": "' + str(folder / "img1.jpg") + '", "wid')  # a crash mid-line
    assert resume_jsonl(results) == {str(folder / "img0.jpg")} and results.read_text() == first
    results.write_text(first + '{"file": "' + str(folder / "img1.jpg") + '", "wid')
    summary = run_batch([folder], out, model, DetectTask(draw=False), fmt="jsonl", resume=True, progress=False)
    assert summary.resumed == 1 and summary.images_ok == 2
    lines = [json.loads(x) for x in results.read_text().splitlines()]  # every line parses
    assert sorted(Path(r["file"]).name for r in lines) == ["img0.jpg", "img1.jpg", "img2.jpg"]


def test_csv_columns_are_unique_and_documented() -> None:
    header = csv_header(68)
    assert len(header) == len(set(header))
    assert header[4:14] == ["box_x0", "box_y0", "box_x1", "box_y1", "detection_score", "face_score", "doubtful",
                            "p0_x", "p0_y", "p0_score"]
    import facepoints.results

    assert "p0_x, p0_y, p0_score" in facepoints.results.__doc__


def test_workers_give_the_single_process_results_in_order_and_out_of_order(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "in", 4)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    runs = {}
    for name, args in (("one", ["--workers", "1"]), ("two", ["--workers", "2"]),
                       ("any", ["--workers", "2", "--unordered"])):
        result = runner.invoke(app, ["detect", str(folder), "--out", str(tmp_path / name), "--format", "jsonl",
                                     "--no-draw", *args])
        assert result.exit_code == 0, result.output
        assert "4 image(s) processed, 4 face(s) found" in result.output and "skipped" in result.output
        runs[name] = [json.loads(x) for x in (tmp_path / name / "results.jsonl").read_text().splitlines()]
    assert runs["two"] == runs["one"]  # same records, same order
    key = lambda r: r["file"]  # noqa: E731
    assert sorted(runs["any"], key=key) == sorted(runs["one"], key=key)


def test_workers_resume_like_one_process(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    args = ["detect", "--out", str(out), "--format", "jsonl", "--no-draw", "--workers", "2"]
    assert runner.invoke(app, [*args, str(folder / "img1.jpg")]).exit_code == 0
    result = runner.invoke(app, [*args, "--resume", str(folder)])
    assert result.exit_code == 0 and "1 already done" in result.output
    assert len((out / "results.jsonl").read_text().splitlines()) == 3


def test_a_dead_worker_costs_its_photos_not_the_run(tmp_path: Path, model) -> None:
    folder = photo_folder(tmp_path / "in", 4)
    summary = run_batch([folder], tmp_path / "out", model, BreaksOn("img1.jpg", "exit"), workers=2, progress=False)
    reasons = dict(summary.skipped)
    assert "worker process died" in reasons[str(folder / "img1.jpg")]
    assert summary.images_ok + len(summary.skipped) == 4
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [Path(r["file"]).name for r in doc["images"]] == [f"img{i}.jpg" for i in range(4)]


def test_workers_use_the_models_own_detector_settings(tmp_path: Path) -> None:
    from facepoints.detectors import FaceDetector

    folder = photo_folder(tmp_path / "in", 2)
    strict = load(threads=1, detector=FaceDetector(min_neighbors=60))  # so strict the sample face is not found
    for workers in (1, 2):
        summary = run_batch([folder], tmp_path / f"out{workers}", strict, DetectTask(draw=False), workers=workers,
                            progress=False)
        assert summary.images_ok == 2 and summary.faces == 0, workers
