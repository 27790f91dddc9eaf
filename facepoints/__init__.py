"""facepoints: 68 facial keypoints per face, offline on a CPU.

    import facepoints
    model = facepoints.load()          # the model shipped in the package
    faces = model.detect("photo.jpg")  # boxes, points (K, 2) and per-point scores
    faces[0].to_dict()                 # the JSON face record every command and the service write

Importing the package never imports torch; training and export do.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Face", "LandmarkModel", "available_models", "load", "load_any", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import facepoints.datasets` in training code does not load onnxruntime.
    if name in ("Face", "LandmarkModel", "available_models", "load", "load_any"):
        from facepoints import inference

        return getattr(inference, name)
    raise AttributeError(name)
