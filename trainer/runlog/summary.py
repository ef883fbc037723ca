"""summary.csv: one row per run (contract.SUMMARY_FIELDS, in order), written whole, read back with care."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from trainer.runlog.contract import SUMMARY, SUMMARY_FIELDS
from trainer.runlog.files import read_text

#: Far above any sweep's summary (a row is ~200 bytes).
MAX_SUMMARY_BYTES = 64 << 20


def summary_number(value: Any) -> float | None:
    """A finite float from a summary field (a csv string or a JSON number), else None (empty, a bool,
    not a number, NaN or infinite)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def summary_csv(rows: list[dict[str, Any]]) -> str:
    """The text of summary.csv for these rows (missing and None values empty; other keys left out)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_FIELDS})
    return out.getvalue()


def summary_rows(path: str | os.PathLike[str]) -> tuple[list[dict[str, str]], int]:
    """The rows of a summary.csv (or of the run directory holding one) and how many were unreadable.

    Rows are dicts keyed by the header; a row that is not valid CSV or does not have one value per
    column is counted, not returned. FileNotFoundError when there is none; UnreadableFile when it is
    not a regular UTF-8 file of sane size.
    """
    path = Path(path)
    if path.is_dir() and path.name != SUMMARY:  # the run directory, not a directory in the file's place
        path = path / SUMMARY
    text = read_text(path, MAX_SUMMARY_BYTES).replace("\0", "")
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    bad = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error:  # an over-long field, say: that row is bad, the reader goes on after it
            bad += 1
            continue
        if not values:
            continue
        if header is None:
            header = values
        elif len(values) == len(header):
            rows.append(dict(zip(header, values)))
        else:
            bad += 1
    return rows, bad


def read_summary(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The readable rows of summary.csv (see `summary_rows`)."""
    return summary_rows(path)[0]
