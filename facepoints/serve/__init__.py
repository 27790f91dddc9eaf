"""The web service (``facepoints serve``): a REST API and a browser page over one shared ``LandmarkModel``.

Modules: ``app`` (routes and jobs), ``images`` (bounded decoding), ``memory``
(byte budgets, RSS, returning memory), ``guards`` (timeouts, connection cap,
body limits, disconnects), ``process`` (uvicorn, child servers for tests).
"""

from facepoints.serve.app import (
    ModelRegistry,
    create_app,
    detect_faces,
    face_record,
    landmarks_job,
    render_job,
    static_dir,
)
from facepoints.serve.common import ApiError, Limits, error_body
from facepoints.serve.images import SUPPORTED_FORMATS, Decoded, decode_photo, decode_upload, read_header
from facepoints.serve.process import free_port, run, serve_in_background, uvicorn_config

__all__ = [
    "SUPPORTED_FORMATS", "ApiError", "Decoded", "Limits", "ModelRegistry", "create_app", "decode_photo",
    "decode_upload", "detect_faces", "error_body", "face_record", "free_port", "landmarks_job", "read_header",
    "render_job", "run", "serve_in_background", "static_dir", "uvicorn_config",
]
