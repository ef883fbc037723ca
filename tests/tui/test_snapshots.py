"""Screenshots of replayed fixture run directories at 80x24 and 160x48.

Deterministic: the fixtures are committed, nothing on screen reads a clock, the system pane
reads a fake NVML library and fixed host figures, the replay has finished and every event
is drawn before the capture. Update with `pytest tests/tui/test_snapshots.py --snapshot-update`
after a deliberate change, and look at what changed.
"""

from __future__ import annotations

import json

import pytest

from tests.tui.conftest import FIXTURE_DIR, fake_system, settle, wait_for
from tui.assemble import make_app
from tui.widgets.chart import BrailleChart

LRGRID = FIXTURE_DIR.parent / "run_lrgrid"
RUNNING = FIXTURE_DIR.parent / "run_answer_running"


@pytest.fixture
def replay_app(monkeypatch):
    # A relative path, so the header reads the same on every machine.
    monkeypatch.chdir(FIXTURE_DIR.parent)
    return make_app(replay=FIXTURE_DIR.name, follow=False, system=fake_system(gpus=False))


@pytest.fixture
def grid_app(monkeypatch):
    monkeypatch.chdir(LRGRID.parent)
    return make_app(replay=LRGRID.name, follow=False, system=fake_system())


@pytest.fixture
def running_app(monkeypatch):
    # Followed (no sweep_finished): the runs still training stay running, as in a live sweep.
    monkeypatch.chdir(RUNNING.parent)
    return make_app(replay=RUNNING.name, follow=True, system=fake_system())


def press(*keys: str):
    async def run(pilot):
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run


def test_replay_80x24(snap_compare, replay_app):
    assert snap_compare(replay_app, terminal_size=(80, 24), run_before=settle)


def test_replay_160x48(snap_compare, replay_app):
    assert snap_compare(replay_app, terminal_size=(160, 48), run_before=settle)


def test_replay_log_raw_epoch_axis_160x48(snap_compare, replay_app):
    assert snap_compare(replay_app, terminal_size=(160, 48), run_before=press("x", "l", "m"))


def test_replay_overlay_timing_80x24(snap_compare, replay_app):
    assert snap_compare(replay_app, terminal_size=(80, 24), run_before=press("o", "t"))


def test_lr_grid_80x24_pages_with_the_system_line(snap_compare, grid_app):
    assert snap_compare(grid_app, terminal_size=(80, 24), run_before=settle)


def test_lr_grid_160x48_with_the_system_pane(snap_compare, grid_app):
    assert snap_compare(grid_app, terminal_size=(160, 48), run_before=settle)


def test_lr_grid_overlay_focused_80x24(snap_compare, grid_app):
    assert snap_compare(grid_app, terminal_size=(80, 24), run_before=press("o", "tab", "tab"))


def test_lr_grid_overlay_160x48(snap_compare, grid_app):
    assert snap_compare(grid_app, terminal_size=(160, 48), run_before=press("o"))


def test_lr_grid_accuracy_with_the_target_160x48(snap_compare, grid_app):
    assert snap_compare(grid_app, terminal_size=(160, 48), run_before=press("a", "x"))


def test_lr_grid_accuracy_overlay_80x24(snap_compare, grid_app):
    assert snap_compare(grid_app, terminal_size=(80, 24), run_before=press("a", "o"))


def test_lr_grid_crosshair_160x48(snap_compare, grid_app):
    assert snap_compare(
        grid_app,
        terminal_size=(160, 48),
        run_before=press("x", "right", "shift+left", "shift+left", "shift+left"),
    )


def _running_tail() -> tuple[str, int]:
    """The run the running fixture ends in, and how many of its iterations the file holds."""
    events = [json.loads(line) for line in (RUNNING / "events.jsonl").read_text().splitlines()]
    last = [e for e in events if e["type"] == "losses"][-1]
    return last["run"], last["first_iter"] + len(last["values"])


def settle_live(*keys: str):
    """Followed replays never end: wait until every event of the file is applied, then draw."""
    run, iters = _running_tail()

    async def run_before(pilot):
        app = pilot.app
        await wait_for(
            pilot,
            lambda: (
                run in app.state.runs
                and len(app.state.runs[run].losses) == iters
                and not app.pump.inbox
                and app.last_system is not None
            ),
        )
        await pilot.pause(0.15)
        app.redraw(force=True)
        await pilot.press(*keys)
        await pilot.pause(0.15)
        app.redraw(force=True)
        await wait_for(
            pilot,
            lambda: all(
                p.chart is not None
                for p in app.screen.query(BrailleChart)
                if p.factory is not None and p.display and p.size.width > 0
            ),
        )
        await pilot.pause(0.05)

    return run_before


def test_running_sweep_window_80x24(snap_compare, running_app):
    """`w`: each plot its own run's last 10%: the run still training is not emptied by the finished ones."""
    assert snap_compare(
        running_app, terminal_size=(80, 24), run_before=settle_live("w", "pagedown", "pagedown")
    )


def test_running_sweep_window_160x48(snap_compare, running_app):
    assert snap_compare(running_app, terminal_size=(160, 48), run_before=settle_live("w", "pagedown"))
