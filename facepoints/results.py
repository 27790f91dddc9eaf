"""Results files of the batch commands: JSON (one document), JSONL (streamed, resumable) and CSV.

CSV columns (one row per face; a photo without faces or that was skipped
gets one row with empty face fields and the reason in ``error``)::

    file, face, width, height, box_x0, box_y0, box_x1, box_y1, detection_score, face_score, doubtful,
    p0_x, p0_y, p0_score, p1_x, ..., p{K-1}_score, error

Every column name is unique, so pandas and spreadsheets read it as it is.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Protocol, TextIO

FORMATS = ("json", "jsonl", "csv")


class ResultsWriter(Protocol):
    def add(self, record: dict) -> None: ...

    def close(self, meta: dict, records_key: str) -> None: ...


def resume_jsonl(path: Path) -> set[str]:
    """Files already in a JSONL results file; a last line cut by a crash is removed first, so appends start clean."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        with open(path, "r+b") as f:
            f.truncate(cut)
    done = set()
    for line in data[:cut].decode("utf-8", errors="replace").splitlines():
        try:
            done.add(str(json.loads(line)["file"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return done


class JsonWriter:
    """Collects the records; ``close`` writes the document atomically (a crash never leaves half a file)."""

    def __init__(self, path: Path) -> None:
        self.path, self.records = path, []

    def add(self, record: dict) -> None:
        self.records.append(record)

    def close(self, meta: dict, records_key: str) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({**meta, records_key: self.records}, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


class JsonlWriter:
    """One line per photo, flushed at once, so an interrupted run keeps everything it finished."""

    def __init__(self, path: Path, append: bool) -> None:
        self.stream: TextIO = open(path, "a" if append else "w", encoding="utf-8")

    def add(self, record: dict) -> None:
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def close(self, meta: dict, records_key: str) -> None:
        self.stream.close()


def csv_header(k: int) -> list[str]:
    head = ["file", "face", "width", "height", "box_x0", "box_y0", "box_x1", "box_y1", "detection_score",
            "face_score", "doubtful"]
    return head + [f"p{i}_{c}" for i in range(k) for c in ("x", "y", "score")] + ["error"]


class CsvWriter:
    def __init__(self, path: Path, k: int) -> None:
        self.stream: TextIO = open(path, "w", newline="", encoding="utf-8")
        self.k = k
        self.csv = csv.writer(self.stream)
        self.csv.writerow(csv_header(k))

    def add(self, record: dict) -> None:
        size = [record.get("width", ""), record.get("height", "")]
        faces = record.get("faces") or []
        if not faces:
            error = record.get("error") or ("no face found" if "faces" in record else "")
            self.csv.writerow([record["file"], "", *size, *[""] * (7 + 3 * self.k), error])
        for j, face in enumerate(faces):
            cells = [c for (x, y), s in zip(face["points"], face["scores"]) for c in (x, y, s)]
            face_score = "" if face.get("face_score") is None else face["face_score"]
            self.csv.writerow([record["file"], j, *size, *face["box"], face["detection_score"], face_score,
                               int(bool(face.get("doubtful"))), *cells, ""])
        self.stream.flush()

    def close(self, meta: dict, records_key: str) -> None:
        self.stream.close()


def open_writer(fmt: str, path: Path, num_points: int, append: bool = False) -> ResultsWriter:
    makers = {"json": lambda: JsonWriter(path), "jsonl": lambda: JsonlWriter(path, append),
              "csv": lambda: CsvWriter(path, num_points)}
    if fmt not in makers:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return makers[fmt]()
