"""The command line end to end, on real files: shipped model, real decoding, real face detector."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facepoints.cli import app, sample_image_path
from tests.training_builders import pts_dataset as _pts_dataset

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _ok(args: list[str]):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("cmd", ["detect", "train", "evaluate", "export", "augment-preview", "schemes", "models"])
def test_every_command_has_help(cmd: str) -> None:
    out = _ok([cmd, "--help"]).output
    assert "Usage" in out and cmd in out


def test_detect_sample_through_the_installed_entry_point(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("facepoints")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "facepoints.cli"]
    proc = subprocess.run(cmd + ["detect", "--sample", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 face(s) found" in proc.stdout and str(tmp_path / "results.json") in proc.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    (face,) = res["images"][0]["faces"]
    pts = np.array(face["points"])
    assert pts.shape == (68, 2)
    x0, y0, x1, y1 = face["box"]
    inside = (pts[:, 0] > x0 - 0.2 * (x1 - x0)) & (pts[:, 0] < x1 + 0.2 * (x1 - x0))
    assert inside.all()
    # the astronaut's eyes: image-left eye (36-41) left of the image-right eye (42-47), above the mouth
    assert pts[36:42, 0].mean() < pts[42:48, 0].mean() and pts[36:48, 1].mean() < pts[48:68, 1].mean()
    png = Image.open(tmp_path / "astronaut_points.png")
    assert png.size == Image.open(sample_image_path()).size


def test_detect_folder_reports_bad_files_and_faceless_images(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_image_path(), folder / "good.jpg")
    (folder / "text.jpg").write_text("not an image")
    data = sample_image_path().read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(folder / "blank.png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = _ok(["detect", folder, "--out", tmp_path / "out", "--format", "json"]).output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    by_name = {Path(r["file"]).name: r for r in res["images"]}
    assert len(by_name["good.jpg"]["faces"]) == 1
    assert by_name["blank.png"]["faces"] == [] and any("blank.png" in f for f in res["no_faces"])
    skipped = {Path(s["file"]).name for s in res["skipped"]}
    assert {"text.jpg", "truncated.jpg"} <= skipped
    assert "skipped" in out and "no face found in 1 image" in out


def test_detect_empty_folder_and_missing_path_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["detect", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "holds no images" in result.output
    result = runner.invoke(app, ["detect", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_detect_jsonl_streams_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        shutil.copy(sample_image_path(), folder / f"img{i}.jpg")
    _ok(["detect", folder / "img0.jpg", "--out", tmp_path / "out", "--format", "jsonl", "--no-draw"])
    out = _ok(["detect", folder, "--out", tmp_path / "out", "--format", "jsonl", "--resume", "--no-draw"]).output
    assert "1 already done" in out
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(Path(r["file"]).name for r in lines) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    _ok(["detect", folder, "--out", tmp_path / "csv", "--format", "csv", "--no-draw"])
    rows = (tmp_path / "csv" / "results.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 4 and header[:11] == ["file", "face", "width", "height", "box_x0", "box_y0", "box_x1",
                                             "box_y1", "detection_score", "face_score", "doubtful"]
    assert header[11:14] == ["p0_x", "p0_y", "p0_score"] and header[-1] == "error"
    assert len(set(header)) == len(header) == 11 + 68 * 3 + 1  # unique names: pandas reads no "x0.1"
    assert all(len(r.split(",")) == len(header) for r in rows)


def test_train_export_evaluate_detect_end_to_end(tmp_path: Path) -> None:
    data = _pts_dataset(tmp_path / "data", n=16)
    run = tmp_path / "run"
    _ok(["train", ROOT / "configs" / "seed_baseline.yaml", "-o", f"data.train=[{{path: {data}, format: ibug-pts}}]",
         "-o", "data.val_fraction=0.25", "-o", f"out_dir={run}", "-o", "model.input_size=32",
         "-o", "model.kwargs={widths: [8, 16], hidden: [32]}", "-o", "optim.epochs=2", "-o", "workers=0"])
    assert (run / "best.pt").exists() and (run / "history.png").exists()
    out = _ok(["export", run / "best.pt", "--out", tmp_path / "tiny.onnx", "--name", "tiny"]).output
    diff = float(re.search(r"= ([0-9.e+-]+) px", out).group(1))
    assert diff < 1e-4
    for model in (run / "best.pt", tmp_path / "tiny.onnx"):
        ev = tmp_path / f"eval_{model.suffix[1:]}"
        out = _ok(["evaluate", model, data, "--out", ev]).output
        assert re.search(r"^\| \S+ \| data \| 16 \|", out, re.M), out  # the table row of this dataset
        report = json.loads((ev / "report.json").read_text())
        assert report["results"][0]["n_faces"] == 16
        assert list((ev / "data").glob("*_ced.png")) and list((ev / "data").glob("*_extremes.png"))
    r_pt = json.loads((tmp_path / "eval_pt" / "report.json").read_text())["results"][0]["nme_mean"]
    r_onnx = json.loads((tmp_path / "eval_onnx" / "report.json").read_text())["results"][0]["nme_mean"]
    assert abs(r_pt - r_onnx) < 1e-3  # torch and the onnx runtime share one preprocessing path
    _ok(["augment-preview", data, "--out", tmp_path / "prev.png", "--n", "4"])
    assert (tmp_path / "prev.png").stat().st_size > 1000
    photo = sorted(data.glob("*.png"))[0]
    _ok(["detect", photo, "--model", tmp_path / "tiny.onnx", "--out", tmp_path / "det", "--no-draw"])
    results = json.loads((tmp_path / "det" / "results.json").read_text())
    assert results["model"] == "tiny" and [Path(r["file"]).name for r in results["images"]] == [photo.name]


def test_schemes_and_models_listing() -> None:
    out = _ok(["schemes"]).output
    assert "ibug68: 68 points, errors normalised by points (36, 45)" in out
    assert "aflw19: 19 points, errors normalised by the face box" in out
    listing = _ok(["models"]).output
    assert "default: heatmap ibug68 input 96px int8" in listing  # the shipped default is the quantised export
    assert "seed_baseline: baseline ibug68 input 64px float32" in listing


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", readme)
    assert len(commands) == 2, "the Quick start has exactly two commands"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
    assert "facepoints detect --sample" in commands[0]


@pytest.mark.parametrize("args,message", [
    (["detect", "--sample", "--model", "/etc/passwd"], "error: /etc/passwd is not an .onnx model"),
    (["pose", "--model", "nope"], "error: no model named 'nope'"),
    (["detect", "--sample", "--out", "{file}"], "is a file, not a folder"),
    (["align", "--out", "{file}"], "is a file, not a folder"),
])
def test_user_mistakes_print_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    file = tmp_path / "results.txt"
    file.write_text("x")
    args = [a.replace("{file}", str(file)) for a in args]
    if args[0] in ("pose", "align"):
        args.insert(1, str(sample_image_path()))
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch) -> None:
    args = ["detect", "--sample", "--model", "/etc/passwd", "--out", str(tmp_path)]
    result = runner.invoke(app, ["--debug", *args])
    assert result.exit_code != 0 and type(result.exception).__name__ == "ModelError"
    monkeypatch.setenv("FACEPOINTS_DEBUG", "1")
    assert type(runner.invoke(app, args).exception).__name__ == "ModelError"
    proc = subprocess.run([sys.executable, "-m", "facepoints.cli", *args, "--debug"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in __import__("os").environ.items()
                                            if k != "FACEPOINTS_DEBUG"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr  # --debug after the command works too


def test_default_output_folders_are_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    defaults = {"detect": "facepoints-out", "align": "facepoints-align", "pose": "facepoints-pose",
                "expression": "facepoints-expression", "ar": "facepoints-ar", "evaluate": "facepoints-eval"}
    for folder in defaults.values():
        assert f"{folder}/" in ignored or "facepoints-*/" in ignored, folder
    assert "augment-preview.png" in ignored
