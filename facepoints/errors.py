"""Error types shared by the library and the command line.

A ``UserError`` is a mistake the user can fix (a missing file, a misspelt
option, a CSV that is not the format it claims): the command line prints its
message on one line and exits 2; ``--debug`` or ``FACEPOINTS_DEBUG=1`` shows
the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os

DEBUG_ENV = "FACEPOINTS_DEBUG"
USER_ERROR_EXIT = 2


class UserError(ValueError):
    """A mistake in the user's input; the message says what is wrong and what to do, on one line."""


class ImageReadError(UserError):
    """A file cannot be decoded as an image (missing, truncated, not an image)."""


def debug_enabled(flag: bool = False) -> bool:
    """True when tracebacks were asked for (``--debug`` or ``FACEPOINTS_DEBUG=1``)."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages are joined), prefixed with 'error: '."""
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip()) or type(error).__name__
    return f"error: {text}"
