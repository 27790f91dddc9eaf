"""CSV rows for the CSV formats, with every way a CSV goes wrong named by file and line.

A byte that is not UTF-8 loses only its row (listed in the cleaning report);
a ``;``-separated file, an empty or header-only file, or a field too long for
the csv module refuses the file with one message that says what to do.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from facepoints.datasets.core import CleaningReport, DataError


def _bad_byte(fields: list[str]) -> str | None:
    """The first undecodable byte (kept as a lone surrogate by ``surrogateescape``), as ``0xE9``."""
    for text in fields:
        for ch in text:
            if "\udc80" <= ch <= "\udcff":
                return f"0x{ord(ch) - 0xDC00:02X}"
    return None


def _not_utf8(path: Path, line: int, byte: str) -> str:
    return f"{path}, line {line}: byte {byte} is not UTF-8 text; save the file as UTF-8"


def read_header(path: Path) -> list[str]:
    """The header row; refuses empty files, ``;``-separated files and headers that are not UTF-8."""
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        try:
            header = next(csv.reader(f), None)
        except csv.Error as e:
            raise DataError(f"{path}, line 1: not a readable CSV header ({e})") from None
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{path} is empty: expected a header row and one row per face")
    byte = _bad_byte(header)
    if byte:
        raise DataError(_not_utf8(path, 1, byte))
    if len(header) == 1 and ";" in header[0]:
        raise DataError(f"{path}: columns are separated by ';'; facepoints reads comma-separated CSV: "
                        "save it with ',' as the separator")
    return header


def csv_rows(path: Path, report: CleaningReport) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty row after the header.

    A row with a byte that is not UTF-8 is listed in ``report`` and skipped, so
    the good rows are kept. A file with a header and no rows is refused.
    """
    read_header(path)
    rows = 0
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f)
        next(reader, None)
        while True:
            try:
                row = next(reader, None)
            except csv.Error as e:
                raise DataError(f"{path}, line {reader.line_num}: {e}; is it a CSV file of this format?") from None
            if row is None:
                break
            if not row:
                continue
            rows += 1
            byte = _bad_byte(row)
            if byte:
                report.reject_malformed(f"{path}:{reader.line_num}", _not_utf8(path, reader.line_num, byte),
                                        "malformed row")
                continue
            yield reader.line_num, row
    if rows == 0:
        raise DataError(f"{path} has a header but no rows: expected one row per face")


def dict_rows(path: Path, report: CleaningReport, fields: list[str]) -> Iterator[tuple[int, dict[str, str | None]]]:
    """As ``csv_rows``, each row as a mapping of ``fields`` (missing trailing fields are None)."""
    for line, row in csv_rows(path, report):
        yield line, dict(zip(fields, row + [None] * (len(fields) - len(row))))
