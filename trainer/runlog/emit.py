"""Events on their way out: the Emitter stamps them, sinks take them (the run directory, the app's queue).

Every event has `type`, `t` (seconds since the sweep started) and, except sweep events, `run`
(contract.py; docs/run-directory.md). The same JSON-safe dicts go to events.jsonl (the run
directory, the source of truth) and to the app's queue. No torch here: the app imports this.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any, Protocol

from trainer.runlog.contract import Event


class EventSink(Protocol):
    """Anything that takes events: a file, a queue, a console."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


def json_safe(value: Any) -> Any:
    """Plain JSON values, recursively: NaN/inf become None (JSON has no NaN), tuples lists, and a
    subclass of str, int or float (torch.__version__ is a TorchVersion, a numpy float a float) its
    plain value, so that unpickling an event from the app's queue never imports torch or numpy there."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, float):
        return json_safe(float(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        return json_safe(value.item())  # a numpy scalar (np.float32 is no float subclass)
    return value


def encode(event: Event) -> str:
    """One event as one line of JSON (no newline inside, strict JSON)."""
    return json.dumps(json_safe(event), separators=(",", ":"), allow_nan=False)


class Clock:
    """Seconds since the sweep started; the `t` of every event."""

    def __init__(self, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 6)


class Emitter:
    """Stamps events with `t` (and `run`) and hands them to every sink, one event at a time: a
    thread beside the training loop (the control file's) may emit too, and its line never lands
    inside another."""

    def __init__(self, sinks: list[EventSink], clock: Clock | None = None) -> None:
        self.sinks = list(sinks)
        self.clock = clock or Clock()
        self._lock = threading.RLock()  # re-entrant: a signal handler on the emitting thread may emit

    def emit(self, type_: str, run: str | None = None, **fields: Any) -> Event:
        event: Event = {"type": type_, "t": self.clock()}
        if run is not None:
            event["run"] = run
        event.update(fields)
        event = json_safe(event)
        with self._lock:
            for sink in self.sinks:
                sink.emit(event)
        return event

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class QueueSink:
    """Puts each event on a multiprocessing queue (the app's live feed).

    Never blocks the trainer for long: if the app stops reading and the queue
    fills, events are dropped from the live feed (the run directory keeps them).
    """

    def __init__(self, queue: Any, timeout_s: float = 0.5) -> None:
        self.queue = queue
        self.timeout_s = timeout_s
        self.dropped = 0
        self.detached = False

    def detach(self) -> None:
        """The app is gone: put nothing more on the queue, and never wait at exit for what is still
        buffered for it (nobody reads that pipe any more; the run directory has every event)."""
        self.detached = True
        try:
            self.queue.cancel_join_thread()
        except (AttributeError, OSError, ValueError):
            pass

    def emit(self, event: Event) -> None:
        if self.detached:
            return
        try:
            self.queue.put(event, timeout=self.timeout_s)
        except Exception:  # queue.Full, or the reader went away
            self.dropped += 1

    def close(self) -> None:
        pass


class ListSink:
    """Keeps events in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e["type"] == type_]
