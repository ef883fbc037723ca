"""Shared pieces for the TUI tests: the fixture run directory, a fake trainer bridge,
and a helper that waits (bounded) for the app to reach a state."""

from __future__ import annotations

import asyncio
import inspect
import queue
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest

from tests.waiting import wait_for_app

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "run_small"
#: Hang guards, not timings: a Pilot test that blocks fails instead of hanging the suite. On the
#: shared 2-core VM (load 10+) one key press with its redraw took 3-7 s of wall time for under 1 s
#: of CPU, so 60 s cut healthy 160x48 tests short.
ASYNC_TEST_TIMEOUT_S = 240
WAIT_FOR_S = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests (Pilot) on a fresh event loop, without an asyncio plugin."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), ASYNC_TEST_TIMEOUT_S))
    return True


@pytest.fixture(autouse=True)
def keep_notifications(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record every toast an app shows: Textual drops a toast once its timeout passes, and on a
    loaded machine a check can come later than that (see `notes`)."""
    from textual.app import App

    shown = App.notify

    def notify(self: App, message: str, *, title: str = "", **kwargs: Any) -> None:
        self.__dict__.setdefault("_test_notes", []).append(Note(title, str(message)))
        shown(self, message, title=title, **kwargs)

    monkeypatch.setattr(App, "notify", notify)


class Note(NamedTuple):
    """One toast."""

    title: str
    message: str


def notes(app: Any) -> list[Note]:
    """Every toast `app` has shown, expired or not."""
    return list(app.__dict__.get("_test_notes", []))


@pytest.fixture
def fixture_dir() -> Path:
    return FIXTURE_DIR


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture run directory."""
    dst = tmp_path / "run"
    shutil.copytree(FIXTURE_DIR, dst)
    return dst


def fixture_events() -> list[dict[str, Any]]:
    from tui.feeds.event_reader import read_all

    events, bad = read_all(FIXTURE_DIR)
    assert bad == 0
    return events


class FakeBridge:
    """Stands in for TrainerBridge: events are fed by the test, controls are recorded.

    `control_queue` is a real queue, as the trainer would read it.
    """

    def __init__(self, events: list[dict[str, Any]] | None = None) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.control_queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.alive = False
        self.code: int | None = None
        self.started = 0
        self.shutdowns = 0
        self.released = 0
        #: A trainer that takes this long (in the test's polls) to end its clean stop; 0: it ends at once.
        self.stop_takes_polls = 0
        self.winding_down: threading.Event | None = (
            None  # when set: shutdown waits for it (a trainer winding down)
        )
        self.sent: list[dict[str, Any]] = []  # every control sent, in order
        for e in events or []:
            self.events.put(e)

    def start(self) -> None:
        self.started += 1
        self.alive = True

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        if self.stop_takes_polls and {"cmd": "stop"} in self.sent:
            self.stop_takes_polls -= 1
            if self.stop_takes_polls == 0:
                self.alive, self.code = False, 0
        out = []
        try:
            out.append(self.events.get(timeout=timeout))
            while True:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return out

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.control_queue.put(message)
        if message.get("cmd") == "stop" and self.alive and self.stop_takes_polls == 0:
            self.alive, self.code = False, 0  # a trainer ends its clean stop

    def release(self) -> None:
        self.released += 1

    def is_alive(self) -> bool:
        return self.alive

    def exitcode(self) -> int | None:
        return self.code

    def pid(self) -> int | None:
        return None  # no process: the system pane says the trainer's memory is not known

    def shutdown(self, grace_s: float = 1.0) -> None:
        if self.winding_down is not None:
            self.winding_down.wait(WAIT_FOR_S)
        self.shutdowns += 1
        if self.alive:
            self.alive, self.code = False, 0

    def die(self, code: int) -> None:
        """The process ends on its own (crash: code > 0; killed by signal n: -n)."""
        self.alive, self.code = False, code

    def controls(self) -> list[dict[str, Any]]:
        """Every control sent so far (reading does not consume them, so a wait may poll it)."""
        return list(self.sent)


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = WAIT_FOR_S) -> None:
    """Let the app run until `condition()` holds (fails the test after `timeout`, naming the condition)."""
    await wait_for_app(pilot, condition, timeout)


async def settle(pilot: Any) -> None:
    """Wait until the feed has ended, every event is applied and drawn (deterministic frames)."""
    from tui.widgets.chart import BrailleChart

    app = pilot.app
    # The system pane's first reading comes from a thread: on a loaded machine, after the feed ended.
    await wait_for(
        pilot, lambda: app.feed_end is not None and not app.pump.inbox and app.last_system is not None
    )
    await pilot.pause(0.15)  # one redraw tick
    app.redraw(force=True)
    # Every plot given something to draw has drawn it (a render can lag a loaded machine's redraw).
    await wait_for(
        pilot,
        lambda: all(
            p.chart is not None
            for p in app.screen.query(BrailleChart)
            if p.factory is not None and p.display and p.size.width > 0 and p.size.height > 0
        ),
    )
    await pilot.pause(0.05)
    await asyncio.sleep(0)


class FixedHost:
    """Host readings that never change (snapshots must not show this machine's load)."""

    def cpu_pct(self) -> float | None:
        return 42.0

    def load1(self) -> float | None:
        return 1.5

    def rss(self, pid: int) -> int | None:
        return 3 << 29  # 1.5 GiB


def fake_gpus() -> list:
    from tui.feeds.system import GpuStat

    gib = 1 << 30
    return [
        GpuStat(
            0,
            "NVIDIA H200",
            util=87.0,
            mem_used=31 * gib,
            mem_total=141 * gib,
            power_w=412.0,
            power_limit_w=700.0,
            temp_c=61.0,
        ),
        GpuStat(
            1,
            "NVIDIA H200",
            util=12.0,
            mem_used=2 * gib,
            mem_total=141 * gib,
            power_w=None,
            power_limit_w=None,
            temp_c=38.0,
        ),
    ]


def fake_system(gpus: bool = True):
    """A system source over a fake NVML library (the real reading code runs) and fixed host figures."""
    from tui.feeds.system import FakeNvml, LiveSystem, Nvml

    nvml = Nvml(FakeNvml(fake_gpus())) if gpus else Nvml(FakeNvml(fail="Driver Not Loaded"))
    return LiveSystem(nvml=nvml, host=FixedHost())
