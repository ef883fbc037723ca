"""The trainer subprocess and its two queues, seen from the app.

The trainer runs in a `spawn` child (safe with CUDA, and the app never imports
torch). Events come back on `event_queue`; control messages go out on
`control_queue` (DESIGN.md). Nothing here touches Textual: the app's thread worker
calls `poll()`, the UI thread calls `send()`.

The child runs in a session of its own (no SIGHUP when the terminal goes, no Ctrl-C from it; one
process group with its DataLoader workers) and watches its parent: the trainer outlives its viewer.
When the app leaves (`release`: `d`, or `q` while the stop is still under way) or dies (a crash, an
SSH drop), the trainer goes on headless into its run directory (trainer.cli.child.Headless). Only
`shutdown` (restart, or a trainer still starting) ends it from here.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue as queue_mod
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from trainer.runlog import Event
from trainer.runlog.controls import watch_parent

#: The trainer's subprocess entry point (module:function), DESIGN.md.
TRAINER_ENTRY = "trainer.cli.child:run_child"


@dataclass
class TrainerExit:
    """How the trainer process ended (None while it runs)."""

    exitcode: int | None

    def describe(self) -> str:
        """Plain words for the UI: 'exit code 1', 'killed by SIGKILL', ..."""
        code = self.exitcode
        if code is None:
            return "still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (out of memory, or kill -9?)" if -code == signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        return f"exit code {code}"


class Bridge(Protocol):
    """What the app needs from a live trainer (tests pass a fake)."""

    def start(self) -> None: ...

    def poll(self, timeout: float) -> list[Event]: ...

    def send(self, message: dict[str, Any]) -> None: ...

    def is_alive(self) -> bool: ...

    def exitcode(self) -> int | None: ...

    def pid(self) -> int | None:
        """The trainer process's pid while it runs (None before start and after exit)."""
        ...

    def release(self) -> None:
        """Leave the trainer running without this app (it goes on headless)."""
        ...

    def shutdown(self, grace_s: float = 1.0) -> None: ...


def remove_if_empty(path: str | None) -> None:
    """Remove the trainer's log if nothing was written to it: an empty log tells nobody anything."""
    try:
        if path and os.stat(path).st_size == 0:
            os.unlink(path)
    except OSError:
        pass


def _take_the_group_down(log_path: str | None = None) -> None:
    """In the child, once the app is gone: end the whole trainer process group, then this process
    (an empty log goes first: nobody is left to read it)."""
    remove_if_empty(log_path)
    try:
        if os.getpgrp() == os.getpid():  # only a group of our own
            os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(1)


def _your_own_session() -> None:
    """A session of its own (pgid = sid = pid): the terminal's hangup never reaches the trainer,
    and one killpg still ends it with its DataLoader workers."""
    try:
        os.setsid()
    except OSError:  # already a session leader (cannot happen for a spawned child): a group at least
        try:
            os.setpgrp()
        except OSError:
            pass


def child_main(
    config_path: str | None,
    overrides: list[str],
    out_dir: str | None,
    event_queue: Any,
    control_queue: Any,
    parent_pid: int,
    log_path: str | None = None,
    entry: str = TRAINER_ENTRY,
) -> None:
    """Entry point of the trainer process: own session, parent watch, then the sweep."""
    _your_own_session()
    if log_path:
        # The app owns the terminal: anything the trainer prints (a traceback) goes to a
        # log whose last line the app shows if the trainer dies.
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
    # The app gone before the trainer could run (torch still loading): nothing is recorded and nobody
    # knows of a run, so end. Once it runs, the entry's headless hook (if it has one) takes over.
    on_gone: list[Callable[[], None]] = [lambda: _take_the_group_down(log_path)]
    watch_parent(parent_pid, lambda: on_gone[-1](), interval_s=0.5)
    module_name, _, func = entry.partition(":")
    module = importlib.import_module(module_name)  # torch is imported here, in the child only
    hook = getattr(module, "headless_hook", None)
    if hook is not None:
        on_gone.append(hook(log_path))
    getattr(module, func)(config_path, overrides, out_dir, event_queue, control_queue)
    # The sweep has written and released everything; its last events go out, then the process ends
    # without the interpreter's seconds-long teardown of torch (trainer.process.exit).
    from trainer.process.exit import quick_exit

    quick_exit(0, (event_queue,))


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with the real stderr.

    Under Textual, sys.stderr is a capture object whose fileno() is -1, and the
    tracker (started lazily by the first Queue) fails to spawn with it.
    """
    from multiprocessing import resource_tracker

    saved = sys.stderr
    try:
        if sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        sys.stderr = saved


class TrainerBridge:
    """A trainer subprocess: start, read events without blocking, send controls, stop."""

    def __init__(
        self, config_path: str | None, overrides: list[str], out_dir: str | None, entry: str = TRAINER_ENTRY
    ) -> None:
        self.config_path = config_path
        self.entry = entry
        self.overrides = list(overrides)
        self.out_dir = out_dir
        self._ctx = multiprocessing.get_context("spawn")
        _ensure_resource_tracker()
        self.event_queue: Any = self._ctx.Queue()
        self.control_queue: Any = self._ctx.Queue()
        self.process: Any = None
        self._stopped = False
        self.log_path = ""  # made by start(): a bridge that never starts leaves no file

    def start(self) -> None:
        fd, self.log_path = tempfile.mkstemp(prefix="bstui-trainer-", suffix=".log")
        os.close(fd)
        self.process = self._ctx.Process(
            target=child_main,
            args=(
                self.config_path,
                self.overrides,
                self.out_dir,
                self.event_queue,
                self.control_queue,
                os.getpid(),
                self.log_path,
                self.entry,
            ),
            name="bstui-trainer",
            daemon=False,
        )
        self.process.start()

    def poll(self, timeout: float) -> list[Event]:
        """Events available now (waits up to `timeout` for the first one); never blocks longer."""
        events: list[Event] = []
        try:
            events.append(self.event_queue.get(timeout=timeout))
            while len(events) < 10_000:
                events.append(self.event_queue.get_nowait())
        except queue_mod.Empty:
            pass
        except (EOFError, OSError, ValueError):
            pass  # queue closed under us (shutdown, or a dead writer): what we have is what we got
        return [e for e in events if isinstance(e, dict)]

    def send(self, message: dict[str, Any]) -> None:
        if self._stopped:
            return
        try:
            self.control_queue.put(message)
        except (OSError, ValueError):
            pass  # the trainer is gone; the UI already says so

    def is_alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def exitcode(self) -> int | None:
        return None if self.process is None else self.process.exitcode

    def pid(self) -> int | None:
        return self.process.pid if self.is_alive() else None

    def release(self) -> None:
        """Leave the trainer running without this app: it drops the live feed and trains on headless
        into its run directory (told now through the control queue; its parent watch is the backstop).
        Afterwards `shutdown` does nothing, and this process's exit neither waits for it nor kills it."""
        if self._stopped:
            return
        self._stopped = True
        proc = self.process
        if proc is None:
            return
        try:
            self.control_queue.put({"cmd": "detach"})
            self.control_queue.close()
            self.control_queue.join_thread()  # in the pipe now: this process may end at once afterwards
        except (OSError, ValueError, AssertionError):
            pass
        # multiprocessing joins every child it started when the interpreter exits (its atexit hook):
        # this one is no longer ours to wait for.
        from multiprocessing import process as mp_process

        mp_process._children.discard(proc)  # noqa: SLF001 - the only way to stop that join for one child
        try:
            self.event_queue.cancel_join_thread()
            self.event_queue.close()
        except (OSError, ValueError, AttributeError):
            pass

    def shutdown(self, grace_s: float = 1.0) -> None:
        """Stop the trainer and everything it started, within about grace_s + 0.5 s.

        Asks politely first (a stopped sweep still writes a complete run directory),
        then SIGTERM, then SIGKILL to the trainer's process group.
        """
        if self._stopped:
            return
        self._stopped = True
        proc = self.process
        died_alone = proc is not None and not proc.is_alive() and proc.exitcode not in (0, None)
        if proc is not None and proc.is_alive():
            try:
                self.control_queue.put({"cmd": "stop"})
            except (OSError, ValueError):
                pass
            # Keep reading while it winds down: a child blocks at exit until its queued
            # events are in the pipe, and nobody else reads them now.
            deadline = time.monotonic() + grace_s
            while proc.is_alive() and time.monotonic() < deadline:
                self.poll(0.05)
            if proc.is_alive():
                proc.terminate()
                proc.join(0.3)
        if proc is not None:
            pid = proc.pid
            try:
                os.killpg(pid, signal.SIGKILL)  # the child made itself group leader: its pid is the pgid
            except (ProcessLookupError, PermissionError, OSError):
                pass
            if proc.is_alive():
                proc.kill()
            proc.join(0.5)
        if not died_alone:  # keep the log of a trainer that died: the UI names it (unless it is empty)
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        remove_if_empty(self.log_path)
        for q in (self.event_queue, self.control_queue):
            try:
                q.cancel_join_thread()  # never hang app exit on a queue nobody will read
                q.close()
            except (OSError, ValueError, AttributeError):
                pass
