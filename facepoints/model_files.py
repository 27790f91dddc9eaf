"""Where the landmark models are: the ones shipped inside the package, found by name, and their cards.

Kept apart from the runtime (``facepoints.inference``) so that code which only
lists or names models (the CLI, the service, benchmarks) reads one short module.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from facepoints.card import CardError, ModelCard

DEFAULT_MODEL = "default"
# weights/detector.onnx and verifier.onnx find faces (facepoints.detectors.cnn, .verifier): not landmark models
FACE_FINDING_MODELS = ("detector", "verifier")


class ModelError(ValueError):
    """A model file or its sidecar is missing, unreadable or breaks the runtime contract."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """No model by that name or path; the message lists the models that do exist."""


def model_dir() -> Path:
    """Folder of the models shipped inside the package."""
    return Path(str(resources.files("facepoints") / "weights"))


def available_models() -> list[str]:
    """Names of the shipped landmark models (``load(name)`` accepts them); the face detector and verifier are not."""
    folder = model_dir()
    return sorted(p.stem for p in folder.glob("*.onnx") if p.stem not in FACE_FINDING_MODELS) if folder.is_dir() else []


def not_found(what: str) -> ModelNotFoundError:
    names = available_models()
    listed = ", ".join(names) if names else f"none (no .onnx files in {model_dir()})"
    return ModelNotFoundError(f"{what}; available models: {listed}; or pass the path of an .onnx file")


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """None -> the shipped default model, a bare name -> a shipped model, anything path-like -> that file."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    if isinstance(name_or_path, Path) and not name_or_path.is_file():
        raise not_found(f"no model file {name_or_path}")
    text = str(name_or_path)
    if Path(text).is_file():
        if Path(text).suffix.lower() != ".onnx":
            raise ModelError(f"{text} is not an .onnx model: give a shipped model's name (facepoints models), an "
                             ".onnx file with its .json card beside it, or a .pt training checkpoint")
        return Path(text)
    if "/" in text or "\\" in text or text.lower().endswith(".onnx"):
        raise not_found(f"no model file {text}")
    path = model_dir() / f"{text}.onnx"
    if not path.is_file():
        raise not_found(f"no model named {text!r}")
    return path


def read_sidecar(onnx_path: str | Path) -> ModelCard:
    """The model card beside a model, checked for the fields inference needs."""
    try:
        return ModelCard.for_model(onnx_path)
    except CardError as e:
        raise ModelError(str(e)) from None
