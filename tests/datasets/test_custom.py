"""Your own points: points-csv and points-json in your YAML scheme."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepoints.datasets import (
    DataError,
    DatasetSpec,
    detect_format,
    load_dataset,
    load_points_csv,
)
from facepoints.schemes import load_scheme
from tests.datasets.builders import SCHEME_YAML, custom_data, save_png

ROOT = Path(__file__).resolve().parents[2]


def test_custom_csv_and_json(tmp_path: Path) -> None:
    scheme, csv_path, five = custom_data(tmp_path, n=6)
    assert detect_format(csv_path) == "points-csv" and detect_format(tmp_path / "faces.json") == "points-json"
    samples, report = load_dataset(DatasetSpec(str(csv_path), scheme=str(scheme)), progress=False)
    assert len(samples) == 6 and samples[0].scheme == "my5"
    np.testing.assert_allclose(samples[3].points, five[3], atol=1e-3)
    assert samples[0].visible.tolist() == [True, True, True, False, True] and samples[1].visible.all()
    assert [s.split for s in samples] == ["test"] + ["train"] * 5
    assert [s.attributes["glasses"] for s in samples] == [True, False, False, True, False, False]
    assert len(report.occluded_points) == 2
    js, _ = load_dataset(DatasetSpec(str(tmp_path / "faces.json"), scheme=str(scheme)), progress=False)
    for a, b in zip(js, samples):
        np.testing.assert_allclose(a.points, b.points, atol=1e-3)
        assert a.visible.tolist() == b.visible.tolist() and a.attributes == b.attributes
    np.testing.assert_allclose(js[2].box[2:] - js[2].box[:2], [64, 64])
    assert (js[2].box[:2] <= five[2].min(0)).all() and samples[2].box is None
    test_only, _ = load_dataset(DatasetSpec(f"{csv_path}@test", scheme=str(scheme)), progress=False)
    assert len(test_only) == 1
    with pytest.raises(DataError, match="scheme"):  # no scheme given and none beside the file
        load_dataset(str(csv_path), progress=False)
    (tmp_path / "faces.yaml").write_text(SCHEME_YAML)  # <stem>.yaml beside the points names the scheme
    assert load_dataset(str(csv_path), progress=False)[0][0].scheme == "my5"
    with pytest.raises(DataError, match="eye_image_left_x.*'five'"):
        load_points_csv(csv_path, scheme="five", progress=False)


def test_occluded_points_leave_the_loss(tmp_path: Path) -> None:
    from facepoints.train import LandmarkDataset, TrainConfig

    scheme, csv_path, _ = custom_data(tmp_path, n=4)
    samples, _ = load_dataset(DatasetSpec(str(csv_path), scheme=str(scheme)), progress=False)
    cfg = TrainConfig()
    cfg.model.input_size = 32
    _, target, mask, _, _ = LandmarkDataset(samples, cfg, load_scheme(scheme), train=False)[0]
    assert mask.tolist() == [True, True, True, False, True] and float(target[3].abs().sum()) == 0.0
    assert LandmarkDataset(samples, cfg, load_scheme(scheme), train=False)[1][2].all()


def test_readme_custom_format_examples_load(tmp_path: Path) -> None:
    """The README's scheme, CSV and JSON examples are the format the loaders read."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Other datasets and custom point schemes"):text.index("## Training")]
    yaml_block = section[section.index("# my_scheme.yaml"):]
    (tmp_path / "my_scheme.yaml").write_text(yaml_block[:yaml_block.index("```")])
    csv_block = section[section.index("image,eye_left_x"):]
    (tmp_path / "faces.csv").write_text(csv_block[:csv_block.index("```")])
    json_text = section[section.index('{"faces"'):section.index("; only `image`")].replace("`", "")
    (tmp_path / "faces.json").write_text(json_text)
    for name in ("a.jpg", "b.jpg"):
        save_png(tmp_path / "photos" / name, w=200, h=200)
    scheme = str(tmp_path / "my_scheme.yaml")
    assert load_scheme(scheme).flip_permutation().tolist() == [1, 0, 2, 3]
    rows, _ = load_dataset(DatasetSpec(str(tmp_path / "faces.csv"), scheme=scheme), progress=False)
    assert [s.split for s in rows] == ["train", "test"] and rows[1].mask.tolist() == [True, True, True, False]
    np.testing.assert_allclose(rows[0].points[3], [122.0, 160.4], atol=1e-4)
    faces, _ = load_dataset(DatasetSpec(str(tmp_path / "faces.json"), scheme=scheme), progress=False)
    assert faces[0].visible.tolist() == [True, True, True, False] and faces[0].attributes == {"glasses": True}
    assert faces[0].group == "anna" and faces[0].box.tolist() == [80, 60, 160, 170]
