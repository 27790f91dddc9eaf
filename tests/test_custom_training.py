"""A custom scheme trained end to end from its YAML file, and refused without a flip table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facepoints.datasets import DatasetSpec, load_dataset
from facepoints.schemes import SchemeError
from tests.datasets.builders import SCHEME_YAML, custom_data

ROOT = Path(__file__).resolve().parents[1]


def test_custom_scheme_trains_from_yaml_and_evaluates(tmp_path: Path) -> None:
    """`facepoints train CONFIG --scheme my_scheme.yaml` on custom CSV points, then evaluation on the same
    faces as JSON (read in the model's scheme), with visible-only NME and the attribute subset."""
    import torch

    from facepoints.cli import app
    from facepoints.geometry import tight_box
    from facepoints.inference import load_any
    from facepoints.jobs import evaluate_model

    scheme, csv_path, _ = custom_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", str(ROOT / "configs" / "seed_baseline.yaml"), "--scheme", str(scheme),
            "-o", f"data.train=[{{path: {csv_path}@train, format: points-csv}}]",
            "-o", f"data.val=[{{path: {csv_path}@test}}]", "-o", f"out_dir={run}",
            "-o", "model.input_size=32", "-o", "model.kwargs={widths: [8, 16], hidden: [32]}",
            "-o", "optim.batch_size=8", "-o", "optim.epochs=2", "-o", "workers=0", "-o", "threads=1",
            "-o", "augment.blur_p=0", "-o", "name=five_points"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert ck["scheme"]["name"] == "my5" and ck["scheme"]["points"][2] == "nose"
    assert ck["config"]["data"]["scheme"] == str(scheme.resolve())
    assert "train faces: 20, validation faces: 4" in result.output and "occluded" in result.output

    samples, _ = load_dataset(DatasetSpec(str(csv_path), scheme=str(scheme)), progress=False)
    model = load_any(run / "best.pt")
    pred = np.stack([model.landmarks(s.image, tight_box(s.points)[None])[0] for s in samples[:3]])
    sch = model.scheme
    assert pred.shape == (3, 5, 2) and sch.name == "my5" and sch.flip_permutation().tolist() == [1, 0, 2, 4, 3]

    results = evaluate_model(str(run / "best.pt"), [str(tmp_path / "data" / "faces.json")], tmp_path / "eval")
    assert [r.name for r in results] == ["five_points", "five_points [glasses]"]
    full, glasses = results
    assert full.n_faces == 24 and glasses.n_faces == 8 and full.scheme == "my5"
    assert np.isfinite(full.nme_mean) and np.isfinite(full.nme_visible_mean)
    assert full.errors_visible is not None and not np.allclose(full.errors_visible, full.errors)
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "NME vis %" in report and "five_points [glasses]" in report and "eye_left" in report
    assert (tmp_path / "eval" / "faces" / "subsets_ced.png").stat().st_size > 2000


def test_flip_without_flip_table_is_refused(tmp_path: Path) -> None:
    from facepoints.cli import app
    from facepoints.train import load_train_config, train

    _, csv_path, _ = custom_data(tmp_path / "data", n=8)
    noflip = tmp_path / "noflip.yaml"
    noflip.write_text(SCHEME_YAML.replace("name: my5", "name: noflip").replace("flip_pairs: [[0, 1], [3, 4]]\n", ""))
    base = ["-o", f"data.train=[{{path: {csv_path}, format: points-csv}}]", "-o", f"out_dir={tmp_path / 'run'}",
            "-o", "model.input_size=32", "-o", "optim.epochs=1", "-o", "workers=0", "-o", "data.val_fraction=0.5"]
    result = CliRunner().invoke(app, ["train", str(ROOT / "configs" / "seed_baseline.yaml"), "--scheme", str(noflip),
                                      *base])
    assert result.exit_code != 0
    assert "no flip table" in result.output and "augment.flip" in result.output
    assert not (tmp_path / "run" / "cleaning_report.txt").exists()  # refused before reading any data
    cfg = load_train_config(ROOT / "configs" / "seed_baseline.yaml", [b for b in base if b != "-o"]
                            + [f"data.scheme={noflip}"])
    with pytest.raises(SchemeError, match="no flip table.*augment.flip"):
        train(cfg, progress=False)
