"""SIGTERM and SIGHUP (a batch scheduler's notice, an SSH drop) and Ctrl-C turned into the trainer's clean
stop (`StopSignals`), for the headless trainer and the app's trainer alike; the exit code and the name
of a stop signal.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

from trainer.runlog.controls.state import Controls


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
