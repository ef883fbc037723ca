"""Waiting in tests: on a condition, never for a fixed time.

A test that needs something to have happened (a trainer wrote its first losses, a process ended, a
screen shows a row) polls for it with `wait_until`, under a generous hang guard: the guard only turns a
hang into a failure that says what never happened; nothing here asserts how long anything took. On the
shared 2-core machines the suite runs on, a trainer's start (torch import, data) has taken 130 s.
"""

from __future__ import annotations

import inspect
import queue
import subprocess
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: The default hang guard, in seconds: far above anything a healthy run waits (a busy 2-core box took
#: 130 s to start a trainer), so it fails only a hang.
HANG_GUARD_S = 900.0


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (Linux: read from /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _ended(proc: Any) -> str | None:
    """Why `proc` (a subprocess.Popen or a multiprocessing.Process) can no longer make a condition true,
    or None while it runs."""
    if hasattr(proc, "poll"):
        if proc.poll() is None:
            return None
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # a child of it still holds its pipes
            out, err = "", "(its output pipes stayed open)"
        said = (_text(out) + _text(err))[-4000:]
        return f"its process ended with code {proc.returncode}; its output ends:\n{said}"
    if proc.is_alive():
        return None
    return f"its process ended with code {proc.exitcode}"


def _describe(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def wait_until(
    condition: Callable[[], T],
    what: str | Callable[[], str],
    timeout: float = HANG_GUARD_S,
    interval: float = 0.05,
    proc: Any = None,
) -> T:
    """Poll `condition()` until it returns something truthy, and return that.

    Fails the test, naming `what` (a description of the awaited state, or a callable that makes one
    at failure time, such as the last screen), when `timeout` seconds pass first, or at once when `proc`
    (the process that should bring the condition about) has ended.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if proc is not None:
            ended = _ended(proc)
            if ended is not None:
                result = condition()  # it may have made it true on its way out
                if result:
                    return result
                raise AssertionError(f"waiting for {_describe(what)}: {ended}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waiting for {_describe(what)}: not reached in {timeout:g} s")
        time.sleep(interval)


def wait_gone(pid: int, what: str = "", timeout: float = HANG_GUARD_S) -> None:
    """Wait until process `pid` has ended (a reparented one: until init has reaped it)."""
    wait_until(lambda: not alive(pid), what or f"process {pid} to end", timeout, interval=0.05)


def collect_until(
    events: Any, done: Callable[[list[Any]], Any], what: str, proc: Any, timeout: float = HANG_GUARD_S
) -> list[Any]:
    """Take items one by one from the queue `events` (a trainer's event queue) until `done(taken)`
    holds; returns the items taken. Fails naming `what` at the timeout, or once `proc`, the process that
    feeds the queue, has ended and the queue is empty with `done` still false."""
    taken: list[Any] = []

    def more() -> Any:
        try:
            taken.append(events.get(timeout=0.2))
        except queue.Empty:
            ended = _ended(proc)
            if ended is not None:
                raise AssertionError(f"waiting for {what}: {ended}; last items: {taken[-3:]}") from None
            return False
        return done(taken)

    wait_until(more, lambda: f"{what} (last items: {taken[-3:]})", timeout, interval=0)
    return taken


async def wait_for_app(
    pilot: Any, condition: Callable[[], Any], timeout: float, what: str | Callable[[], str] | None = None
) -> None:
    """`wait_until` for a Textual app under a Pilot: the app runs (its event loop turns) between polls.
    Without `what`, a failure names the condition by its source line."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = _describe(what) if what is not None else _source(condition)
            raise AssertionError(f"waiting for {said}: not reached in {timeout:g} s")
        await pilot.pause(0.02)


def _source(condition: Callable[[], Any]) -> str:
    """The source line of `condition` (a lambda, typically), for a failure message."""
    try:
        return " ".join(inspect.getsource(condition).split())[:300]
    except (OSError, TypeError):
        return repr(condition)
