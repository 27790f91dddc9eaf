"""Uploads -> upright RGB at a bounded size, with the decode's memory known from the header before any pixel is read.

A 95 KB 16-bit 7000 x 7000 PNG used to cost 1.46 GB: the whole photo was
decoded, then converted through float64 copies. Now a photo over
``Limits.work_pixels`` is decoded reduced by an integer factor: JPEG by the
decoder itself (``draft``: DCT scaling, the full-size pixels never exist),
other formats natively and then averaged in strips of rows, each strip
converted to RGB on its own, so the only full-size buffer is Pillow's native
one. The detector works at 1024 px and the landmark model at its input size,
so reduced photos lose little; points are mapped back to the photo's pixels.
"""

import io
import math
from dataclasses import dataclass
from typing import BinaryIO

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from facepoints.inference import ImageError, as_rgb
from facepoints.serve.common import ApiError, Limits

# Pillow format name -> what we call it; the same set the CLI reads (facepoints.images.IMAGE_SUFFIXES).
SUPPORTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
DRAFT_FORMATS = {"JPEG", "MPO"}  # decoders that can decode reduced (DCT scaling)
DOUBLE_BUFFERED = {"WEBP", "TIFF"}  # decoders that fill a buffer of their own before Pillow's image
STRIP_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "P", "PA", "1"}  # Pillow cannot reduce these: convert in strips
STRIP_PIXELS = 2_000_000  # source pixels per strip when averaging: bounds the temporaries
# bytes per pixel beyond the native decode: the RGB result and its upright copy, then what each job adds
JOB_BYTES_PER_PIXEL = {"landmarks": 20, "render": 36}
# EXIF orientation -> the numpy view that makes the photo upright (what ImageOps.exif_transpose does)
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@dataclass(frozen=True)
class Header:
    """What the first bytes of an upload say: enough to refuse it or to know its decode's cost."""

    format: str
    mode: str
    width: int  # as stored (before EXIF rotation)
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def factor(self, limits: Limits) -> int:
        """The integer reduction that brings the photo to at most ``limits.work_pixels``."""
        return max(1, math.ceil(math.sqrt(self.pixels / limits.work_pixels)))

    def cost(self, limits: Limits, job: str = "landmarks") -> int:
        """Bytes the decode and ``job`` will hold at their peak (an upper estimate, for admission)."""
        r = self.factor(limits)
        native = self.pixels
        if self.format in DRAFT_FORMATS and r > 1:
            native = math.ceil(self.width / _draft_scale(r)) * math.ceil(self.height / _draft_scale(r))
        native_bytes = native * _bytes_per_pixel(self.mode) * (2 if self.format in DOUBLE_BUFFERED else 1)
        work = math.ceil(self.width / r) * math.ceil(self.height / r)
        strips = min(self.pixels, STRIP_PIXELS) * 20 if self.mode in STRIP_MODES else 0
        return native_bytes + work * JOB_BYTES_PER_PIXEL.get(job, 36) + strips


@dataclass(frozen=True)
class Decoded:
    """The upright photo as the model sees it, and the factor back to the photo's own pixels."""

    image: np.ndarray  # RGB uint8 (h, w, 3), reduced by ``factor``
    width: int  # the photo's upright size, in which results are reported
    height: int
    factor: int

    def to_photo(self, xy: np.ndarray) -> np.ndarray:
        """Model-image pixels -> photo pixels (centres at integers: a reduced pixel covers ``factor`` photo pixels)."""
        return (np.asarray(xy, dtype=np.float64) + 0.5) * self.factor - 0.5 if self.factor > 1 else np.asarray(xy)


def _draft_scale(r: int) -> int:
    return max(s for s in (1, 2, 4, 8) if s <= r)


def _bytes_per_pixel(mode: str) -> int:
    """Pillow's storage per pixel: one byte for 1/L/P, two for I;16*, four for everything else."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _supported() -> str:
    return ", ".join(sorted(set(SUPPORTED_FORMATS.values())))


def open_image(source: BinaryIO) -> Image.Image:
    """Pillow's lazy image (header read only), or an ApiError saying why the bytes are no image we read."""
    source.seek(0)
    try:
        return Image.open(source)
    except Image.DecompressionBombError as e:
        raise ApiError(413, "too_many_pixels", f"the image has too many pixels ({e})") from None
    except UnidentifiedImageError:
        raise ApiError(400, "not_an_image",
                       f"the file is not an image this service can read (supported: {_supported()})") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged headers
        raise ApiError(400, "corrupt_image", f"cannot read the image header: {type(e).__name__}: {e}") from None


def check_header(im: Image.Image, limits: Limits) -> Header:
    """Refuse foreign formats and oversized photos from the header, before a pixel is decoded (decompression bombs)."""
    if im.format not in SUPPORTED_FORMATS:
        raise ApiError(415, "unsupported_format", f"{im.format} images are not supported (supported: {_supported()})")
    w, h = im.size
    if w < 1 or h < 1:
        raise ApiError(400, "corrupt_image", f"the image is empty ({w} x {h} pixels)")
    if w * h > limits.max_pixels or max(w, h) > limits.max_side:
        raise ApiError(413, "too_many_pixels",
                       f"the image is {w} x {h} = {w * h} pixels; the limit is {limits.max_pixels} pixels "
                       f"and {limits.max_side} per side")
    return Header(str(im.format), im.mode, w, h)


def read_header(source: BinaryIO, limits: Limits) -> Header:
    with open_image(source) as im:
        return check_header(im, limits)


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - broken EXIF: the pixels are still fine, as stored
        return 1
    return value if value in UPRIGHT else 1


def _average_strips(im: Image.Image, r: int) -> np.ndarray:
    """RGB uint8 of ``im`` reduced by ``r`` (mean of r x r blocks, edges replicated), converted strip by strip.

    For modes Pillow cannot reduce (16-bit grey, palettes, bilevel), whose
    whole-image conversion would cost several times the native decode.
    """
    w, h = im.size
    ow, oh = math.ceil(w / r), math.ceil(h / r)
    out = np.empty((oh, ow, 3), np.uint8)
    rows = max(1, STRIP_PIXELS // (w * r)) * r  # source rows per strip, a multiple of r
    for y in range(0, h, rows):
        part = im.crop((0, y, w, min(h, y + rows)))
        # 16-bit grey is averaged as 16 bits, then scaled once; the rest as RGB
        strip = np.asarray(part).astype(np.uint16) if im.mode.startswith("I;16") else as_rgb(part)
        if r > 1:
            sh = math.ceil(strip.shape[0] / r) * r
            if sh != strip.shape[0] or ow * r != w:
                pad = [(0, sh - strip.shape[0]), (0, ow * r - w)] + [(0, 0)] * (strip.ndim - 2)
                strip = np.pad(strip, pad, mode="edge")
            strip = cv2.resize(strip, (ow, sh // r), interpolation=cv2.INTER_AREA)
        out[y // r: y // r + strip.shape[0]] = as_rgb(strip)
    return out


def _pixels(im: Image.Image, r: int) -> np.ndarray:
    """RGB uint8 reduced by ``r``, with as few full-size copies as each mode allows."""
    if im.mode in STRIP_MODES:
        return _average_strips(im, r)
    small = im.reduce(r) if r > 1 else im
    if small.mode == "RGB":
        return np.asarray(small)
    return as_rgb(small)  # the library's conversion (alpha on white, CMYK, 32-bit scaling)


def decode_photo(source: BinaryIO, limits: Limits) -> Decoded:
    """An upload (a file object) -> upright RGB uint8, reduced when over ``limits.work_pixels``."""
    with open_image(source) as im:
        header = check_header(im, limits)
        r = header.factor(limits)
        if header.format in DRAFT_FORMATS and r > 1:
            im.draft(im.mode, (math.ceil(header.width / r), math.ceil(header.height / r)))
        try:
            im.load()  # a truncated file raises here instead of decoding as half grey
        except Exception as e:  # noqa: BLE001
            raise ApiError(400, "corrupt_image", f"cannot decode the {header.format} image: {e}") from None
        drafted = max(1, round(header.width / im.size[0]))  # the JPEG decoder's scale: 1, 2, 4 or 8
        rest = max(1, math.ceil(math.sqrt(im.size[0] * im.size[1] / limits.work_pixels)))
        orientation = _orientation(im)
        try:
            rgb = _pixels(im, rest)
        except ImageError as e:
            raise ApiError(400, "corrupt_image", str(e)) from None
        except (ValueError, TypeError, KeyError, OSError) as e:  # exotic pixel layouts (TIFF's signed, 32-bit ...)
            raise ApiError(415, "unsupported_format", f"cannot convert a {header.format} image of pixel mode "
                                                      f"{im.mode} to RGB ({e}); save it as 8-bit RGB") from None
    if orientation in UPRIGHT:
        rgb = np.ascontiguousarray(UPRIGHT[orientation](rgb))
    w, h = (header.height, header.width) if orientation in (5, 6, 7, 8) else (header.width, header.height)
    return Decoded(rgb, w, h, drafted * rest)


def decode_upload(data: bytes, limits: Limits) -> np.ndarray:
    """Uploaded bytes -> upright RGB uint8 (reduced when large), refusing oversized, foreign or broken files."""
    if not data:
        raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
    if len(data) > limits.max_upload_bytes:
        raise ApiError(413, "too_large", f"the upload is {len(data)} bytes; the limit is {limits.max_upload_bytes}")
    return decode_photo(io.BytesIO(data), limits).image
