"""Landmarks for millions of photos on Ray Data: one model per actor, one Parquet row per face.

Ray schedules the work, on the cores of one machine or on a cluster, so this
module only has to say what one actor does with a batch of photos. The results
match ``facepoints.load().detect`` photo for photo: the same reader (EXIF
rotation, alpha on white), the same detector, box map and re-crops; only the
landmark passes are batched across the photos of a Ray batch.

    import ray, facepoints.distributed as fd
    ds = ray.data.read_binary_files("photos/", include_paths=True, num_cpus=0)  # or read_images(...)
    ds.map_batches(fd.FaceLandmarks, fn_constructor_kwargs={"model": None}, batch_size=16, num_cpus=1,
                   compute=ray.data.ActorPoolStrategy(size=2)).write_parquet("out/", ray_remote_args={"num_cpus": 0})

or ``fd.detect_to_parquet(["photos/"], "out/")`` (also ``python -m facepoints.distributed``).
Ray and pyarrow are imported only when used (``pip install "facepoints[ray]"``);
nothing here imports torch.
"""

from __future__ import annotations

import argparse
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from facepoints.images import IMAGE_SUFFIXES, pil_to_rgb
from facepoints.inference import MAX_WARP_SIDE, Face, ImageError, as_rgb, load

COLUMNS = ("file", "face", "faces", "width", "height", "box", "detection_score", "points", "scores", "face_score",
           "doubtful", "error")


def output_schema():
    """The Parquet schema: one row per face; a photo without a face or that failed keeps one row (face null)."""
    import pyarrow as pa

    floats = pa.list_(pa.float64())
    return pa.schema([
        ("file", pa.string()),  # the path Ray read (for s3://bucket/key: bucket/key)
        ("face", pa.int32()),  # index within the photo, best detection first; null: no face or failed
        ("faces", pa.int32()),  # faces found in the photo; null when it failed
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("box", floats),  # x0, y0, x1, y1 of the last landmark pass (tight-box convention)
        ("detection_score", pa.float64()),
        ("points", pa.list_(floats)),  # K lists of x, y in image pixels
        ("scores", floats),  # K per-point P(within 5 % of the eye distance) with a calibrated model
        ("face_score", pa.float64()),  # P(face NME < 10 %); null for an uncalibrated model
        ("doubtful", pa.bool_()),
        ("error", pa.string()),  # why the photo could not be used; null when it could
    ])


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError('Ray is not installed: pip install "facepoints[ray]"') from None
    return ray


# ---------------------------------------------------------------- per actor


def decode_image(data: bytes, name: str) -> np.ndarray:
    """``facepoints.inference.read_image`` for bytes fetched by Ray (S3, NFS, ...): same pixels, same errors."""
    buf = io.BytesIO(bytes(data))
    try:
        with Image.open(buf) as im:
            im.load()  # a truncated file fails here rather than as a half-grey photo
            try:
                upright = ImageOps.exif_transpose(im)
            except Exception as e:  # noqa: BLE001 - broken EXIF: the pixels are still fine
                warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({e})", stacklevel=2)
                upright = im
            return pil_to_rgb(upright if upright is not None else im)
    except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt or foreign data
        reason = str(e).replace(repr(buf), repr(name))  # PIL names the buffer where read_image names the file
        raise ImageError(f"cannot read image {name}: {type(e).__name__}: {reason}") from None


def _empty_rows() -> dict[str, list]:
    return {c: [] for c in COLUMNS}


def _add_rows(rows: dict[str, list], file: str, image: np.ndarray | None, faces: list[Face],
              error: str | None) -> None:
    """One row per face; a photo with no face or an error keeps one row, so nothing is dropped silently."""
    h, w = (int(image.shape[0]), int(image.shape[1])) if image is not None else (None, None)
    items = list(enumerate(faces)) or [(None, None)]
    for j, f in items:
        rows["file"].append(file)
        rows["face"].append(j)
        rows["faces"].append(None if error else len(faces))
        rows["width"].append(w)
        rows["height"].append(h)
        rows["box"].append(None if f is None else f.box.tolist())
        rows["detection_score"].append(None if f is None else f.detection_score)
        rows["points"].append(None if f is None else f.points.tolist())
        rows["scores"].append(None if f is None else f.scores.tolist())
        rows["face_score"].append(None if f is None else f.face_score)
        rows["doubtful"].append(None if f is None else f.doubtful)
        rows["error"].append(error)


class FaceLandmarks:
    """A Ray Data ``map_batches`` class: one ``facepoints.load()`` model per actor, photos in, face rows out.

    Batches from ``ray.data.read_binary_files(..., include_paths=True)`` (columns
    ``bytes``, ``path``) are decoded with facepoints' reader, so a photo that
    fails to decode becomes a row with its reason instead of failing the job,
    and EXIF rotation matches ``facepoints detect``. Batches from
    ``ray.data.read_images(..., include_paths=True, mode="RGB")`` (``image``,
    ``path``) work too, but Ray decodes those without EXIF rotation and a corrupt
    file fails Ray's read task before it gets here.
    """

    def __init__(self, model: str | None = None, threads: int = 1, **load_kw: Any) -> None:
        import cv2

        cv2.setNumThreads(threads)  # an actor owns `threads` CPUs; OpenCV would otherwise spread over all
        self.model = load(model, threads=threads, **load_kw)

    def __call__(self, batch: dict[str, Any]):
        import pyarrow as pa

        if "path" not in batch:
            raise ValueError("FaceLandmarks needs each photo's path: read with include_paths=True")
        paths = [str(p) for p in batch["path"]]
        images: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for i, path in enumerate(paths):
            image, error = self._image(batch, i, path)
            images.append(image)
            errors.append(error)
        detections: dict[int, list] = {}
        for i, image in enumerate(images):
            if image is None:
                continue
            try:
                detections[i] = self.model.detector.detect(image)
            except Exception as e:  # noqa: BLE001 - one odd photo must not fail a job of millions: it gets a row
                images[i], errors[i] = None, f"face detection failed: {type(e).__name__}: {e}"
        ok = list(detections)
        found = dict(zip(ok, self.model.detect_many([images[i] for i in ok], [detections[i] for i in ok])))
        rows = _empty_rows()
        for i, path in enumerate(paths):
            _add_rows(rows, path, images[i], found.get(i, []), errors[i])
        return pa.table(rows, schema=output_schema())

    def _image(self, batch: dict[str, Any], i: int, path: str) -> tuple[np.ndarray | None, str | None]:
        try:
            if "bytes" in batch:
                image = decode_image(batch["bytes"][i], path)
            elif "image" in batch:
                image = as_rgb(batch["image"][i])
            else:
                raise ValueError("FaceLandmarks needs a 'bytes' column (read_binary_files) or an 'image' column "
                                 f"(read_images); got {sorted(batch)}")
        except ImageError as e:
            return None, str(e)
        if max(image.shape[:2]) > MAX_WARP_SIDE:
            return None, (f"the image is {image.shape[1]} x {image.shape[0]} pixels; cropping faces needs sides of "
                          f"at most {MAX_WARP_SIDE} (OpenCV's limit): downscale it first")
        return image, None


# ---------------------------------------------------------------- driver


@dataclass
class ParquetSummary:
    """What a distributed run wrote: counts, photos without a face, and photos that failed with their reason."""

    out: str
    photos: int = 0
    faces: int = 0
    no_faces: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{self.photos} photo(s), {self.faces} face(s) found, {len(self.failed)} failed"]
        if self.no_faces:
            lines.append(f"no face found in {len(self.no_faces)} photo(s): " + ", ".join(self.no_faces[:10])
                         + (" ..." if len(self.no_faces) > 10 else ""))
        lines += [f"failed {f}: {why}" for f, why in self.failed[:50]]
        if len(self.failed) > 50:
            lines.append(f"... and {len(self.failed) - 50} more failures (rows with an error in the Parquet files)")
        lines.append(f"results: {self.out} (Parquet, one row per face)")
        return "\n".join(lines)


def summarise(out: str) -> ParquetSummary:
    """Read back only the file, face and error columns (on the driver, with pyarrow: local, NFS or s3://),
    so the summary costs little even for millions of rows and starts no Ray workers."""
    import pyarrow.dataset as pads

    summary = ParquetSummary(out=out)
    for batch in pads.dataset(out, format="parquet").to_batches(columns=["file", "face", "error"]):
        cols = batch.to_pydict()
        for file, face, error in zip(cols["file"], cols["face"], cols["error"]):
            if error is not None:
                summary.photos += 1
                summary.failed.append((file, error))
            elif face is None:
                summary.photos += 1
                summary.no_faces.append(file)
            else:
                summary.photos += face == 0
                summary.faces += 1
    return summary


def _holds_files(out: str) -> bool:
    import pyarrow.fs as pafs

    if "://" in out:
        fs, path = pafs.FileSystem.from_uri(out)
    else:
        fs, path = pafs.LocalFileSystem(), os.path.abspath(out)
    return bool(fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)))


def detect_to_parquet(paths: Sequence[str], out: str, *, model: str | None = None, concurrency: int | None = None,
                      batch_size: int = 16, threads: int = 1, address: str | None = None,
                      overwrite: bool = False) -> ParquetSummary:
    """Every face in the photos under ``paths`` (local, NFS, ``s3://``...) to Parquet files in ``out``.

    Joins the Ray cluster at ``address`` (else ``RAY_ADDRESS``, else starts a
    local one). ``concurrency`` actors (default: one per ``threads`` CPUs of the
    cluster) each hold one model; ``model`` must be a shipped name or a path that
    exists on every node. An ``out`` that already holds files is refused unless
    ``overwrite``: Ray would add to them, and the rows of two runs would mix.
    """
    if not overwrite and _holds_files(out):
        raise FileExistsError(f"{out} already holds files: choose a new output folder or pass overwrite=True "
                              "(--overwrite)")
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False)
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    exts = [s.lstrip(".") for s in IMAGE_SUFFIXES]
    # Reading bytes and writing Parquet cost little next to detection; at 1 CPU each they would wait
    # for CPUs the actors hold and the job would stall, so they reserve none, and as many run at once
    # as there are actors (not one worker process per file).
    ds = ray.data.read_binary_files(list(paths), include_paths=True, file_extensions=exts, num_cpus=0,
                                    concurrency=concurrency)
    ds = ds.map_batches(FaceLandmarks, fn_constructor_kwargs={"model": model, "threads": threads},
                        compute=ray.data.ActorPoolStrategy(size=concurrency), batch_size=batch_size,
                        num_cpus=threads)
    ds.write_parquet(out, ray_remote_args={"num_cpus": 0}, concurrency=concurrency,
                     mode="overwrite" if overwrite else "append")
    return summarise(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m facepoints.distributed PATH... --out DIR``: the same run from a shell or a cluster job."""
    ap = argparse.ArgumentParser(prog="python -m facepoints.distributed", description=detect_to_parquet.__doc__)
    ap.add_argument("paths", nargs="+", help="photo files or folders (local, NFS, s3://bucket/prefix, ...)")
    ap.add_argument("--out", required=True, help="folder (or s3://...) for the Parquet files")
    ap.add_argument("--model", default=None, help="a shipped model name or an .onnx path present on every node")
    ap.add_argument("--concurrency", type=int, default=None, help="model actors (default: cluster CPUs / threads)")
    ap.add_argument("--batch-size", type=int, default=16, help="photos per batch (default 16)")
    ap.add_argument("--threads", type=int, default=1, help="CPUs per actor (default 1)")
    ap.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster (default $RAY_ADDRESS)")
    ap.add_argument("--overwrite", action="store_true", help="replace the files already in --out")
    a = ap.parse_args(argv)
    try:
        summary = detect_to_parquet(a.paths, a.out, model=a.model, concurrency=a.concurrency, batch_size=a.batch_size,
                                    threads=a.threads, address=a.address, overwrite=a.overwrite)
    except (FileExistsError, ImportError) as e:
        ap.exit(2, f"error: {e}\n")
    print(summary.text())
    return 0 if summary.faces else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
