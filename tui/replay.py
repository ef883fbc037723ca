"""Read a run directory's events.jsonl, whole lines only, as it grows.

`bstui --replay DIR` shows a finished run directory, or one a headless trainer is
still writing (the SSH case): the reader keeps its place and returns only new
complete lines on each call. JSON only (nothing in the file is ever executed);
lines that are not JSON event objects are skipped and counted, so the UI can say so.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"


class ReplayError(Exception):
    """The replay source cannot be read (message says why and what to do)."""


def events_path(run_dir: str | os.PathLike[str]) -> Path:
    """The events file of a run directory, or ReplayError with a clear message."""
    d = Path(run_dir).expanduser()
    if not d.exists():
        raise ReplayError(f"run directory {str(d)!r} does not exist; pass a directory made by `python -m trainer run`")
    if not d.is_dir():
        if d.name == EVENTS_FILE:  # accept the file itself
            return d
        raise ReplayError(f"{str(d)!r} is not a directory; pass the run directory that holds {EVENTS_FILE}")
    path = d / EVENTS_FILE
    if not path.is_file():
        raise ReplayError(
            f"no {EVENTS_FILE} in {str(d)!r}: is it a run directory? "
            f"(`python -m trainer run --out DIR` makes one)"
        )
    return path


class EventReader:
    """Incremental reader of an events.jsonl file.

    `read()` returns the events of the complete lines added since the last call;
    a trailing line without its newline (a writer mid-line) waits for the next call.
    """

    def __init__(self, path: str | os.PathLike[str], chunk_bytes: int = 4 << 20) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.offset = 0
        #: Lines that were not a JSON object with a "type" (garbled, foreign, cut).
        self.bad_lines = 0
        self.lines = 0
        self._partial = b""

    def read(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        """New complete events since the last call (at most about max_bytes of file)."""
        limit = self.chunk_bytes if max_bytes is None else max_bytes
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:  # truncated or replaced: start over
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                data = f.read(limit)
        except FileNotFoundError:
            return []
        if not data:
            return []
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return []
        self._partial = data[cut + 1 :]
        events: list[dict[str, Any]] = []
        for line in data[:cut].split(b"\n"):
            if not line.strip():
                continue
            self.lines += 1
            event = parse_line(line)
            if event is None:
                self.bad_lines += 1
            else:
                events.append(event)
        return events

    @property
    def at_end(self) -> bool:
        """True when everything in the file now has been read (a partial line may wait)."""
        try:
            return os.path.getsize(self.path) <= self.offset
        except OSError:
            return True


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One line -> event dict, or None when it is not a JSON object with a string `type`."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return None
    return obj


def read_all(run_dir: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """Every complete event of a run directory and the number of bad lines (tests, bench)."""
    reader = EventReader(events_path(run_dir))
    events: list[dict[str, Any]] = []
    while True:
        batch = reader.read()
        if not batch and reader.at_end:
            break
        events.extend(batch)
    return events, reader.bad_lines
