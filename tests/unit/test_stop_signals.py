"""trainer.runlog.controls.StopSignals: how SIGINT, SIGTERM and SIGHUP become the trainer's clean stop."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from trainer.runlog.controls import (
    Controls,
    Interrupted,
    StopSignals,
    exit_code,
    interrupt_signal,
    signal_name,
)


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # the handler runs in this (main) thread before kill returns to Python code


def test_exit_codes_are_128_plus_the_signal() -> None:
    assert exit_code(signal.SIGINT) == 130  # the same as Ctrl-C always gave
    assert exit_code(signal.SIGTERM) == 143 and exit_code(signal.SIGHUP) == 129
    assert signal_name(signal.SIGINT) == "Ctrl-C" and signal_name(signal.SIGTERM) == "SIGTERM"
    assert interrupt_signal(KeyboardInterrupt()) == signal.SIGINT
    assert interrupt_signal(Interrupted(signal.SIGHUP)) == signal.SIGHUP


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_during_start_up_a_signal_raises_a_keyboard_interrupt(signum: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt) as info, StopSignals():
        send(signum)
    assert isinstance(info.value, Interrupted) and info.value.signum == signum
    assert signal.getsignal(signum) == before  # put back


def test_inside_a_deferred_section_the_signal_waits_for_its_end() -> None:
    done = []
    with pytest.raises(Interrupted) as info, StopSignals() as signals:
        with signals.deferred():
            send(signal.SIGTERM)
            send(signal.SIGINT)  # the first one is the one that counts
            done.append("the whole section ran")
    assert done == ["the whole section ran"] and info.value.signum == signal.SIGTERM


def test_once_the_sweep_runs_sigterm_and_sighup_request_a_stop() -> None:
    controls = Controls()
    with StopSignals() as signals:
        signals.stop_via(controls)
        version = controls.version
        send(signal.SIGHUP)
        send(signal.SIGTERM)  # a second signal changes nothing but the version
        assert controls.stop and controls.version > version
        assert signals.received == signal.SIGHUP and controls.stop_reason == "stopped by SIGHUP"
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C still interrupts at once, as it always has
            send(signal.SIGINT)


def test_the_apps_stop_keeps_its_reason_empty_and_a_signals_reason_is_kept() -> None:
    controls = Controls()
    controls.apply({"cmd": "stop"})
    assert controls.stop and controls.stop_reason == ""
    controls = Controls()
    controls.apply({"cmd": "stop", "reason": "stopped by SIGTERM"})
    controls.apply({"cmd": "stop"})
    assert controls.stop_reason == "stopped by SIGTERM"


def test_outside_the_main_thread_nothing_is_installed() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body() -> None:
        with StopSignals() as signals:
            seen.append((signals.enabled, signal.getsignal(signal.SIGTERM)))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [(False, before)]
