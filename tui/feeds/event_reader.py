"""Read a run directory's events.jsonl, whole lines only, as it grows (and when it is replaced).

`bstui --replay DIR` / `--attach DIR` show a finished run directory, or one a headless
trainer is still writing (the SSH case): the reader keeps its place and returns only
new complete lines on each call. The file is hostile input: it is read and parsed by the
trainer's own tolerant reader (trainer.runlog.reader: regular files only, so a FIFO never
blocks; bounded lines and nesting; events with wrong field types refused); lines that are
not events (garbled, cut, binary junk, foreign JSON, absurdly long) are skipped and
counted, so the UI can say so.

`python -m trainer resume DIR` rewrites events.jsonl atomically (a new file renamed over
the old one), and a file may be truncated under us: the reader notices both (another
inode, a shorter file, or different first bytes) and starts again from the top,
counting the restart in `generation` so its user rebuilds what it built from the old file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainer.runlog import EVENTS, UnreadableFile, open_regular
from trainer.runlog.files import describe_kind
from trainer.runlog.reader import MAX_LINE_BYTES, LineSplitter, parse_event

#: Bytes at the start of the file remembered to notice a rewrite that kept the inode and size grew.
HEAD_BYTES = 64


class ReplayError(Exception):
    """The replay source cannot be read (message says why and what to do)."""


def events_path(run_dir: str | os.PathLike[str]) -> Path:
    """The events file of a run directory, or ReplayError with a clear message."""
    d = Path(run_dir).expanduser()
    if not d.exists():
        raise ReplayError(
            f"run directory {str(d)!r} does not exist; pass a directory made by `python -m trainer run`"
        )
    if not d.is_dir():
        if d.name == EVENTS:  # accept the file itself
            _check_regular(d)
            return d
        raise ReplayError(f"{str(d)!r} is not a directory; pass the run directory that holds {EVENTS}")
    path = d / EVENTS
    if os.path.lexists(path):
        _check_regular(path)
    if not path.is_file():
        raise ReplayError(
            f"no {EVENTS} in {str(d)!r}: is it a run directory? (`python -m trainer run --out DIR` makes one)"
        )
    return path


def _check_regular(path: Path) -> None:
    """ReplayError unless `path` is a regular file (a FIFO would block, /dev/zero never ends)."""
    if path.is_file():
        return
    try:
        what = describe_kind(path.stat().st_mode)
    except OSError:
        what = "a symbolic link to nothing"
    raise ReplayError(
        f"{str(path)!r} is {what}, not a regular file: the trainer never writes that; "
        "point at a run directory the trainer wrote"
    )


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
        #: Lines that were not readable events (garbled, foreign, cut, too long or deep, wrong types).
        self.bad_lines = 0
        #: Non-empty complete lines seen in the current file.
        self.lines = 0
        #: Times the file was found replaced or truncated and read again from the start.
        self.generation = 0
        #: Why the file cannot be read now (not a regular file, say); None while it reads.
        self.problem: str | None = None
        self._lines = LineSplitter(max_line_bytes)
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file being read
        self._head = b""

    @property
    def _partial(self) -> bytes:
        """The unfinished last line read so far."""
        return self._lines.partial

    def _restart(self) -> None:
        self.offset, self._lines = 0, LineSplitter(self.max_line_bytes)
        self.bad_lines = self.lines = 0
        self._head = b""
        self.generation += 1

    def read(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        """New complete events since the last call (at most about max_bytes of file)."""
        limit = self.chunk_bytes if max_bytes is None else max_bytes
        try:
            with open_regular(self.path) as f:  # a FIFO or a device is refused, never waited on
                self.problem = None
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
        except UnreadableFile as exc:  # not a regular file (now): say so, try again next poll
            self.problem = str(exc)
            return []
        except OSError:  # gone for a moment (between writes), or unreadable: try again next poll
            return []
        if not data:
            return []
        if self.offset < HEAD_BYTES:
            self._head = (self._head + data)[:HEAD_BYTES]
        self.offset += len(data)
        lines, dropped = self._lines.feed(data)  # an unfinished over-long line is counted at once
        self.lines += dropped
        self.bad_lines += dropped
        events: list[dict[str, Any]] = []
        for line in lines:
            if not line.strip():
                continue
            self.lines += 1
            event = parse_event(line, self.max_line_bytes)
            if event is None:
                self.bad_lines += 1
            else:
                events.append(event)
        return events

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
