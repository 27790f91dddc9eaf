"""The ``facepoints`` command line. Thin: each command parses options and calls the library.

Torch-only commands (train, export, evaluating a .pt checkpoint) import torch
lazily, so the base install's commands work without it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Facial keypoints: detect, train, evaluate and export landmark models.")

SAMPLE_IMAGE = "astronaut.jpg"


def sample_image_path() -> Path:
    """The public-domain sample face that ships with the package (NASA photo of Eileen Collins)."""
    return Path(str(resources.files("facepoints") / "assets" / SAMPLE_IMAGE))


@app.command()
def detect(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Images and/or folders of images.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder for annotated images and results.")] = Path("facepoints-out"),
    model: Annotated[Optional[str], typer.Option(help="Model name or .onnx path; default: the shipped model.")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Run on the sample face that ships with facepoints.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="json (one file), jsonl (streamed, resumable) or csv.")] = "json",
    resume: Annotated[bool, typer.Option(help="With jsonl: skip images already in the results file.")] = False,
    draw: Annotated[bool, typer.Option(help="Write annotated images.")] = True,
    recursive: Annotated[bool, typer.Option(help="Search folders recursively.")] = True,
) -> None:
    """Detect faces and their keypoints; write annotated images and every face's box and points."""
    from facepoints.jobs import run_detect

    inputs = list(paths or [])
    if sample:
        inputs.append(sample_image_path())
    if not inputs:
        raise typer.BadParameter("give image or folder paths, or --sample")
    if fmt not in ("json", "jsonl", "csv"):
        raise typer.BadParameter("--format must be json, jsonl or csv")
    summary = run_detect(inputs, out, model=model, fmt=fmt, resume=resume, draw=draw, recursive=recursive)
    typer.echo(summary.text())
    if summary.images_ok == 0:
        raise typer.Exit(code=1)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/seed_baseline.yaml.")],
    override: Annotated[Optional[list[str]], typer.Option("--override", "-o", help="key.sub=value; repeatable.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from out_dir/last.pt.")] = False,
) -> None:
    """Train a landmark model from a config (progress, CSV/PNG logs, atomic checkpoints)."""
    from facepoints.train import load_train_config, train as run_train

    cfg = load_train_config(config, override or [])
    best = run_train(cfg, resume=resume)
    typer.echo(f"best checkpoint: {best}")


@app.command()
def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="A .pt checkpoint, an .onnx model, or a shipped model name.")],
    datasets: Annotated[list[str], typer.Argument(help="Dataset paths (CSV or folder of .pts), format detected.")],
    out: Annotated[Path, typer.Option(help="Folder for the report, CED plot and best/worst grids.")] = Path("facepoints-eval"),
    name: Annotated[Optional[str], typer.Option(help="Method name in the tables.")] = None,
) -> None:
    """NME, failure rate, AUC, per-region NME, CED plot and best/worst faces, boxes = tight ground-truth boxes."""
    from facepoints.jobs import evaluate_model

    results = evaluate_model(checkpoint, datasets, out, name=name)
    from facepoints.evaluate import markdown_table

    typer.echo(markdown_table(results))
    typer.echo(f"report written to {out}")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A .pt checkpoint from `facepoints train`.")],
    out: Annotated[Optional[Path], typer.Option(help="Output .onnx path (sidecar .json beside it).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name stored in the sidecar.")] = None,
) -> None:
    """Export a checkpoint to ONNX for the torch-free runtime, and check it against torch."""
    from facepoints.export import compare_with_onnx, export_onnx

    target = out or checkpoint.with_suffix(".onnx")
    path = export_onnx(checkpoint, target, name=name)
    diff = compare_with_onnx(checkpoint, path)
    typer.echo(f"wrote {path} and {path.with_suffix('.json')}; max |torch - onnx| = {diff:.2e} px")


@app.command("augment-preview")
def augment_preview(
    dataset: Annotated[str, typer.Argument(help="Dataset path (CSV or folder of .pts).")],
    config: Annotated[Optional[Path], typer.Option(help="Training config whose augmentation to show.")] = None,
    override: Annotated[Optional[list[str]], typer.Option("--override", "-o")] = None,
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("augment-preview.png"),
    n: Annotated[int, typer.Option(help="How many samples.")] = 16,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Save a grid of augmented faces with their points, to check that points follow the pixels."""
    from facepoints.augment import preview_grid
    from facepoints.data import load_dataset
    from facepoints.schemes import load_scheme
    from facepoints.train import load_train_config

    cfg = load_train_config(config, override or [])
    samples, report = load_dataset(dataset, policy=cfg.data.policy)
    if not samples:
        raise typer.BadParameter(f"no usable faces in {dataset}:\n{report.summary()}")
    path = preview_grid(samples[: max(n * 4, n)], cfg.augment, load_scheme(samples[0].scheme), out, n=n,
                        size=cfg.model.input_size, context=cfg.model.context, seed=seed)
    typer.echo(f"wrote {path}")


@app.command()
def schemes() -> None:
    """List the built-in point schemes."""
    from facepoints.schemes import builtin_schemes, load_scheme

    for name in builtin_schemes():
        s = load_scheme(name)
        typer.echo(f"{name}: {s.num_points} points, normalised by {s.normalise}; {s.description}")


@app.command()
def models() -> None:
    """List the models that ship with the package."""
    from facepoints.inference import available_models, model_dir

    for name in available_models():
        meta = json.loads((model_dir() / f"{name}.json").read_text(encoding="utf-8"))
        typer.echo(f"{name}: {meta.get('model')} {meta['scheme']['name']} input {meta['input_size']}px; "
                   f"{meta.get('provenance', '')}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
