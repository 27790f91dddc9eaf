"""The photo commands (align, pose, expression, ar) over real photos, and the README's example."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.cli import app, sample_image_path
from facepoints.inference import read_image
from facepoints.schemes import load_scheme
from tests.helpers import changed as _changed

ROOT = Path(__file__).resolve().parents[2]
FLIP = load_scheme("ibug68").flip_permutation()
runner = CliRunner()


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize("cmd", ["align", "pose", "expression", "ar", "video"])
def test_app_commands_have_help(cmd: str) -> None:
    result = runner.invoke(app, [cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_photo_commands_on_a_real_photo_report_bad_and_faceless_files(tmp_path) -> None:
    photo = sample_image_path()
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 90, np.uint8))
    original = read_image(photo)
    for cmd, extra in (("align", []), ("pose", []), ("expression", []), ("ar", ["--effect", "moustache"])):
        out = tmp_path / cmd
        result = runner.invoke(app, [cmd, str(photo), str(bad), str(blank), "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert "broken.jpg" in result.output and "wall.png" in result.output and "no face" in result.output
        assert "1 face(s)" in result.output
    crop = read_image(tmp_path / "align" / "astronaut_face0.png")
    assert crop.shape == (112, 112, 3)
    poses = json.loads((tmp_path / "pose" / "pose.json").read_text())
    face = next(p for p in poses["photos"] if p["file"].endswith("astronaut.jpg"))["faces"][0]
    assert abs(face["yaw"]) < 30 and abs(face["roll"]) < 20
    assert read_image(tmp_path / "pose" / "astronaut_pose.png").shape == original.shape
    assert _changed(read_image(tmp_path / "ar" / "astronaut_moustache.png"), original).sum() > 200
    cues = json.loads((tmp_path / "expression" / "expression.json").read_text())
    assert any(p.get("faces") and "smile_width" in p["faces"][0] for p in cues["photos"])
    result = runner.invoke(app, ["ar", str(blank), "--out", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no face" in result.output
    result = runner.invoke(app, ["ar", str(photo), "--effect", "hat", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "glasses" in result.output


def _applications_sections() -> list[tuple[str, str, Path]]:
    """(name, text, picture folder) of every document that shows the applications example."""
    docs = (ROOT / "docs" / "applications.md").read_text(encoding="utf-8")
    out = [("docs/applications.md", docs[docs.index("## The applications"):], ROOT / "docs")]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if "## Applications" in readme:  # until the README links to docs/applications.md instead
        out.append(("README.md", readme[readme.index("## Applications"):readme.index("## Results")], ROOT))
    return out


def test_the_applications_example_runs_and_its_pictures_exist(tmp_path, two_face_video, monkeypatch) -> None:
    src, _ = two_face_video
    monkeypatch.chdir(tmp_path)
    for name, section, folder in _applications_sections():
        code = section[section.index("```python\n") + len("```python\n"):]
        code = code[:code.index("```")]
        code = code.replace('"photo.jpg"', repr(str(sample_image_path()))).replace('"in.mp4"', repr(str(src)))
        scope: dict = {}
        exec(compile(code, name, "exec"), scope)  # noqa: S102 - the document's own example
        assert scope["crop"].shape == (112, 112, 3) and scope["summary"].frames == 45
        assert (tmp_path / "out.mp4").is_file() and (tmp_path / "out.jsonl").is_file()
        pictures = [line.split("](")[1].rstrip(")") for line in section.splitlines() if line.startswith("![")]
        assert len(pictures) == 5
        for pic in pictures:
            assert (folder / pic).is_file(), f"{name}: {pic}"
