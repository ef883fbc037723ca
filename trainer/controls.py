"""Live controls from the app: pause/resume, stop, split-backward on/off; and the watch on the
process that controls this one.

The app puts small dicts on a control queue ({"cmd": "pause"}, {"cmd": "resume"},
{"cmd": "stop"}, {"cmd": "split", "enabled": bool, "chunks": int}). A daemon thread
in the trainer process drains that queue into a `Controls` object; the training
loop only compares `Controls.version` with the last version it saw, one integer
comparison per iteration, so the hot loop pays nothing for being controllable.

`ControlFile` does the same for viewers that did not start the trainer (bstui --attach): they append
the same dicts, one JSON line each, to the run directory's controls.jsonl.

`StopSignals` turns SIGTERM and SIGHUP (a batch scheduler's notice, an SSH drop) into the same
stop request on a `Controls`, for the headless trainer and the app's trainer alike.
"""
from __future__ import annotations

import json
import os
import queue as queue_mod
import signal
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator

from trainer.runlog.contract import CONTROLS


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


def listen(control_queue: Any, controls: Controls, on_detach: Callable[[], None] | None = None) -> threading.Thread:
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
                controls.apply(msg)

    thread = threading.Thread(target=drain, name="bstui-controls", daemon=True)
    thread.start()
    return thread


def watch_parent(parent_pid: int, on_gone: Callable[[], None], interval_s: float = 1.0,
                 until: Callable[[], bool] = lambda: False) -> threading.Thread:
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


def _available(*names: str) -> tuple[int, ...]:
    return tuple(getattr(signal, n) for n in names if hasattr(signal, n))  # no SIGHUP on Windows


#: The signals that stop a trainer cleanly: Ctrl-C, a scheduler's or `kill`'s SIGTERM, an SSH drop's SIGHUP.
STOP_SIGNALS = _available("SIGINT", "SIGTERM", "SIGHUP")
#: Those that request a stop through the controls once the sweep runs (Ctrl-C keeps raising there).
REQUEST_SIGNALS = _available("SIGTERM", "SIGHUP")


def signal_name(signum: int) -> str:
    """'SIGTERM', 'SIGHUP', 'Ctrl-C' (SIGINT), or 'signal N'."""
    if signum == signal.SIGINT:
        return "Ctrl-C"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """The exit code of a trainer stopped by `signum`: the shell's 128 + N (Ctrl-C 130, SIGHUP 129,
    SIGTERM 143), so a script or scheduler can tell which signal ended a still-valid run directory."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """A stop signal reached the trainer where it cannot simply request a stop (start-up, or Ctrl-C);
    a KeyboardInterrupt, so everything that already handles Ctrl-C handles it the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def interrupt_signal(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (plain ones are Ctrl-C)."""
    return exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)


class StopSignals:
    """Stop signals turned into the trainer's clean stop, for as long as the `with` block lasts.

    Before `stop_via`, during start-up, a signal raises `Interrupted` where the main thread is
    (nothing is recorded yet), except inside `deferred()` sections (taking the lock, writing the
    first files), where it is held until the section ends. After `stop_via(controls)`, SIGTERM and
    SIGHUP only request a stop (the training loop sees it at its next step, never in the middle of a
    checkpoint write) and `received` remembers which signal it was; Ctrl-C still raises, as it
    always has. Handlers are installed only from the main thread (Python's rule); elsewhere, and
    with `enabled=False`, the block changes nothing.
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS, enabled: bool = True) -> None:
        self.signals = signals
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received: int | None = None  # the signal that requested the stop, once one did
        self._controls: Controls | None = None
        self._deferring = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        return self.install()

    def install(self) -> StopSignals:
        """Take over the signals (a process that keeps them for its whole life calls this alone)."""
        if self.enabled and not self._previous:
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the handlers back as they were (idempotent); the trainer is on its own again."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def stop_via(self, controls: Controls) -> None:
        """From now on SIGTERM and SIGHUP request a stop on `controls` instead of raising."""
        self._controls = controls

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A start-up section that a signal must not cut in two; the signal raises at its end."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._pending is not None:
            signum, self._pending = self._pending, None
            raise Interrupted(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._controls is not None and signum in REQUEST_SIGNALS:
            if self.received is None:
                self.received = signum
            self._controls.apply({"cmd": "stop", "reason": f"stopped by {signal_name(signum)}"})
            return
        if self._deferring:
            if self._pending is None:
                self._pending = signum
            return
        raise Interrupted(signum)


# -- the control file: commands from viewers that did not start this trainer ------------------------

#: At most this much is read from the control file per poll, and a line longer than this is dropped.
MAX_CONTROL_BYTES = 64 << 10
#: Split-backward chunks a viewer may ask for (the app offers 2-64).
MAX_CHUNKS = 64


def parse_control(line: bytes) -> dict[str, Any] | None:
    """One line of the control file as a command for `Controls.apply`, or None when it is not one
    (not JSON, not an object, an unknown command, or values of the wrong type)."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(msg, dict):
        return None
    cmd = msg.get("cmd")
    if cmd in ("pause", "resume"):
        return {"cmd": cmd}
    if cmd == "stop":
        return {"cmd": "stop", "reason": VIEWER_STOP}
    if cmd == "split":
        enabled, chunks = msg.get("enabled"), msg.get("chunks")
        if not isinstance(enabled, bool):
            return None
        if not enabled:
            return {"cmd": "split", "enabled": False, "chunks": 1}
        if isinstance(chunks, bool) or not isinstance(chunks, int) or not 2 <= chunks <= MAX_CHUNKS:
            return None
        return {"cmd": "split", "enabled": True, "chunks": chunks}
    return None


#: `Controls.stop_reason` of a stop asked through the control file.
VIEWER_STOP = "stopped from a viewer (bstui --attach)"


class ControlFile:
    """Applies the commands viewers append to `<run_dir>/controls.jsonl` (contract.CONTROLS).

    The trainer makes the file empty or keeps it, owner-only (0600): only its user can append, so
    commands from anyone else are refused by the file system. What it already holds is history (a
    resumed sweep does not replay an old pause). A daemon thread polls its size a few times a second
    and applies each new complete line; the training loop sees only `Controls.version` change.
    """

    def __init__(self, run_dir: str | os.PathLike[str], controls: Controls, interval_s: float = 0.25) -> None:
        self.path = Path(run_dir) / CONTROLS
        self.controls = controls
        self.interval_s = interval_s
        self._fd: int | None = None
        self._offset = 0
        self._pending = b""
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Make or open the file and start polling; False (and nothing started) when it cannot be
        had (not a regular file of this user): the sweep trains on without it."""
        flags = os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError:
            return False
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            os.close(fd)
            return False
        try:
            os.fchmod(fd, 0o600)
        except OSError:
            pass
        self._fd, self._offset = fd, st.st_size
        self._thread = threading.Thread(target=self._poll_forever, name="bstui-control-file", daemon=True)
        self._thread.start()
        return True

    def poll(self) -> int:
        """Apply the complete lines appended since the last poll; how many commands were applied."""
        if self._fd is None:
            return 0
        size = os.fstat(self._fd).st_size
        if size < self._offset:  # cut short by someone: what it holds now came after, read it all
            self._offset, self._pending = 0, b""
        if size == self._offset:
            return 0
        data = os.pread(self._fd, min(size - self._offset, MAX_CONTROL_BYTES), self._offset)
        self._offset += len(data)
        *lines, self._pending = (self._pending + data).split(b"\n")
        if len(self._pending) > MAX_CONTROL_BYTES:
            self._pending = b""  # a line with no end in sight: not a command
        applied = 0
        for line in lines:
            command = parse_control(line)
            if command is not None:
                self.controls.apply(command)
                applied += 1
        return applied

    def _poll_forever(self) -> None:
        while not self._closed.wait(self.interval_s):
            try:
                self.poll()
            except OSError:
                return  # the file went away with its directory: nothing more to obey

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval_s + 1)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
