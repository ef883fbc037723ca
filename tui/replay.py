"""Read a run directory's events.jsonl, whole lines only, as it grows (and when it is replaced).

`bstui --replay DIR` / `--attach DIR` show a finished run directory, or one a headless
trainer is still writing (the SSH case): the reader keeps its place and returns only
new complete lines on each call. The file is hostile input (issue 6): JSON only, nothing
in it is ever executed (no eval, no pickle); lines that are not JSON event objects
(garbled, cut, binary junk, foreign JSON, absurdly long) are skipped and counted, so the
UI can say so. NaN/Infinity literals and numbers too large for a float become null, as
the trainer itself writes non-finite values (trainer.events.json_safe).

`python -m trainer resume DIR` rewrites events.jsonl atomically (a new file renamed over
the old one), and a file may be truncated under us: the reader notices both (another
inode, a shorter file, or different first bytes) and starts again from the top,
counting the restart in `generation` so its user rebuilds what it built from the old file.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
#: A longer line is skipped unparsed: no real event comes near it (the largest, sweep_finished
#: with summaries, is a few kB), and it keeps a runaway writer from filling the app's memory.
MAX_LINE_BYTES = 8 << 20
#: Bytes at the start of the file remembered to notice a rewrite that kept the inode and size grew.
HEAD_BYTES = 64


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
    When the file was replaced or truncated, the reader starts over from its first line,
    resets its counts and increments `generation`.
    """

    def __init__(
        self, path: str | os.PathLike[str], chunk_bytes: int = 4 << 20, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.offset = 0
        #: Lines that were not a JSON object with a string "type" (garbled, foreign, cut, too long).
        self.bad_lines = 0
        #: Non-empty complete lines seen in the current file.
        self.lines = 0
        #: Times the file was found replaced or truncated and read again from the start.
        self.generation = 0
        self._partial = b""
        self._discarding = False  # inside an over-long line: drop bytes up to its newline
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file being read
        self._head = b""

    def _restart(self) -> None:
        self.offset, self._partial, self._discarding = 0, b"", False
        self.bad_lines = self.lines = 0
        self._head = b""
        self.generation += 1

    def read(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        """New complete events since the last call (at most about max_bytes of file)."""
        limit = self.chunk_bytes if max_bytes is None else max_bytes
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                identity = (st.st_dev, st.st_ino)
                if self._identity is not None and identity != self._identity and self.offset > 0:
                    self._restart()  # replaced (resume's atomic rewrite): a new file from its start
                self._identity = identity
                if st.st_size < self.offset:
                    self._restart()  # truncated
                elif self._head and self.offset > 0:
                    f.seek(0)
                    if f.read(len(self._head)) != self._head:
                        self._restart()  # rewritten in place past where we were
                f.seek(self.offset)
                data = f.read(limit)
        except OSError:  # gone for a moment (between writes), or unreadable: try again next poll
            return []
        if not data:
            return []
        if self.offset < HEAD_BYTES:
            self._head = (self._head + data)[:HEAD_BYTES]
        self.offset += len(data)
        if self._discarding:
            cut = data.find(b"\n")
            if cut < 0:
                return []
            data, self._discarding = data[cut + 1 :], False
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            self._check_partial()
            return []
        self._partial = data[cut + 1 :]
        self._check_partial()
        events: list[dict[str, Any]] = []
        for line in data[:cut].split(b"\n"):
            if not line.strip():
                continue
            self.lines += 1
            event = parse_line(line) if len(line) <= self.max_line_bytes else None
            if event is None:
                self.bad_lines += 1
            else:
                events.append(event)
        return events

    def _check_partial(self) -> None:
        """An unfinished line past the limit is counted now and dropped up to its newline."""
        if len(self._partial) > self.max_line_bytes:
            self._partial, self._discarding = b"", True
            self.lines += 1
            self.bad_lines += 1

    @property
    def at_end(self) -> bool:
        """True when everything in the file now has been read (a partial line may wait)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        if self._identity is not None and (st.st_dev, st.st_ino) != self._identity:
            return False  # replaced: the next read starts over
        return st.st_size == self.offset


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999 overflows to inf: missing, like NaN


def _constant_none(_: str) -> None:
    return None  # NaN, Infinity, -Infinity: not JSON; the trainer writes null for them


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One line -> event dict, or None when it is not a JSON object with a string `type`.

    Plain `json` only: nothing in the line can run code, whatever it holds.
    """
    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=_constant_none, parse_float=_finite_or_none)
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
