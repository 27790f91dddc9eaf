"""User mistakes in `train` and `evaluate` end the command with a non-zero exit and a message naming the mistake.

(The command line prints the message as one line with exit code 2; ``--debug`` shows the traceback.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from facepoints.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _said(result) -> str:
    """What the user was told: the output, or the message of the error the command ended with."""
    return result.output + ("" if result.exception is None else str(result.exception))


@pytest.mark.parametrize("args,message", [
    (["train", "no/such/config.yaml"], "config file no/such/config.yaml does not exist"),
    (["train", str(ROOT / "configs" / "seed_baseline.yaml"), "-o", "optim.lrr=1"], "unknown key(s) ['lrr']"),
    (["train", str(ROOT / "configs" / "seed_baseline.yaml"), "-o", "optim.epochs=lots"], "expected int, got 'lots'"),
    (["train", str(ROOT / "configs" / "seed_baseline.yaml"), "-o", "optim.epochs=-1"],
     "optim.epochs must be at least 1, not -1"),
])
def test_train_mistakes_are_named(args: list[str], message: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and message in _said(result)
    assert "best checkpoint" not in result.output and not list(tmp_path.rglob("best.pt"))


def test_train_without_usable_validation_faces_names_it_and_claims_no_checkpoint(tmp_path: Path) -> None:
    import numpy as np

    from tests.conftest import synthetic_face
    from tests.training_builders import youtube_csv

    good = youtube_csv(tmp_path / "train", [synthetic_face(128, seed=i)[1] for i in range(6)])
    flat = youtube_csv(tmp_path / "val", [np.full((68, 2), 50.0)] * 4)
    args = ["train", str(ROOT / "configs" / "seed_baseline.yaml"), "-o", f"data.train=[{{path: {good}}}]",
            "-o", f"data.val=[{{path: {flat}}}]", "-o", f"out_dir={tmp_path / 'run'}", "-o", "optim.epochs=1",
            "-o", "workers=0", "-o", "model.input_size=32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "no usable validation faces" in _said(result)
    assert "best checkpoint" not in result.output and not (tmp_path / "run" / "best.pt").exists()


@pytest.mark.parametrize("content,message", [
    ("", "is empty"),
    ("," + ",".join(str(i) for i in range(136)) + "\n", "header but no rows"),
    ("file;x0;y0\na.png;1;2\n", "separated by ';'"),
])
def test_evaluate_refuses_csvs_it_cannot_read_by_name(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "faces.csv"
    path.write_text(content)
    result = CliRunner().invoke(app, ["evaluate", "default", str(path), "--out", str(tmp_path / "eval")])
    assert result.exit_code != 0 and message in _said(result) and str(path) in _said(result)


@pytest.mark.parametrize("args,message", [
    (["video", "clip.mp4", "out.txt"], "cannot write out.txt: use one of .avi"),
    (["video", "clip.mp4", "--jsonl", "v.jsonl", "--max-frames", "0"], "max_frames must be at least 1"),
    (["evaluate", "fast", "faces.csv", "--out", "taken"], "--out taken is a file, not a folder"),
    (["export", "model.onnx"], "is an exported ONNX model, not a training checkpoint"),
    (["detect", "clip.mp4", "--resume"], "--resume reads a streamed results file: add --format jsonl"),
    (["evaluate", "nosuchmodel", "faces.csv"], "no model named 'nosuchmodel'"),  # before the dataset is read
])
def test_usage_mistakes_exit_2_before_any_work(args: list[str], message: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("clip.mp4", "faces.csv", "taken", "model.onnx"):
        (tmp_path / name).write_text("x")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "BadParameter" not in result.output and "\n" not in result.output.strip()
