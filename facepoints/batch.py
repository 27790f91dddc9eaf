"""One runner over many photos for ``detect``, ``align``, ``pose``, ``expression`` and ``ar``.

Every file under the inputs is accounted for: processed, without a face, or
skipped with its reason (a file that cannot be read, an unsupported format, a
dangling link, or anything a photo raises), and one bad photo never stops the
others. The results file is always written, also after Ctrl-C. With
``workers`` > 1 the photos go to a pool of processes, each with its own
single-threaded model, and results come back in input order (or as they
finish); resume, skip reporting and progress are the same either way.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from tqdm.auto import tqdm

from facepoints.face import Face
from facepoints.images import Decoded, ImageError, iter_images
from facepoints.inference import LandmarkModel, load_any
from facepoints.results import open_writer, resume_jsonl
from facepoints.viz import draw_faces, save_image


@dataclass
class Photo:
    """One decoded photo and its faces, as a task sees it; ``faces`` are in ``image`` pixels."""

    path: Path
    decoded: Decoded
    faces: list[Face]
    stem: Path  # out_dir / a name unique in this run: where the task writes its pictures

    @property
    def image(self) -> np.ndarray:
        return self.decoded.rgb

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the original photo."""
        return self.decoded.size

    def original_faces(self) -> list[Face]:
        """The faces in the original photo's pixels (what records report)."""
        return [f.rescaled(self.decoded.scale) for f in self.faces]


@dataclass
class TaskOutput:
    faces: list[dict]  # one record per face
    files: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # printed after the run
    extra: dict = field(default_factory=dict)  # photo-level fields of the record


class Task(Protocol):
    """What to do with each photo's faces; a module-level dataclass, so worker processes can receive it."""

    name: str  # results file stem; "detect" writes results.<format>
    records_key: str  # the JSON list of per-photo records
    on_empty: bool  # also run on photos without a face

    def __call__(self, photo: Photo, model: LandmarkModel) -> TaskOutput: ...


@dataclass
class DetectTask:
    """``facepoints detect``: every face's box, points and scores; optionally the annotated photo."""

    draw: bool = True
    name: ClassVar[str] = "detect"
    records_key: ClassVar[str] = "images"
    on_empty: ClassVar[bool] = True

    def __call__(self, photo: Photo, model: LandmarkModel) -> TaskOutput:
        out = TaskOutput([f.to_dict() for f in photo.original_faces()])
        if self.draw:
            target = save_image(f"{photo.stem}_points.png",
                                draw_faces(photo.image, [(f.box, f.points) for f in photo.faces], scheme=model.scheme))
            out.files.append(target)
            out.extra["annotated"] = str(target)
        return out


@dataclass
class PhotoResult:
    """What became of one input file."""

    record: dict
    faces: int = 0
    files: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    problem: str | None = None


def process_photo(model: LandmarkModel, task: Task, path: Path, problem: str | None, stem: Path) -> PhotoResult:
    """Read, detect and run the task on one file; any failure becomes the file's reason, never an exception."""
    rec: dict = {"file": str(path)}
    if problem is None:
        try:
            decoded = model.read(path)
            faces = model.detect(decoded.rgb)
            rec.update(width=decoded.size[0], height=decoded.size[1], faces=[])
            if not faces and not task.on_empty:
                return PhotoResult(rec)
            out = task(Photo(path, decoded, faces, stem), model)
            rec.update(faces=out.faces, **out.extra)
            return PhotoResult(rec, len(faces), out.files, out.lines)
        except ImageError as e:
            problem = str(e)
        except Exception as e:  # noqa: BLE001 - one photo must not lose the batch; its reason is reported
            problem = f"{type(e).__name__}: {e}"
    return PhotoResult({"file": str(path), "error": problem}, problem=problem)


@dataclass
class BatchSummary:
    """What a batch run did; ``text()`` is what the CLI prints."""

    task: str
    out_dir: Path
    results: Path
    images_ok: int = 0
    faces: int = 0
    resumed: int = 0
    no_faces: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, res: PhotoResult) -> None:
        self.lines += res.lines
        self.written += res.files
        if res.problem is not None:
            self.skipped.append((res.record["file"], res.problem))
            return
        self.images_ok += 1
        self.faces += res.faces
        if not res.faces:
            self.no_faces.append(res.record["file"])

    def text(self) -> str:
        out = list(self.lines)
        out.append(f"{self.task}: {self.images_ok} image(s) processed, {self.faces} face(s) found"
                   + (f", {self.resumed} already done (resumed)" if self.resumed else ""))
        if self.no_faces:
            out.append(f"no face found in {len(self.no_faces)} image(s): " + ", ".join(self.no_faces[:10])
                       + (" ..." if len(self.no_faces) > 10 else ""))
        out += [f"skipped {f}: {why}" for f, why in self.skipped]
        if self.written:
            out.append(f"wrote {len(self.written)} file(s) to {self.out_dir} (e.g. {self.written[0].name})")
        out.append(f"results: {self.results}")
        return "\n".join(out)


def _unique_stem(path: Path, used: set[str]) -> str:
    name, i = path.stem, 1
    while name in used:
        i += 1
        name = f"{path.stem}_{i}"
    used.add(name)
    return name


def prepare_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder: give a folder for the results")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_batch(inputs: Sequence[Path], out_dir: Path, model: LandmarkModel, task: Task, *, fmt: str = "json",
              resume: bool = False, recursive: bool = True, workers: int = 1, ordered: bool = True,
              progress: bool = True) -> BatchSummary:
    """Run ``task`` on every photo under ``inputs``; write ``out_dir/<results>.<fmt>`` whatever happens."""
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    out_dir = prepare_out_dir(out_dir)
    results = out_dir / f"{'results' if task.name == 'detect' else task.name}.{fmt}"
    summary = BatchSummary(task.name, out_dir, results)
    done = resume_jsonl(results) if resume and fmt == "jsonl" else set()
    used: set[str] = set()
    jobs = []
    for path, problem in iter_images(inputs, recursive):
        if str(path) in done:
            summary.resumed += 1
        else:
            jobs.append((path, problem, out_dir / _unique_stem(path, used) if problem is None else out_dir))
    workers = min(workers, max(1, len(jobs)))
    writer = open_writer(fmt, results, model.scheme.num_points, append=bool(done) or (resume and fmt == "jsonl"))
    start = time.perf_counter()
    try:
        stream = (_run_inline(model, task, jobs) if workers == 1
                  else _run_pool(model, task, jobs, workers, ordered))
        for res in tqdm(stream, total=len(jobs), desc=task.name, unit="img", disable=not progress or len(jobs) < 2):
            summary.add(res)
            writer.add(res.record)
    finally:
        summary.seconds = time.perf_counter() - start
        writer.close({"task": task.name, "model": model.name, "scheme": model.scheme.name,
                      "skipped": [{"file": f, "reason": r} for f, r in summary.skipped],
                      "no_faces": summary.no_faces}, task.records_key)
    return summary


def _run_inline(model: LandmarkModel, task: Task, jobs: list) -> Iterator[PhotoResult]:
    for path, problem, stem in jobs:
        yield process_photo(model, task, path, problem, stem)


# ---------------------------------------------------------------- process pool


@dataclass
class _WorkerState:
    model: LandmarkModel | None = None
    task: Task | None = None


_STATE = _WorkerState()  # one per worker process, set by its initializer


def _model_spec(model: LandmarkModel) -> tuple[str, dict]:
    """How a worker rebuilds the model: same file and settings, one thread (the pool supplies the parallelism)."""
    detector = model.detector_spec  # None or a name: each worker builds its own
    if detector is not None and not isinstance(detector, str) and dataclasses.is_dataclass(detector):
        detector = dataclasses.replace(detector)  # a fresh copy without loaded (unpicklable) state
    return str(model.path), {"threads": 1, "detector": detector, "refine": model.refine,
                             "batch_size": model.batch_size, "max_pixels": model.max_pixels,
                             "convention": model.convention or None, "flip_average": model.flip_average,
                             "upright": model.upright, "refine_tol": model.refine_tol,
                             "duplicate_iou": model.duplicate_iou,
                             "min_face_score": model.min_face_score}


def _init_worker(spec: tuple[str, dict], task: Task) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    _STATE.model = load_any(spec[0], **spec[1])
    _STATE.task = task


def _work(path: Path, problem: str | None, stem: Path) -> PhotoResult:
    assert _STATE.model is not None and _STATE.task is not None
    return process_photo(_STATE.model, _STATE.task, path, problem, stem)


def _run_pool(model: LandmarkModel, task: Task, jobs: list, workers: int, ordered: bool) -> Iterator[PhotoResult]:
    """Results of ``jobs`` from ``workers`` processes, at most a few photos per worker in flight."""
    window = 4 * workers
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(_model_spec(model), task)) as pool:
        pending: dict[Future, tuple] = {}
        queue = iter(jobs)
        for job in queue:
            pending[_submit(pool, job)] = job
            if len(pending) >= window:
                break
        while pending:
            fut = next(iter(pending)) if ordered else _first_done(pending)
            job = pending.pop(fut)
            yield _result(fut, job)
            nxt = next(queue, None)
            if nxt is not None:
                pending[_submit(pool, nxt)] = nxt


def _submit(pool: ProcessPoolExecutor, job: tuple) -> Future:
    """The job's future; once a worker has died the pool takes no more, and each later photo reports that."""
    try:
        return pool.submit(_work, *job)
    except BrokenProcessPool as e:
        fut: Future = Future()
        fut.set_exception(e)
        return fut


def _first_done(pending: dict[Future, tuple]) -> Future:
    from concurrent.futures import FIRST_COMPLETED, wait

    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    return next(f for f in pending if f in done)


def _result(fut: Future, job: tuple) -> PhotoResult:
    path = job[0]
    try:
        return fut.result()
    except BrokenProcessPool:
        why = "a worker process died while this photo was in flight (out of memory?)"
    except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be sent back
        why = f"{type(e).__name__}: {e}"
    return PhotoResult({"file": str(path), "error": why}, problem=why)
