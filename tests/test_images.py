"""Reading users' photos: one format list, a pixel limit read from the header, reduced decoding, folder scans."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepoints.cli import sample_image_path
from facepoints.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    decode_image,
    iter_images,
    read_image,
)
from facepoints.inference import load
from facepoints.testing.photos import exif_rotated
from tests.helpers import big_jpeg, decompression_bomb


def test_the_default_pixel_limit_is_the_services(tmp_path: Path) -> None:
    from facepoints.serve import Limits

    assert DEFAULT_MAX_PIXELS == Limits().max_pixels


def test_pixel_limit_is_read_from_the_header_and_can_be_raised(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("L", (4000, 3000), 128).save(path)  # 12 MP, a few KB on disk
    with pytest.raises(ImageError, match=r"4000 x 3000 = 12,000,000 pixels, over the limit of 10,000,000"):
        read_image(path, max_pixels=10_000_000)
    assert read_image(path, max_pixels=None).shape == (3000, 4000, 3)
    model = load(max_pixels=10_000_000)
    with pytest.raises(ImageError, match="max-megapixels"):
        model.detect(path)
    assert load(max_pixels=13_000_000).detect(path) == []


def test_a_png_bomb_under_pillows_own_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    decompression_bomb(path, side=12000)  # 144 MP: below Pillow's 178 MP bomb error, 2.6 GB RSS before the fix
    with pytest.raises(ImageError, match="over the limit of 50,000,000"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["GIF", "ICO", "PPM"])
def test_formats_the_service_refuses_are_refused_by_the_library_too(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.open(sample_image_path()).convert("RGB").resize((64, 64)).save(path, format=fmt)
    with pytest.raises(ImageError, match=f"{fmt} images are not supported"):
        read_image(path)


def test_large_jpegs_decode_reduced_and_points_map_back(tmp_path: Path) -> None:
    model = load(detector="haar")  # looks at 1024 px at most, so a 33 MP photo decodes at half size
    path = big_jpeg(tmp_path / "big.jpg", factor=8, copies=2)  # a 8192 x 4096 panorama of two sample faces
    full = decode_image(path)
    reduced = model.read(path)
    assert full.scale == 1.0 and full.rgb.shape == (4096, 8192, 3)
    assert reduced.size == (8192, 4096) and reduced.scale == 2.0 and reduced.rgb.shape == (2048, 4096, 3)
    (small,) = model.detect(sample_image_path())
    big = sorted(model.detect(path), key=lambda f: f.box[0])  # decoded reduced, points in the original's pixels
    assert len(big) == 2
    for i, face in enumerate(big):
        expected = (small.points + 0.5 + [512 * i, 0]) * 8 - 0.5
        eyes = np.linalg.norm(expected[36] - expected[45])
        assert np.linalg.norm(face.points - expected, axis=1).mean() < 0.03 * eyes
    assert np.allclose(reduced.to_original([[-0.5, -0.5]]), [[-0.5, -0.5]])


def test_a_png_over_the_reduce_size_is_reduced_after_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.open(sample_image_path()).convert("RGB").resize((2560, 2560)).save(path)
    d = decode_image(path, min_side=1000)
    assert d.scale == pytest.approx(2.0) and d.rgb.shape == (1280, 1280, 3) and d.size == (2560, 2560)


def test_exif_turned_photos_report_the_upright_size(tmp_path: Path) -> None:
    crop = Image.open(sample_image_path()).convert("RGB").crop((0, 0, 512, 400))
    exif_rotated(crop, 6, tmp_path / "turned.jpg")
    d = decode_image(tmp_path / "turned.jpg", min_side=100)
    assert d.size == (512, 400) and d.rgb.shape[1] > d.rgb.shape[0]


def test_a_folder_scan_lists_every_file_it_does_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    img = Image.open(sample_image_path()).convert("RGB").resize((64, 64))
    img.save(folder / "a.jpg")
    img.save(folder / "sub" / "b.png")
    img.save(folder / "anim.gif")
    (folder / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (folder / "notes.txt").write_text("x")
    os.symlink(tmp_path / "gone.jpg", folder / "dangling.jpg")
    os.mkfifo(folder / "pipe.jpg")  # opening it would wait forever
    found = {p.name: why for p, why in iter_images([folder])}
    assert found["a.jpg"] is None and found["b.png"] is None
    assert "not a supported image (suffix .gif" in found["anim.gif"]
    assert "suffix .heic" in found["phone.heic"] and "suffix .txt" in found["notes.txt"]
    assert found["dangling.jpg"] == "dangling symbolic link"
    assert found["pipe.jpg"].startswith("not a regular file")
    assert len(found) == 7
    assert {p.name for p, _ in iter_images([folder], recursive=False)} == found.keys() - {"b.png"}
    (named,) = list(iter_images([folder / "dangling.jpg"]))
    assert named[1] == "dangling symbolic link"
    assert list(iter_images([folder / "pipe.jpg"]))[0][1].startswith("not a regular file")


def test_uploads_decode_from_bytes_with_the_same_checks(tmp_path: Path) -> None:
    import io

    data = sample_image_path().read_bytes()
    d = decode_image(io.BytesIO(data))
    assert d.size == (512, 512) and d.rgb.shape == (512, 512, 3)
    with pytest.raises(ImageError, match="cannot read image the upload: .*over the limit of 1,000"):
        decode_image(io.BytesIO(data), max_pixels=1000)
    with pytest.raises(ImageError, match="the upload"):
        decode_image(io.BytesIO(data[: len(data) // 2]))


def test_the_cli_pixel_limit_skips_the_photo_with_its_reason(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from facepoints.cli import app

    result = CliRunner().invoke(app, ["detect", "--sample", "--max-megapixels", "0.1", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "512 x 512 = 262,144 pixels, over the limit of 100,000" in result.output
    assert CliRunner().invoke(app, ["detect", "--sample", "--max-megapixels", "0.3", "--out",
                                    str(tmp_path)]).exit_code == 0
