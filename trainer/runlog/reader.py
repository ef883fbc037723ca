"""The one tolerant reader of events: a line of events.jsonl -> an event, or unreadable.

The file is hostile input: JSON only, nothing in it is ever executed (no eval, no
pickle). A line is an event when it is UTF-8, at most MAX_LINE_BYTES long, nested at most
MAX_DEPTH deep (checked before parsing: 200,000 brackets never reach the recursive parser), a JSON
object with a string `type`, and every field the contract types (field_types.EVENT_FIELDS) has its
type. NaN/Infinity literals and numbers too large for a float read as null, as the trainer writes
non-finite values. Anything else is unreadable: counted and reported by the caller, never raised.

`LineSplitter` cuts bytes into whole lines with bounded memory; `read_events` reads a whole
events.jsonl with both (for the trainer, resume and report); the app's follow-mode reader
(tui.feeds.event_reader.EventReader) uses the same two on the bytes it reads as the file grows.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from trainer.runlog.contract import EVENTS, Event
from trainer.runlog.errors import UnreadableFile
from trainer.runlog.field_types import COMMON_FIELDS, EVENT_FIELDS, ROW_FIELDS
from trainer.runlog.files import open_regular

#: A longer line is unreadable, unparsed: no real event comes near it (the largest, sweep_finished
#: with summaries, is a few kB), and it keeps a runaway writer from filling memory.
MAX_LINE_BYTES = 8 << 20
#: Deepest nesting of a readable line (events nest 4 deep at most).
MAX_DEPTH = 64
#: The largest events.jsonl read whole (resume, report): far above any real sweep's.
MAX_EVENTS_BYTES = 1 << 30
CHUNK_BYTES = 4 << 20
_BRACKETS = re.compile(rb'[\[\]{}"\\]')


class LineSplitter:
    """Bytes in, whole lines out; an over-long line is dropped as it arrives (bounded memory).

    `feed(data)` returns the complete lines (without their newline) and how many over-long
    unfinished lines it dropped; `partial` holds the unfinished tail.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.partial = b""
        #: Inside an over-long line: its bytes are dropped up to its newline.
        self.discarding = False

    def feed(self, data: bytes) -> tuple[list[bytes], int]:
        if self.discarding:
            cut = data.find(b"\n")
            if cut < 0:
                return [], 0
            data, self.discarding = data[cut + 1 :], False
        data = self.partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            return [], self._check_partial()
        self.partial = data[cut + 1 :]
        return data[:cut].split(b"\n"), self._check_partial()

    def _check_partial(self) -> int:
        if len(self.partial) > self.max_line_bytes:
            self.partial, self.discarding = b"", True
            return 1
        return 0


def _too_deep(line: bytes, limit: int) -> bool:
    """Whether brackets outside JSON strings nest deeper than `limit` (C-speed when they cannot)."""
    if line.count(b"[") + line.count(b"{") <= limit:
        return False
    depth, in_string, skip = 0, False, -1
    for m in _BRACKETS.finditer(line):
        pos, ch = m.start(), m.group()
        if pos == skip:
            continue  # the character after a backslash in a string
        if in_string:
            if ch == b"\\":
                skip = pos + 1
            elif ch == b'"':
                in_string = False
        elif ch == b'"':
            in_string = True
        elif ch in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif ch in (b"]", b"}"):
            depth -= 1
    return False


def _constant_none(_: str) -> None:
    return None  # NaN, Infinity, -Infinity: not JSON; the trainer writes null for them


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# Built once (json.loads with arguments builds a decoder per call). A parse never leaves Python
# code running in between, so one decoder serves every thread.
_LENIENT = json.JSONDecoder(parse_constant=_constant_none)
_STRICT = json.JSONDecoder(parse_constant=_no_constant)
_INF = math.inf


def _has_inf(value: Any) -> bool:
    """Whether a parsed value holds an infinity (a literal such as 1e999 overflows to one); lists
    of numbers are searched at C speed."""
    kind = type(value)
    if kind is float:
        return value == _INF or value == -_INF
    if kind is dict:
        return any(map(_has_inf, value.values()))
    if kind is list:
        if _INF in value or -_INF in value:
            return True
        return bool(set(map(type, value)) & {list, dict}) and any(map(_has_inf, value))
    return False


def _inf_to_none(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return None if value in (_INF, -_INF) else value
    if kind is dict:
        return {k: _inf_to_none(v) for k, v in value.items()}
    if kind is list:
        return [_inf_to_none(v) for v in value]
    return value


def parse_json(text: str | bytes, max_depth: int = MAX_DEPTH, non_finite: bool = True) -> Any:
    """JSON with bounded nesting; ValueError for anything unreadable (UnicodeDecodeError included).

    With `non_finite` (events), NaN, Infinity and numbers that overflow a float read as None, as the
    trainer writes non-finite values; without (the lock), NaN and Infinity are unreadable.
    """
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _too_deep(raw, max_depth):
        raise ValueError(f"nested deeper than {max_depth}")
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # strict UTF-8: json.loads would guess UTF-16 and others
    try:
        if not non_finite:
            return _STRICT.decode(text)
        value = _LENIENT.decode(text)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ValueError("nested too deep") from None
    return _inf_to_none(value) if _has_inf(value) else value


# -- field types (field_types.EVENT_FIELDS), compiled once into checks --------------------------------
# JSON gives exact types (dict, list, str, int, float, bool, None), so `type(v) in allowed` is exact,
# and keeps True out of the numbers.

_NONE = type(None)
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "num": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
}
Check = Callable[[Any], bool]


def _types(kind: str) -> frozenset[type] | None:
    base = kind.rstrip("?")
    if base not in _SCALARS:
        return None
    return frozenset(_SCALARS[base] + ((_NONE,) if kind.endswith("?") else ()))


def _compile(kind: str) -> Check:
    allowed = _types(kind)
    if allowed is not None:
        return lambda v: type(v) in allowed
    optional, base = kind.endswith("?"), kind.rstrip("?")
    if base == "row":
        check: Check = lambda v: type(v) is dict and type(v.get("run")) is str and _fields_ok(v, _ROW)  # noqa: E731 - a compiled check per field kind
    elif base.startswith("list[") and base.endswith("]"):
        inner = base[5:-1]
        items = _types(inner)
        if items is not None:  # a list of scalars: one pass at C speed
            check = lambda v: type(v) is list and set(map(type, v)) <= items  # noqa: E731 - a compiled check per field kind
        else:
            item = _compile(inner)
            check = lambda v: type(v) is list and all(map(item, v))  # noqa: E731 - a compiled check per field kind
    else:
        raise ValueError(f"unknown field kind {kind!r} in trainer.runlog.field_types")
    return (lambda v: v is None or check(v)) if optional else check


def _compile_fields(kinds: dict[str, str]) -> tuple[tuple[str, Check], ...]:
    return tuple((name, _compile(kind)) for name, kind in kinds.items())


def _fields_ok(obj: dict[str, Any], checks: tuple[tuple[str, Check], ...]) -> bool:
    """Whether every listed field present in `obj` passes its check (absent fields are fine)."""
    for name, check in checks:
        if name in obj and not check(obj[name]):
            return False
    return True


_ROW = _compile_fields(ROW_FIELDS)
_COMMON = _compile_fields(COMMON_FIELDS)
_BY_TYPE = {kind: _compile_fields(fields) for kind, fields in EVENT_FIELDS.items()}


def is_event(obj: Any) -> bool:
    """A dict with a string `type` whose typed fields (field_types.EVENT_FIELDS) have their types."""
    if type(obj) is not dict or type(obj.get("type")) is not str:
        return False
    return _fields_ok(obj, _COMMON) and _fields_ok(obj, _BY_TYPE.get(obj["type"], ()))


def parse_event(line: bytes, max_line_bytes: int = MAX_LINE_BYTES) -> Event | None:
    """One line (bytes, no newline) -> event, or None when it is unreadable (see the module doc)."""
    if len(line) > max_line_bytes:
        return None
    try:
        obj = parse_json(line)
    except ValueError:  # UnicodeDecodeError included
        return None
    return obj if is_event(obj) else None


@dataclass
class EventLog:
    """A whole events.jsonl: its readable events with their lines, and what was not readable."""

    events: list[Event] = field(default_factory=list)
    #: The text of each event's line, newline included (resume writes kept lines back verbatim).
    lines: list[str] = field(default_factory=list)
    #: Complete lines that were not readable events (garbled, binary, too long or deep, wrong types).
    skipped: int = 0
    #: The file ended inside a line (a writer mid-line, or one killed there): that line is not read.
    partial: bool = False


def read_events(path: str | os.PathLike[str]) -> EventLog:
    """Every readable event of an events.jsonl, or of the run directory holding one.

    Reads the file as it is when opened (a writer's later lines are not waited for). Raises
    FileNotFoundError when there is none and UnreadableFile when it is not a regular file or is
    larger than MAX_EVENTS_BYTES; never for what the lines hold.
    """
    path = Path(path)
    if path.is_dir() and path.name != EVENTS:  # the run directory, not a directory in the file's place
        path = path / EVENTS
    log = EventLog()
    splitter = LineSplitter()
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_EVENTS_BYTES:
            raise UnreadableFile(
                f"{path} holds {size:,} bytes, more than the {MAX_EVENTS_BYTES:,} this reader "
                "takes; no sweep writes that much, so it is not an event log of this trainer"
            )
        left = size
        while left > 0:
            data = fh.read(min(CHUNK_BYTES, left))
            if not data:
                break  # truncated while we read
            left -= len(data)
            lines, dropped = splitter.feed(data)
            log.skipped += dropped
            for line in lines:
                _add(log, line)
    log.partial = bool(splitter.partial)  # an over-long cut tail was counted in `skipped` already
    return log


def _add(log: EventLog, line: bytes) -> None:
    if not line.strip():
        return
    event = parse_event(line)
    if event is None:
        log.skipped += 1
    else:
        log.events.append(event)
        log.lines.append(line.decode("utf-8") + "\n")
