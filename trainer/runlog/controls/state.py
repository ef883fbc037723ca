"""The controls a trainer obeys, as state: pause/resume, stop, split-backward on/off (`Controls`, whose
`version` grows on every change, so the training loop pays one integer comparison per step); the thread
that drains the app's control queue into it; and the watch on the process that started this one.
"""

from __future__ import annotations

import os
import queue as queue_mod
import threading
from typing import Any, Callable


class StopRequested(Exception):
    """The user asked to stop (app control, or Ctrl-C turned into a stop); the sweep ends every run."""


class Controls:
    """State requested by the app; `version` grows on every change."""

    def __init__(self) -> None:
        self.version = 0
        self.paused = False
        self.stop = False
        self.stop_reason = ""  # why, in words, once stopped ("stopped by SIGTERM"); "" for the app's stop
        self.split_chunks = 0  # 0: no request yet; 1: split off; k > 1: split on with k chunks
        self._resume = threading.Event()
        self._resume.set()

    def apply(self, msg: dict[str, Any]) -> None:
        cmd = msg.get("cmd")
        if cmd == "pause":
            self.paused = True
            self._resume.clear()
        elif cmd == "resume":
            self.paused = False
            self._resume.set()
        elif cmd == "stop":
            self.stop = True
            self.stop_reason = self.stop_reason or str(msg.get("reason") or "")
            self.paused = False
            self._resume.set()
        elif cmd == "split":
            chunks = int(msg.get("chunks", 1)) if msg.get("enabled") else 1
            self.split_chunks = max(1, chunks)
        else:
            return  # unknown commands are ignored: an older app must not crash a newer trainer
        self.version += 1

    def wait_while_paused(self, timeout: float = 0.2) -> None:
        """Block while paused (wakes for resume or stop)."""
        while self.paused and not self.stop:
            self._resume.wait(timeout)


def listen(
    control_queue: Any, controls: Controls, on_detach: Callable[[], None] | None = None
) -> threading.Thread:
    """Start a daemon thread that applies every message from `control_queue`. {"cmd": "detach"} (the
    app leaves, the sweep goes on) calls `on_detach` and ends the thread: nobody sends any more."""

    def drain() -> None:
        while True:
            try:
                msg = control_queue.get(timeout=0.5)
            except queue_mod.Empty:
                continue
            except (EOFError, OSError, ValueError):
                return  # the app went away; training goes on, the run directory is the record
            if msg is None:
                return
            if isinstance(msg, dict) and msg.get("cmd") == "detach":
                if on_detach is not None:
                    on_detach()
                return
            if isinstance(msg, dict):
                try:
                    controls.apply(msg)
                except (TypeError, ValueError):
                    pass  # a malformed message is not a command; the next one still is

    thread = threading.Thread(target=drain, name="bstui-controls", daemon=True)
    thread.start()
    return thread


def watch_parent(
    parent_pid: int,
    on_gone: Callable[[], None],
    interval_s: float = 1.0,
    until: Callable[[], bool] = lambda: False,
) -> threading.Thread:
    """Call `on_gone` once, from a daemon thread, when the process that started this one is gone
    (this process was re-parented: its parent pid is no longer `parent_pid`); the watch ends early
    once `until()` is true. So a killed app or sweep leaves no trainer or worker behind."""

    def watch() -> None:
        wait = threading.Event()
        while not until():
            if os.getppid() != parent_pid:
                on_gone()
                return
            wait.wait(interval_s)

    thread = threading.Thread(target=watch, name="bstui-parent-watch", daemon=True)
    thread.start()
    return thread
