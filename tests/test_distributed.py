"""The Ray Data path on a local 2-CPU Ray instance: same faces as the single-process ``detect``, failures listed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI") == "true":  # CI installs the extra: a missing Ray must fail there, not skip
    import pyarrow.parquet as pq
    import ray
else:
    ray = pytest.importorskip("ray", reason='the Ray path needs the extra: pip install -e ".[ray]"')
    pq = pytest.importorskip("pyarrow.parquet")

import facepoints
from facepoints.distributed import FaceLandmarks, detect_to_parquet
from facepoints.inference import ImageError, read_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from a test run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _rotated_by_exif(src: Path, dst: Path) -> None:
    """The photo stored turned 90 degrees with EXIF orientation 6: upright only to readers that honour EXIF."""
    from PIL import Image

    with Image.open(src) as im:
        exif = Image.Exif()
        exif[0x0112] = 6
        im.transpose(Image.Transpose.ROTATE_90).save(dst, quality=95, exif=exif)


def _group_scenes(real_data: Path, count: int) -> list[Path]:
    """AFW scenes with at least two annotated faces, so that rows of several faces per photo are compared."""
    root = real_data / "300w-68" / "afw-scenes"
    lines = (root / "afw_scenes_bbx_gt.txt").read_text().split()
    found, i = [], 0
    while i < len(lines) and len(found) < count:
        name, n = lines[i], int(lines[i + 1])
        if n >= 2:
            found.append(root / name)
        i += 2 + 10 * n
    return found


@pytest.fixture(scope="module")
def photos(real_data: Path, tmp_path_factory) -> Path:
    """29 real photos (AFW scenes with several faces, YouTube frames, HELEN crops), an EXIF-rotated copy,
    and two files that are not images."""
    folder = tmp_path_factory.mktemp("photos")
    youtube = sorted((real_data / "youtube-faces-68" / "test").glob("*.jpg"))[:14]
    helen = sorted((real_data / "300w-68" / "helen" / "trainset").glob("*.jpg"))[:10]
    for i, src in enumerate(_group_scenes(real_data, 5) + youtube + helen):
        shutil.copy(src, folder / f"{i:02d}_{src.name}")
    _rotated_by_exif(youtube[0], folder / "rotated_exif.jpg")
    data = (folder / f"07_{youtube[2].name}").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.png").write_text("not an image\n")
    return folder


BAD = ("truncated.jpg", "notes.png")


@pytest.fixture(scope="module")
def expected(photos: Path) -> dict[str, tuple[tuple[int, int], list]]:
    """What the single-process path gives: photo name -> ((width, height), faces), from ``load().detect``."""
    model = facepoints.load()
    out = {}
    for p in sorted(photos.iterdir()):
        if p.name not in BAD:
            image = read_image(p)
            out[p.name] = ((image.shape[1], image.shape[0]), model.detect(image))
    return out


def _rows_by_name(out: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for r in pq.read_table(out).to_pylist():
        rows.setdefault(Path(r["file"]).name, []).append(r)
    return {f: sorted(rs, key=lambda r: -1 if r["face"] is None else r["face"]) for f, rs in rows.items()}


def _assert_same_faces(got: list[dict], size: tuple[int, int], want: list, name: str) -> None:
    """One photo's Parquet rows hold exactly the faces ``detect`` found, to float tolerance."""
    assert all(r["error"] is None for r in got), got[0]["error"]
    assert {(r["width"], r["height"]) for r in got} == {size}, name
    assert {r["faces"] for r in got} == {len(want)}, name
    if not want:
        assert len(got) == 1 and got[0]["face"] is None and got[0]["points"] is None, name
        return
    assert [r["face"] for r in got] == list(range(len(want))), name
    for r, f in zip(got, want):
        np.testing.assert_allclose(r["box"], f.box, atol=1e-3, err_msg=name)
        np.testing.assert_allclose(np.array(r["points"]), f.points, atol=1e-3, err_msg=name)
        np.testing.assert_allclose(r["scores"], f.scores, atol=1e-4, err_msg=name)
        assert r["detection_score"] == pytest.approx(f.detection_score), name


def test_ray_rows_equal_single_process_detect(local_ray, photos: Path, expected: dict, tmp_path: Path) -> None:
    out = tmp_path / "faces.parquet"
    summary = detect_to_parquet([str(photos)], str(out), concurrency=2, batch_size=4)
    rows = _rows_by_name(out)
    assert set(rows) == {p.name for p in photos.iterdir()}  # every photo has a row, none dropped
    for name, (size, faces) in expected.items():
        _assert_same_faces(rows[name], size, faces, name)
    n_faces = sum(len(f) for _, f in expected.values())
    assert sum(len(f) > 1 for _, f in expected.values()) >= 3  # several photos with several faces
    assert summary.faces == n_faces and summary.photos == len(expected) + len(BAD)
    assert sorted(Path(f).name for f in summary.no_faces) == sorted(n for n, (_, f) in expected.items() if not f)
    for name in BAD:
        (row,) = rows[name]
        with pytest.raises(ImageError) as single:
            read_image(photos / name)
        assert row["error"] == str(single.value)  # the reason `facepoints detect` gives
        assert row["face"] is None and row["faces"] is None
    assert dict(summary.failed) == {str(photos / n): rows[n][0]["error"] for n in BAD}


def test_read_images_recipe(local_ray, photos: Path, expected: dict, tmp_path: Path) -> None:
    """The read_images recipe gives the same rows on photos that Ray can decode and that carry no EXIF turn."""
    clean = tmp_path / "clean"
    clean.mkdir()
    names = [n for n in expected if n[0].isdigit()][::4]
    for n in names:
        shutil.copy(photos / n, clean / n)
    out = tmp_path / "recipe.parquet"
    (ray.data.read_images(str(clean), include_paths=True, mode="RGB")
        .map_batches(FaceLandmarks, fn_constructor_kwargs={"model": "default", "threads": 1},
                     compute=ray.data.ActorPoolStrategy(size=1), batch_size=4, num_cpus=1)
        .write_parquet(str(out)))
    rows = _rows_by_name(out)
    assert set(rows) == set(names)
    for n in names:
        _assert_same_faces(rows[n], *expected[n], n)


def test_import_needs_neither_ray_nor_torch() -> None:
    """The base install imports the module; Ray and torch are loaded only by whoever uses them."""
    code = ("import sys, facepoints.distributed; "
            "print(sorted(m for m in ('ray', 'torch', 'pyarrow') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_refuses_an_output_that_holds_files(photos: Path, tmp_path: Path) -> None:
    """Ray appends to a folder: the rows of two runs would mix, so a used folder is refused before any work."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-0.parquet").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite"):
        detect_to_parquet([str(photos)], str(out))
    assert (out / "part-0.parquet").read_bytes() == b"old"
