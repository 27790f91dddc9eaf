"""Photos stored the way phones store them, made from the project's sample photo, for tests and benchmarks.

The page test, the bad-input tests and ``benchmarks/one_face.py`` must send the very same turned JPEG: a detector
threshold is only shipped if it finds one face in it, so the three share this one recipe.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

_STORED = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180, 8: Image.Transpose.ROTATE_270}


def exif_rotated(upright: Image.Image, orientation: int, path: Path) -> None:
    """Store the pixels turned as a camera would, with the EXIF tag that turns them back for display."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(_STORED[orientation]).save(path, quality=95, exif=exif)


def sample_crop(sample: Path) -> Image.Image:
    """The sample photo's top 512 x 400: not square, so a lost rotation shows in the size too."""
    return Image.open(sample).convert("RGB").crop((0, 0, 512, 400))


def phone_jpeg(sample: Path, path: Path) -> Path:
    """The page test's photo: :func:`sample_crop` stored turned, with EXIF orientation 6."""
    exif_rotated(sample_crop(sample), 6, path)
    return path
