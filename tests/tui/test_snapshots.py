"""Screenshots of a replayed fixture run directory at 80x24 and 160x48.

Deterministic: the fixture is committed, nothing on screen reads a clock, the
replay has finished and every event is drawn before the capture. Update with
`pytest tests/tui/test_snapshots.py --snapshot-update` after a deliberate change.
"""
from __future__ import annotations

import pytest

from tests.tui.conftest import FIXTURE_DIR, settle
from tui.app import make_app


@pytest.fixture
def replay_app(monkeypatch):
    # A relative path, so the header reads the same on every machine.
    monkeypatch.chdir(FIXTURE_DIR.parent)
    return make_app(replay=FIXTURE_DIR.name, follow=False)


def test_replay_80x24(snap_compare, replay_app):
    assert snap_compare(replay_app, terminal_size=(80, 24), run_before=settle)


def test_replay_160x48(snap_compare, replay_app):
    assert snap_compare(replay_app, terminal_size=(160, 48), run_before=settle)


def test_replay_log_smooth_epoch_axis_160x48(snap_compare, replay_app):
    async def keys(pilot):
        await settle(pilot)
        await pilot.press("x", "l", "m")
        await settle(pilot)

    assert snap_compare(replay_app, terminal_size=(160, 48), run_before=keys)


def test_replay_overlay_timing_80x24(snap_compare, replay_app):
    async def keys(pilot):
        await settle(pilot)
        await pilot.press("o", "t")
        await settle(pilot)

    assert snap_compare(replay_app, terminal_size=(80, 24), run_before=keys)
