"""`ControlFile`: the commands viewers that did not start this trainer (bstui --attach) append to the
run directory's controls.jsonl, applied to the trainer's `Controls`. The file is owner-only and never
opened through a link; its problems are reported, never raised into the training loop.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable

from trainer.runlog.contract import CONTROLS
from trainer.runlog.controls.lines import MAX_LINE_BYTES, READ_BYTES, latest_commands, latest_in
from trainer.runlog.controls.state import Controls


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
