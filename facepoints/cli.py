"""The ``facepoints`` command line. Thin: each command parses options and calls the library.

Torch-only commands (train, export, evaluating a .pt checkpoint) import torch
lazily, so the base install's commands work without it. Any error a command
raises is printed as one line (exit code 2); ``--debug`` or
``FACEPOINTS_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from facepoints.errors import DEBUG_ENV, USER_ERROR_EXIT, debug_enabled, one_line


class _Commands(TyperGroup):
    """Every command's errors become one line and exit code 2, unless debugging."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, typer.Exit,
                typer.Abort):
            raise
        except Exception as e:  # the user gets one line, --debug the traceback
            if debug_enabled(bool((ctx.obj or {}).get("debug"))):
                raise
            typer.echo(f"{error_line(e)} (--debug shows the traceback)", err=True)
            raise typer.Exit(code=USER_ERROR_EXIT) from None


def error_line(e: BaseException) -> str:
    """A user's mistake as its message; other exceptions keep their type name, so a bug is recognisable."""
    if isinstance(e, typer.BadParameter):  # typer's own click: not caught as click's above; name the option
        return one_line(ValueError(e.format_message() if e.param is not None or e.param_hint else e.message))
    if isinstance(e, ValueError | OSError | LookupError):
        return one_line(e)
    return one_line(RuntimeError(f"{type(e).__name__}: {e}"))


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Facial keypoints: detect, train, evaluate and export landmark models.")

SAMPLE_IMAGE = "astronaut.jpg"
DetectorOption = Annotated[Optional[str], typer.Option(
    help="Face detector: facepoints (the project's CNN, default), haar or dlib (needs facepoints[dlib]).")]


def _check_detector(name: Optional[str]) -> None:
    from facepoints.detectors import DETECTORS

    if name is not None and name.lower() not in DETECTORS:
        raise typer.BadParameter(f"--detector must be one of {', '.join(DETECTORS)}")


@app.callback()
def _options(ctx: typer.Context, debug: Annotated[bool, typer.Option(
        "--debug", help=f"Show the traceback of an error (or set {DEBUG_ENV}=1).")] = False) -> None:
    ctx.obj = {"debug": debug}


def sample_image_path() -> Path:
    """The public-domain sample face that ships with the package (NASA photo of Eileen Collins)."""
    return Path(str(resources.files("facepoints") / "assets" / SAMPLE_IMAGE))


PhotoPaths = Annotated[list[Path], typer.Argument(help="Photos and/or folders of photos.")]
ModelOption = Annotated[Optional[str], typer.Option(
    help="Model name, .onnx path or .pt checkpoint; default: the shipped model.")]
FormatOption = Annotated[str, typer.Option("--format", help="json (one file), jsonl (streamed, resumable) or csv.")]
ResumeOption = Annotated[bool, typer.Option(help="With jsonl: skip photos already in the results file.")]
WorkersOption = Annotated[Optional[int], typer.Option(
    help="Processes, each with its own single-threaded model; default: one per core.")]
OrderedOption = Annotated[bool, typer.Option(
    "--ordered/--unordered", help="Results in input order, or as they finish.")]
MegapixelsOption = Annotated[float, typer.Option(help="Refuse photos over this many million pixels.")]
RecursiveOption = Annotated[bool, typer.Option(help="Search folders recursively.")]


def load_model(model: Optional[str], max_megapixels: float = 50.0, threads: Optional[int] = None, **kw):
    """The model for a command: shipped name, .onnx or .pt (``load_any``); ``kw`` (e.g. ``detector``) go to it."""
    from facepoints.inference import load_any

    if max_megapixels <= 0:
        raise typer.BadParameter("--max-megapixels must be > 0")
    return load_any(model, threads=threads, max_pixels=int(max_megapixels * 1e6), **kw)


def run_task(task, paths: list[Path], out: Path, model: Optional[str], *, fmt: str, resume: bool,
             workers: Optional[int], ordered: bool, max_megapixels: float, recursive: bool = True,
             model_kw: Optional[dict] = None):
    """The one batch runner behind detect and the photo apps; prints its summary."""
    from facepoints.batch import default_workers, run_batch
    from facepoints.results import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    if resume and fmt != "jsonl":
        raise typer.BadParameter("--resume reads a streamed results file: add --format jsonl")
    n = default_workers() if workers is None else workers
    if n < 1:
        raise typer.BadParameter("--workers must be at least 1")
    if n == 1:  # each worker is single-threaded, so --workers 1 is the one-core baseline
        import cv2

        cv2.setNumThreads(1)
    lm = load_model(model, max_megapixels, threads=1, **(model_kw or {}))
    summary = run_batch(paths, out, lm, task, fmt=fmt, resume=resume, recursive=recursive, workers=n,
                        ordered=ordered)
    typer.echo(summary.text())
    return summary


@app.command()
def detect(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Images and/or folders of images.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder for annotated images and results.")] = Path("facepoints-out"),
    model: ModelOption = None,
    sample: Annotated[bool, typer.Option(
        "--sample", help="Run on the sample face that ships with facepoints.")] = False,
    fmt: FormatOption = "json",
    resume: ResumeOption = False,
    draw: Annotated[bool, typer.Option(help="Write annotated images.")] = True,
    recursive: RecursiveOption = True,
    workers: WorkersOption = None,
    ordered: OrderedOption = True,
    max_megapixels: MegapixelsOption = 50.0,
    detector: DetectorOption = None,
    flip_average: Annotated[bool, typer.Option(
        help="Also run each face mirrored and average: lower error, twice the landmark time.")] = False,
) -> None:
    """Detect faces and their keypoints; write annotated images and every face's box and points."""
    from facepoints.batch import DetectTask

    inputs = list(paths or [])
    if sample:
        inputs.append(sample_image_path())
    if not inputs:
        raise typer.BadParameter("give image or folder paths, or --sample")
    _check_detector(detector)
    summary = run_task(DetectTask(draw), inputs, out, model, fmt=fmt, resume=resume, workers=workers,
                       ordered=ordered, max_megapixels=max_megapixels, recursive=recursive,
                       model_kw={"detector": detector, "flip_average": flip_average})
    if summary.images_ok == 0:
        raise typer.Exit(code=1)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/seed_baseline.yaml.")],
    override: Annotated[Optional[list[str]], typer.Option(
        "--override", "-o", help="key.sub=value; repeatable.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from out_dir/last.pt.")] = False,
    scheme: Annotated[Optional[str], typer.Option(
        help="Point scheme: a built-in name or your YAML scheme file (sets data.scheme).")] = None,
) -> None:
    """Train a landmark model from a config (progress, CSV/PNG logs, atomic checkpoints)."""
    from facepoints.augment import build_augmenter
    from facepoints.schemes import SchemeError, load_scheme
    from facepoints.train import load_train_config
    from facepoints.train import train as run_train

    cfg = load_train_config(config, override or [])
    if scheme is not None:
        cfg.data.scheme = str(Path(scheme).resolve()) if Path(scheme).is_file() else scheme
    try:  # before any data is read: a bad scheme or a flip without a flip table fails at once
        build_augmenter(cfg.augment, load_scheme(cfg.data.scheme))
    except SchemeError as e:
        raise typer.BadParameter(str(e), param_hint="--scheme / data.scheme") from None
    best = run_train(cfg, resume=resume)
    typer.echo(f"best checkpoint: {best}")


@app.command()
def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="A .pt checkpoint, an .onnx model, or a shipped model name.")],
    datasets: Annotated[list[str], typer.Argument(help="Dataset paths (CSV or folder of .pts), format detected.")],
    out: Annotated[Path, typer.Option(
        help="Folder for the report, CED plot and best/worst grids.")] = Path("facepoints-eval"),
    name: Annotated[Optional[str], typer.Option(help="Method name in the tables.")] = None,
) -> None:
    """NME, failure rate, AUC, per-region NME, CED plot and best/worst faces, boxes = tight ground-truth boxes."""
    from facepoints.jobs import evaluate_model

    results = evaluate_model(checkpoint, datasets, out, name=name)
    from facepoints.reports import markdown_table

    typer.echo(markdown_table(results))
    typer.echo(f"report written to {out}")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A .pt checkpoint from `facepoints train`.")],
    out: Annotated[Optional[Path], typer.Option(help="Output .onnx path (sidecar .json beside it).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name stored in the sidecar.")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Quantise backbone and decoder to int8 (~2x faster).")] = False,
    calibration: Annotated[Optional[str], typer.Option(
        help="Dataset whose faces set the int8 ranges (default: the run's first training set).")] = None,
) -> None:
    """Export a checkpoint to ONNX for the torch-free runtime, and check it against torch."""
    from facepoints.export import calibration_crops, compare_with_onnx, export_int8, export_onnx

    target = out or checkpoint.with_suffix(".onnx")
    if int8:
        crops = calibration_crops(checkpoint, 200 + 64, calibration)  # one read: 200 calibrate, the rest check
        n_cal = 200 if len(crops) > 200 else max(1, len(crops) - len(crops) // 4)  # small sets: hold a quarter out
        path = export_int8(checkpoint, target, name=name, calibration=calibration, crops=crops[:n_cal])
        faces = crops[n_cal:] if n_cal < len(crops) else crops
        diff = compare_with_onnx(checkpoint, path, inputs=faces)
        typer.echo(f"wrote {path} and {path.with_suffix('.json')}; int8 vs torch on {len(faces)} other real faces: "
                   f"max {diff:.2f} px at {faces.shape[-1]} px input")
    else:
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
    from facepoints.datasets import load_dataset
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
        norm = f"points {s.normalise}" if s.normalise_by == "points" else f"the face box ({s.normalise_by})"
        typer.echo(f"{name}: {s.num_points} points, errors normalised by {norm}; {s.description}")


@app.command()
def models() -> None:
    """List the models that ship with the package."""
    from facepoints.card import ModelCard
    from facepoints.inference import available_models, model_dir

    for name in available_models():
        card = ModelCard.for_model(model_dir() / f"{name}.onnx")
        precision = card.precision.split()[0]
        conventions = f", conventions {', '.join(card.conventions)}" if card.conventions else ""
        typer.echo(f"{name}: {card.model} {card.scheme['name']} input {card.input_size}px {precision}{conventions}; "
                   f"{card.provenance}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    model: Annotated[Optional[str], typer.Option(help="Default model: name or .onnx path.")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload, in MB.")] = 10.0,
    max_megapixels: Annotated[float, typer.Option(help="Largest accepted image, in millions of pixels.")] = 50.0,
    workers: Annotated[int, typer.Option(help="Images processed at once (CPU jobs); others wait their turn.")] = 2,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
    detector: DetectorOption = None,
) -> None:
    """Serve the web page (/) and the REST API (/v1/landmarks, /v1/render; docs at /docs)."""
    from facepoints.serve import Limits, run

    if max_upload_mb <= 0 or max_megapixels <= 0 or workers < 1:
        raise typer.BadParameter("--max-upload-mb and --max-megapixels must be > 0, --workers >= 1")
    limits = Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=int(max_megapixels * 1e6),
                    workers=workers)
    typer.echo(f"facepoints: serving on http://{host}:{port}/ (API docs at /docs); Ctrl+C stops")
    _check_detector(detector)
    run(host, port, model=model, limits=limits, log_level=log_level, detector=detector)


# ---------------------------------------------------------------- applications (facepoints.apps)


def _finish(summary) -> None:
    if summary.faces == 0:
        raise typer.Exit(code=1)


@app.command()
def align(
    paths: PhotoPaths,
    out: Annotated[Path, typer.Option(help="Folder for the crops and align.json.")] = Path("facepoints-align"),
    size: Annotated[int, typer.Option(help="Crop side in pixels (the ArcFace template is scaled to it).")] = 112,
    model: ModelOption = None, fmt: FormatOption = "json", resume: ResumeOption = False,
    workers: WorkersOption = None, ordered: OrderedOption = True, max_megapixels: MegapixelsOption = 50.0,
    detector: DetectorOption = None,
) -> None:
    """Face crops aligned for recognition: 5 points onto the ArcFace 112x112 template, one PNG per face."""
    from facepoints.apps.run import AlignTask

    if size < 8:
        raise typer.BadParameter("--size must be at least 8")
    _finish(run_task(AlignTask(size), paths, out, model, fmt=fmt, resume=resume, workers=workers, ordered=ordered,
                     max_megapixels=max_megapixels, model_kw={"detector": detector}))


@app.command()
def pose(
    paths: PhotoPaths,
    out: Annotated[Path, typer.Option(help="Folder for the pictures and pose.json.")] = Path("facepoints-pose"),
    model: ModelOption = None, fmt: FormatOption = "json", resume: ResumeOption = False,
    workers: WorkersOption = None, ordered: OrderedOption = True, max_megapixels: MegapixelsOption = 50.0,
    detector: DetectorOption = None,
) -> None:
    """Head pose of every face (yaw, pitch, roll in degrees; camera assumed: facepoints.apps.pose), axes drawn."""
    from facepoints.apps.run import PoseTask

    _finish(run_task(PoseTask(), paths, out, model, fmt=fmt, resume=resume, workers=workers, ordered=ordered,
                     max_megapixels=max_megapixels, model_kw={"detector": detector}))


@app.command()
def expression(
    paths: Annotated[list[Path], typer.Argument(help="Photos, folders of photos, and/or videos (for blinks).")],
    out: Annotated[Path, typer.Option(help="Folder for expression.json (and a JSONL per video).")] = Path(
        "facepoints-expression"),
    model: ModelOption = None, fmt: FormatOption = "json", resume: ResumeOption = False,
    workers: WorkersOption = None, ordered: OrderedOption = True, max_megapixels: MegapixelsOption = 50.0,
    detector: DetectorOption = None,
) -> None:
    """Eye and mouth openness, smile width, brow raise per face; blinks in videos. Geometric cues, not emotions."""
    from facepoints.apps.run import VIDEO_SUFFIXES, ExpressionTask
    from facepoints.apps.video import VideoConfig, VideoError, process_video

    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    photos = [p for p in paths if p not in videos]
    failed = False
    if videos:
        lm = load_model(model, max_megapixels, threads=1, detector=detector)
    for v in videos:
        try:
            s = process_video(v, None, lm, VideoConfig(draw_points=False), out / f"{v.stem}_expression.jsonl")
        except VideoError as e:
            typer.echo(f"skipped {v}: {e}")
            failed = True
            continue
        typer.echo(s.text())
        failed |= not s.face_frames
    if photos:
        _finish(run_task(ExpressionTask(), photos, out, model, fmt=fmt, resume=resume, workers=workers,
                         ordered=ordered, max_megapixels=max_megapixels, model_kw={"detector": detector}))
    elif failed or not videos:
        raise typer.Exit(code=1)


@app.command()
def ar(
    paths: PhotoPaths,
    effect: Annotated[str, typer.Option(help="glasses or moustache.")] = "glasses",
    out: Annotated[Path, typer.Option(help="Folder for the pictures.")] = Path("facepoints-ar"),
    model: ModelOption = None, fmt: FormatOption = "json", resume: ResumeOption = False,
    workers: WorkersOption = None, ordered: OrderedOption = True, max_megapixels: MegapixelsOption = 50.0,
    detector: DetectorOption = None,
) -> None:
    """Glasses or a moustache on every face of each photo (placed by the points, turned with the head); writes PNGs."""
    from facepoints.apps.ar import EFFECTS
    from facepoints.apps.run import ArTask

    if effect not in EFFECTS:
        raise typer.BadParameter(f"--effect must be one of {', '.join(sorted(EFFECTS))}")
    _finish(run_task(ArTask(effect), paths, out, model, fmt=fmt, resume=resume, workers=workers, ordered=ordered,
                     max_megapixels=max_megapixels, model_kw={"detector": detector}))


@app.command()
def video(
    src: Annotated[str, typer.Argument(help="Video file, or a camera: 0 or webcam:0.")],
    dst: Annotated[Optional[Path], typer.Argument(
        help="Annotated output video (.mp4 or .avi); omit to only log.")] = None,
    jsonl: Annotated[Optional[Path], typer.Option(help="Per-frame results; default: DST with .jsonl.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="VideoConfig YAML, e.g. configs/video.yaml.")] = None,
    override: Annotated[Optional[list[str]], typer.Option("--override", "-o", help="key=value; repeatable.")] = None,
    effect: Annotated[Optional[str], typer.Option(help="glasses, moustache or none.")] = None,
    detect_every: Annotated[Optional[int], typer.Option(help="Frames between detector runs.")] = None,
    smooth: Annotated[Optional[bool], typer.Option("--smooth/--no-smooth", help="One Euro smoothing.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after this many frames.")] = None,
    model: ModelOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    detector: DetectorOption = None,
) -> None:
    """Track faces through a video: stable ids, smoothed points, pose axes, an effect; JSONL of every frame."""
    from facepoints.apps.video import VideoConfig, VideoError, process_video
    from facepoints.apps.video_io import writer_codec
    from facepoints.config import ConfigError, load_config

    given = {"effect": None if effect is None else "null" if effect.lower() == "none" else effect,
             "detect_every": detect_every, "smoothing": None if smooth is None else str(smooth).lower(),
             "max_frames": max_frames}
    extra = [*(override or []), *(f"{k}={v}" for k, v in given.items() if v is not None)]
    try:
        cfg = load_config(VideoConfig, config, extra)
    except (ConfigError, ValueError, OSError) as e:
        raise typer.BadParameter(str(e)) from None
    log = jsonl if jsonl is not None else (dst.with_suffix(".jsonl") if dst is not None else None)
    if dst is None and log is None:
        raise typer.BadParameter("give DST (an .mp4/.avi to write) and/or --jsonl")
    if dst is not None:
        writer_codec(dst)  # a usage error (exit 2) before the model loads
    lm = load_model(model, threads=1, detector=detector)  # one face crop per call: extra threads only add waiting
    try:
        summary = process_video(src, dst, lm, cfg, log, progress=progress)
    except VideoError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(summary.text())
    if not summary.face_frames:
        raise typer.Exit(code=1)


from facepoints import cli_detector  # noqa: E402,F401 - registers the detector's and verifier's commands


def main() -> None:  # pragma: no cover
    if "--debug" in sys.argv[1:]:  # accepted after the command name too
        sys.argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
