"""The face detector's and verifier's commands: ``train-detector``, ``export-detector``, ``evaluate-detector``,
``train-verifier``, ``export-verifier``.

Registered on the one ``facepoints`` app (``facepoints.cli``), kept apart so the CLI module stays readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facepoints.cli import app


@app.command("train-detector")
def train_detector(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/detector_lean.yaml.")],
    override: Annotated[Optional[list[str]], typer.Option(
        "--override", "-o", help="key.sub=value; repeatable.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from out_dir/last.pt.")] = False,
) -> None:
    """Train the face detector (composed scenes, progress, checkpoint every epoch, config beside them)."""
    from facepoints.detector_train import load_detector_config
    from facepoints.detector_train import train_detector as run

    typer.echo(f"best checkpoint: {run(load_detector_config(config, override or []), resume=resume)}")


@app.command("export-detector")
def export_detector(
    checkpoint: Annotated[Path, typer.Argument(help="A .pt checkpoint from `facepoints train-detector`.")],
    out: Annotated[Path, typer.Option(help="Output .onnx (model card .json beside it).")] = Path("detector.onnx"),
) -> None:
    """Export the detector to ONNX, check it against torch, fit its box map on training photos."""
    from facepoints.detector_export import export_detector as run

    typer.echo(f"wrote {run(checkpoint, out)} and its sidecar")


@app.command("evaluate-detector")
def evaluate_detector(
    detector: Annotated[str, typer.Argument(help="facepoints, haar, dlib, or a detector .onnx file.")],
    annotations: Annotated[Path, typer.Argument(help="WIDER FACE annotation file (wider_face_val_bbx_gt.txt, ...).")],
    images: Annotated[Optional[Path], typer.Option(help="Folder the listed image paths start from.")] = None,
    out: Annotated[Path, typer.Option(
        help="Folder for the JSON report and the PR plot.")] = Path("facepoints-detector"),
    fp_budget: Annotated[float, typer.Option(
        min=0.0, help="False detections per photo for the fixed-budget recall.")] = 0.05,
) -> None:
    """Recall at the default threshold and at a false-positive budget, AP, a PR plot and ms per photo."""
    from facepoints.batch import prepare_out_dir
    from facepoints.detectors import DetectorError, build_detector
    from facepoints.detectors.evaluate import (
        PR_FLOOR,
        mistakes_grid,
        photos_from_wider,
        pr_plot,
        run_detector,
        write_json,
    )

    if images is not None and not images.is_dir():
        raise typer.BadParameter(f"--images {images}: no such folder")
    is_file = detector.endswith(".onnx")
    kw = {"model": detector} if is_file else {}
    try:
        if is_file or detector == "facepoints":
            det = build_detector("facepoints", threshold=PR_FLOOR, **kw)
            default = build_detector("facepoints", **kw).score_threshold
        else:
            det, default = build_detector(detector), 0.0
    except DetectorError as e:
        raise typer.BadParameter(str(e)) from None
    out = prepare_out_dir(out)  # an --out that is a file fails before any photo is read
    photos, skipped = photos_from_wider(annotations, images)
    for file, reason in skipped:
        typer.echo(f"skipped {file}: {reason}", err=True)
    if not photos:
        raise typer.BadParameter(f"none of the photos listed in {annotations} could be read")
    run = run_detector(Path(detector).stem, det, photos)
    report = run.report(default, fp_budget)
    write_json({**report, "skipped": [{"file": f, "reason": r} for f, r in skipped]}, out / "detector_eval.json")
    pr_plot([run], out / "detector_pr.png", annotations.name)
    mistakes_grid(run, photos, default, out / "detector_mistakes.png")
    for k, v in report.items():
        typer.echo(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    typer.echo(f"report, PR plot and a picture of the mistakes (detector_mistakes.png) in {out}")


@app.command("train-verifier")
def train_verifier(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/verifier.yaml.")],
    override: Annotated[Optional[list[str]], typer.Option(
        "--override", "-o", help="key.sub=value; repeatable.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from out_dir/last.pt.")] = False,
) -> None:
    """Train the face verifier on the detector's own candidates (mined once, then cached beside the run)."""
    from facepoints.verifier_train import load_verifier_config
    from facepoints.verifier_train import train_verifier as run

    typer.echo(f"best checkpoint: {run(load_verifier_config(config, override or []), resume=resume)}")


@app.command("export-verifier")
def export_verifier(
    checkpoint: Annotated[Path, typer.Argument(help="A .pt checkpoint from `facepoints train-verifier`.")],
    out: Annotated[Path, typer.Option(help="Output .onnx (card .json beside it).")] = Path("verifier.onnx"),
) -> None:
    """Export the verifier to ONNX and check it against torch."""
    from facepoints.verifier_train import export_verifier as run

    typer.echo(f"wrote {run(checkpoint, out)} and its card")
