"""Screenshots of replayed fixture run directories at 80x24 and 160x48.

Deterministic: the fixtures are committed, nothing on screen reads a clock, the system pane
reads a fake NVML library and fixed host figures, the replay has finished and every event
is drawn before the capture. Update with `pytest tests/tui/test_snapshots.py --snapshot-update`
after a deliberate change, and look at what changed.
"""
from __future__ import annotations

import pytest

from tests.tui.conftest import FIXTURE_DIR, fake_system, settle
from tui.factory import make_app

LRGRID = FIXTURE_DIR.parent / "run_lrgrid"


@pytest.fixture
def replay_app(monkeypatch):
    # A relative path, so the header reads the same on every machine.
    monkeypatch.chdir(FIXTURE_DIR.parent)
    return make_app(replay=FIXTURE_DIR.name, follow=False, system=fake_system(gpus=False))


@pytest.fixture
def grid_app(monkeypatch):
    monkeypatch.chdir(LRGRID.parent)
    return make_app(replay=LRGRID.name, follow=False, system=fake_system())


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
    assert snap_compare(grid_app, terminal_size=(160, 48),
                        run_before=press("x", "right", "shift+left", "shift+left", "shift+left"))
