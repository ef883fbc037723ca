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
import time
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

#: A command line longer than this is not a command: it is dropped whole, up to its newline (the app's
#: commands are under 100 bytes), so no part of it is ever parsed.
MAX_LINE_BYTES = 4096
#: A command is one flat JSON object: a line nested deeper than this is refused before it is parsed.
MAX_DEPTH = 4
#: What one read takes; each poll reads the file to its end in reads of this size.
READ_BYTES = 1 << 20
#: Split-backward chunks a viewer may ask for (the app offers 2-64).
MAX_CHUNKS = 64


def nesting_depth(line: bytes) -> int:
    """How deeply `[` and `{` nest in `line`, outside JSON strings (the parser recurses this deep)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_control(line: bytes) -> dict[str, Any] | None:
    """One line of the control file as a command for `Controls.apply`, or None when it is not one
    (too long, nested too deep, not JSON, not an object, an unknown command, values of the wrong
    type). Never raises, whatever the bytes."""
    if len(line) > MAX_LINE_BYTES:
        return None
    if line.count(b"[") + line.count(b"{") > MAX_DEPTH and nesting_depth(line) > MAX_DEPTH:
        return None
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
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


def latest_commands(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A backlog of commands reduced to what it ends in: the last split, the last pause or resume,
    and a stop if there was any (a stop is never taken back). Applying these leaves `Controls` as
    applying the whole backlog in order would, with one change per kind."""
    split = pause = stop = None
    for command in commands:
        if command["cmd"] == "split":
            split = command
        elif command["cmd"] in ("pause", "resume"):
            pause = command
        elif command["cmd"] == "stop":
            stop = stop or command
    return [c for c in (split, pause, stop) if c is not None]


#: The kinds of command a backlog is reduced to, and the words that a line of each must hold.
_KINDS = {"split": (b"split",), "pause": (b"pause", b"resume"), "stop": (b"stop",)}


def latest_in(lines: list[bytes]) -> list[dict[str, Any]]:
    """`latest_commands` of these lines, parsing as few as it can: from the end back, only the lines
    that could still matter (naming a kind of command not found yet, or holding a JSON escape that
    could spell one), found by the bytes search, until a split, a pause/resume and a stop are found.
    A flood of junk or of one command costs a search, not a parse a line."""
    text = b"\n".join(lines)
    found: dict[str, dict[str, Any]] = {}
    end = len(text)
    last: dict[bytes, int] = {}  # each word's last place before `end` (searched again only once passed)
    every_word = [word for words in _KINDS.values() for word in words]
    escapes = []  # lines with JSON escapes matter only where the escapes spell a word (seen once, whole)
    if b"\\u" in text:
        spelled = text.decode("unicode_escape", "ignore").encode("utf-8", "ignore")
        if any(spelled.count(word) != text.count(word) for word in every_word):
            escapes = [b"\\u"]
    while len(found) < len(_KINDS):
        needles = [word for kind, words in _KINDS.items() if kind not in found for word in words] + escapes
        for word in needles:
            if last.get(word, end) >= end:
                last[word] = text.rfind(word, 0, end)
        at = max(last[word] for word in needles)
        if at < 0:
            break
        start = text.rfind(b"\n", 0, at) + 1
        stop = text.find(b"\n", at)
        line = text[start : stop if stop >= 0 else len(text)]
        words = [word for word in needles if word in line and word != b"\\u"]
        if not words:  # found by its escapes: parsed only if they spell a word that matters
            spelled = line.decode("unicode_escape", "ignore").encode("utf-8", "ignore")
            words = [word for word in needles if word in spelled and word != b"\\u"]
        command = parse_control(line) if words else None
        if command is not None:
            found.setdefault("pause" if command["cmd"] == "resume" else command["cmd"], command)
        end = start  # on to the lines before this one
    return [found[k] for k in ("split", "pause", "stop") if k in found]


#: `Controls.stop_reason` of a stop asked through the control file.
VIEWER_STOP = "stopped from a viewer (bstui --attach)"


class ControlFileProblem(Exception):
    """The control file cannot be used as it is (a link, not a regular file, another user's)."""


def _open_own(path: Path, create: bool) -> int:
    """The control file opened for reading: a regular file of this user, never through a link, never
    waited on; made owner-only (and made, empty, when `create`). Raises ControlFileProblem or OSError."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags | (os.O_CREAT if create else 0), 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise ControlFileProblem(
                f"{path} is a symbolic link (refused: a viewer's command would go wherever it points)"
            ) from exc
        raise
    st = os.fstat(fd)
    why = (
        "is not a regular file"
        if not stat.S_ISREG(st.st_mode)
        else f"belongs to another user (uid {st.st_uid})"
        if st.st_uid != os.getuid()
        else ""
    )
    if why:
        os.close(fd)
        raise ControlFileProblem(f"{path} {why} (refused)")
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        pass
    return fd


class ControlFile:
    """Applies the commands viewers append to `<run_dir>/controls.jsonl` (contract.CONTROLS).

    The trainer makes the file empty or keeps it, owner-only (0600): only its user can append, so
    commands from anyone else are refused by the file system. What it already holds is history (a
    resumed sweep does not replay an old pause). A daemon thread polls it a few times a second and
    reads what was appended to its end; of that backlog the latest pause/resume and split win, and
    any stop stops. A line longer than MAX_LINE_BYTES is dropped whole, up to its newline.

    The file is watched: deleted, it is made again (owner-only, empty); replaced by another regular
    file of this user, the new one is read from its start; a link, another user's file or anything
    not a regular file is refused. A watchdog thread notices a poll that fails or stops coming. Each
    change of state is told once through `report(working, reason)` (the trainer records it as a
    `controls` event, which viewers show). Nothing the file holds can raise out of the threads.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        controls: Controls,
        interval_s: float = 0.25,
        report: Callable[[bool, str], None] | None = None,
        resume_on_loss: bool = False,
        stall_s: float = 10.0,
    ) -> None:
        self.path = Path(run_dir) / CONTROLS
        self.controls = controls
        self.interval_s = interval_s
        self.report = report
        #: Resume a paused sweep when the controls stop working (nothing could resume it any more).
        self.resume_on_loss = resume_on_loss
        self.stall_s = stall_s
        #: Why the controls do not work now ("" while they do).
        self.problem = ""
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._offset = 0
        self._pending = b""
        self._discarding = False  # inside a line that is too long: skip to its newline
        self._last_poll = time.monotonic()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> bool:
        """Make or open the file and start polling; False when it cannot be had (a link, not a
        regular file, another user's): `problem` says why, it is reported, and the threads still
        start, so a proper file put in its place later is taken up. The sweep trains on either way."""
        try:
            fd = _open_own(self.path, create=True)
        except (ControlFileProblem, OSError) as exc:
            self._set_problem(_describe(exc))
        else:
            st = os.fstat(fd)
            self._fd, self._ident, self._offset = fd, (st.st_dev, st.st_ino), st.st_size
        self._last_poll = time.monotonic()
        for target, name in (
            (self._poll_forever, "bstui-control-file"),
            (self._watch, "bstui-control-watchdog"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self._fd is not None

    # -- reading -----------------------------------------------------------------------------

    def poll(self) -> int:
        """Apply what was appended since the last poll (to the file's end); how many commands were
        applied after the backlog was reduced to its latest (`latest_commands`)."""
        with self._lock:
            self._follow_the_path()
            commands = self._read_to_end() if self._fd is not None else []
        applied = latest_commands(commands)
        for command in applied:
            self.controls.apply(command)
        self._last_poll = time.monotonic()
        if self.problem and self._fd is not None:
            self._set_problem("")
        return len(applied)

    def _follow_the_path(self) -> None:
        """Notice a deleted or replaced file: make it again, or take up the new one, or refuse it."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == self._ident:
            return
        self._drop_fd()
        try:
            fd = _open_own(self.path, create=st is None)
        except (ControlFileProblem, OSError) as exc:
            self._set_problem(_describe(exc))
            return
        new = os.fstat(fd)
        self._fd, self._ident = fd, (new.st_dev, new.st_ino)
        self._offset, self._pending, self._discarding = 0, b"", False  # all it holds came after: read it all
        if self.problem:
            self._set_problem("")
        elif self.report is not None:
            said = "was deleted: made a new one" if st is None else "was replaced: reading the new file"
            self._tell(True, f"{self.path} {said}")

    def _drop_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._ident = None, None

    def _read_to_end(self) -> list[dict[str, Any]]:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size < self._offset:  # cut short by someone: what it holds now came after, read it all
            self._offset, self._pending, self._discarding = 0, b"", False
        commands: list[dict[str, Any]] = []
        while self._offset < size:
            data = os.pread(self._fd, min(size - self._offset, READ_BYTES), self._offset)
            if not data:
                break  # cut short while being read: the next poll sees the new size
            self._offset += len(data)
            commands.extend(self._lines(data))
        return commands

    def _lines(self, data: bytes) -> list[dict[str, Any]]:
        """The latest commands in `data` (`latest_in`), continuing the line the last read ended inside."""
        *lines, tail = data.split(b"\n")
        if lines:
            if self._discarding:
                self._discarding = False  # the end of the over-long line: the next one is new
                lines[0] = b""
            else:
                lines[0] = self._pending + lines[0]
            self._pending = b""
        commands = latest_in(lines)
        if not self._discarding:
            self._pending += tail
            if len(self._pending) > MAX_LINE_BYTES:  # no command is this long: drop it, up to its newline
                self._pending, self._discarding = b"", True
        return commands

    # -- the threads ---------------------------------------------------------------------------

    def _poll_forever(self) -> None:
        while not self._closed.wait(self.interval_s):
            try:
                self.poll()
            except BaseException as exc:  # noqa: BLE001 - nothing in the file may end the controls silently
                self._set_problem(f"reading {self.path} failed: {_describe(exc)}")

    def _watch(self) -> None:
        """The watchdog: a poll that stops coming (a stalled file system) is told, once."""
        while not self._closed.wait(max(self.interval_s, 1.0)):
            late = time.monotonic() - self._last_poll
            if late > self.stall_s and not self.problem:
                self._set_problem(f"{self.path} has not been read for {late:.0f} s")

    def _set_problem(self, problem: str) -> None:
        if problem == self.problem:
            return
        self.problem = problem
        if problem:
            if self.resume_on_loss and self.controls.paused:
                self.controls.apply({"cmd": "resume"})  # nothing else could resume it now
                problem += "; the sweep resumes (no viewer could resume it)"
            self._tell(False, problem)
        else:
            self._tell(True, f"{self.path} works again")

    def _tell(self, working: bool, reason: str) -> None:
        if self.report is None:
            return
        try:
            self.report(working, reason)
        except Exception:  # noqa: BLE001 - telling must not take the controls down with it
            pass

    def close(self) -> None:
        self._closed.set()
        for thread in self._threads:
            thread.join(timeout=2 * self.interval_s + 1)
        with self._lock:
            self._drop_fd()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ControlFileProblem):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return f"{type(exc).__name__}: {exc}"
