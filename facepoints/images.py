"""Users' photos in, RGB arrays out: one reader, one format list and one pixel limit for the library,
the command line and the service alike.

A photo is decoded upright (EXIF orientation applied), because a user sees it
that way. Formats are decided by what Pillow finds in the file, not by its
name, and the same set is accepted everywhere (``SUPPORTED_FORMATS``), so a GIF
is refused by the library just as the service answers 415. The pixel count is
read from the header before any pixel is decoded: a 400 KB PNG can inflate to
gigabytes. Large photos may be decoded reduced (``min_side``) when the caller
does not need every pixel; ``Decoded.scale`` maps points back.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 50_000_000  # as the service: ~8200 x 6100; larger phone photos are rare, bombs are larger
# Pillow format name -> the name users know; the suffixes a folder scan picks up.
SUPPORTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
ImageLike = np.ndarray | str | Path | Image.Image


class ImageError(ValueError):
    """An image cannot be read or is not an image array the models can use."""


@dataclass
class Decoded:
    """A decoded photo; ``scale`` > 1 when it was decoded reduced (original pixels per decoded pixel)."""

    rgb: np.ndarray  # (h, w, 3) uint8, upright
    size: tuple[int, int]  # (width, height) of the upright original
    scale: float = 1.0

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Decoded-pixel coordinates (..., 2) -> original pixels (pixel centres at integers)."""
        p = np.asarray(points, dtype=np.float64)
        return p if self.scale == 1.0 else (p + 0.5) * self.scale - 0.5


def supported_formats_text() -> str:
    return ", ".join(sorted(set(SUPPORTED_FORMATS.values())))


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image whose header promises more pixels than allowed, before decoding it."""
    if width < 1 or height < 1:
        raise ImageError(f"the image is empty ({width} x {height} pixels)")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(f"it is {width} x {height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
                         f"(raise it with max_pixels= or --max-megapixels, or downscale the image)")


def decode_image(source: str | Path | BinaryIO, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 min_side: int | None = None) -> Decoded:
    """Decode a photo (a path, or a binary file such as an upload) upright; with ``min_side``, reduce it while
    its longer side stays >= ``min_side``.

    JPEGs are reduced while decoding (``Image.draft``: 1/2, 1/4 or 1/8 of the
    pixels are ever made); other formats are reduced right after (``reduce``),
    which still bounds the memory of everything downstream.
    """
    named = isinstance(source, str | Path)
    name = str(source) if named else "the upload"
    try:
        with Image.open(Path(source) if named else source) as im:
            return _decode_open(im, name, max_pixels, min_side)
    except FileNotFoundError:
        raise ImageError(f"cannot read image {name}: {_missing(Path(name))}") from None
    except IsADirectoryError:
        raise ImageError(f"cannot read image {name}: it is a folder") from None
    except PermissionError:
        raise ImageError(f"cannot read image {name}: permission denied") from None
    except ImageError as e:
        raise ImageError(f"cannot read image {name}: {e}") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt or foreign data
        raise ImageError(f"cannot read image {name}: {type(e).__name__}: {e}") from None


def _decode_open(im: Image.Image, name: str, max_pixels: int | None, min_side: int | None) -> Decoded:
    _check_format(im)
    check_pixels(*im.size, max_pixels)
    full = im.size
    if min_side and im.format in ("JPEG", "MPO"):
        im.draft("RGB", _target(im.size, min_side))
    im.load()  # decode now: a truncated file raises here, not as a grey half-image later
    reduced = _reduce(im, min_side)
    upright = _upright(reduced, name)
    scale = full[0] / reduced.size[0]
    turned = upright.size != reduced.size  # EXIF turned it by 90 degrees
    return Decoded(pil_to_rgb(upright), (full[1], full[0]) if turned else full, scale)


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A user's photo as RGB uint8 (H, W, 3), turned upright by its EXIF orientation.

    Unlike dataset readers (annotations are in stored pixel coordinates, so
    datasets must not be rotated), a phone photo should be seen as its owner
    sees it. Transparent pixels are composited on white, 16-bit images are
    scaled to 8 bits, greyscale is repeated to 3 channels.
    """
    return decode_image(path, max_pixels=max_pixels).rgb


def _missing(p: Path) -> str:
    return "dangling symbolic link" if p.is_symlink() else "no such file"


def _check_format(im: Image.Image) -> None:
    if im.format not in SUPPORTED_FORMATS:
        raise ImageError(f"{im.format} images are not supported (supported: {supported_formats_text()})")


def _target(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    f = min_side / max(size)
    return max(1, round(size[0] * f)), max(1, round(size[1] * f))


def _reduce(im: Image.Image, min_side: int | None) -> Image.Image:
    if not min_side:
        return im
    factor = max(im.size) // min_side
    if factor < 2:
        return im
    try:
        return im.reduce(factor)
    except (ValueError, NotImplementedError):  # modes Pillow cannot reduce: keep the full image
        return im


def _upright(im: Image.Image, name: str) -> Image.Image:
    try:
        upright = ImageOps.exif_transpose(im)
    except Exception as e:  # noqa: BLE001 - broken EXIF: the pixels are still fine
        warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({e})", stacklevel=4)
        return im
    return upright if upright is not None else im


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """A decoded PIL image as RGB uint8: 16-bit / 257, integer modes with values <= 255 as they are, alpha on white.

    The one pixel converter of the library, the command line, the service and the datasets.
    """
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        finite = a[np.isfinite(a)]
        if im.mode.startswith("I;16") or (finite.size and finite.max() > 255):
            a = a / 257.0
        elif im.mode == "F" and finite.size and finite.max() <= 1.0:
            a = a * 255.0
        grey = np.nan_to_num(a).round().clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def as_rgb(image: ImageLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Whatever the user passed -> RGB uint8 (H, W, 3).

    Paths are read with ``read_image``; arrays may be greyscale (H, W) or
    (H, W, 1), RGB, or RGBA (alpha dropped); uint16 is scaled to 8 bits, floats
    in [0, 1] are scaled by 255 and other floats are taken as 0-255 values.
    """
    if isinstance(image, str | Path):
        return read_image(image, max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"expected an image array (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"the image is empty (shape {a.shape})")
    a = _to_uint8(a)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return np.round(a / 257.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        finite = a[np.isfinite(a)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        return np.nan_to_num(a * scale).round().clip(0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return a.clip(0, 255).astype(np.uint8)
    raise ImageError(f"cannot use an image array of dtype {a.dtype}")


# ---------------------------------------------------------------- finding photos


def iter_images(paths: Sequence[str | Path], recursive: bool = True) -> Iterator[tuple[Path, str | None]]:
    """Yield (path, problem) for every file under ``paths``; problem None means "try to read it".

    Files named directly are always yielded (a bad one is then reported by the
    reader); in folders, every file is yielded, and those that will not be
    read (other suffixes, dangling links) come with the reason, so a scan
    never drops a file silently.
    """
    for p in map(Path, paths):
        if p.is_dir():
            found = 0
            for q in _walk(p, recursive):
                problem = _scan_problem(q)
                found += problem is None
                yield q, problem
            if not found:
                yield p, "folder holds no images (" + ", ".join(IMAGE_SUFFIXES) + ")"
        elif p.is_file():
            yield p, None
        elif p.exists():
            yield p, "not a regular file (a device, pipe or socket)"
        else:
            yield p, _missing(p) if p.is_symlink() else "no such file or folder"


def _walk(folder: Path, recursive: bool) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [Path(root) / f for f in files]
        if not recursive:
            break
    return sorted(out)


def _scan_problem(q: Path) -> str | None:
    if not q.exists():
        return "dangling symbolic link" if q.is_symlink() else "vanished during the scan"
    if not q.is_file():
        return "not a regular file (a device, pipe or socket)"
    if q.suffix.lower() not in IMAGE_SUFFIXES:
        what = f"suffix {q.suffix}" if q.suffix else "no suffix"
        return f"not a supported image ({what}; reads {supported_formats_text()})"
    return None
