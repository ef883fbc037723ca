"""Reading a run directory while the trainer writes it: nothing the trainer writes reads as unreadable.

A real headless sweep with a fused group (its `fused_group` event included) is followed by the app's
reader and state as it is written, so partial trailing lines and every event type a live run makes
are read the way `bstui --attach` reads them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.waiting import wait_until
from trainer.runlog import EVENT_TYPES
from tui.feeds.event_reader import EventReader
from tui.state.sweep import SweepState


def test_every_event_type_the_trainer_writes_is_used_not_counted_unreadable():
    from tui.state.events import HANDLERS

    assert set(EVENT_TYPES) <= set(HANDLERS)
    s = SweepState()
    assert s.apply(
        {
            "type": "fused_group",
            "t": 3.0,
            "group": "fused0-bs6",
            "runs": ["a", "b"],
            "batch_size": 6,
            "steps": 100,
            "wall_s": 0.5,
            "compute_s": 0.4,
            "device": "cpu",
            "cpu_threads": 1,
        }
    )
    assert s.skipped == 0


@pytest.mark.subprocess
def test_reading_while_the_trainer_writes_skips_nothing(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "trainer",
        "run",
        "experiments/lr-grid.toml",
        "--quiet",
        "--out",
        str(out),
        "--set",
        "data.dataset=synthetic-digits",
        "--set",
        "data.train_samples=300",
        "--set",
        "data.test_samples=100",
        "--set",
        "sweep.epochs=1",
        "--set",
        "sweep.batch_sizes=[6,60]",
        "--set",
        "sweep.seeds=1",
        "--set",
        "sweep.lr_grid.points=2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    reader, state = None, SweepState()
    types: set[str] = set()
    reads_while_writing = 0

    def read_on() -> bool:
        """One read while the trainer writes; True once it has ended and its file is read to the end."""
        nonlocal reader, reads_while_writing
        running = proc.poll() is None
        if reader is None and (out / "events.jsonl").is_file():
            reader = EventReader(out / "events.jsonl", chunk_bytes=512)  # small reads: lines get cut
        if reader is None:
            return not running
        events = reader.read()
        reads_while_writing += bool(events) and running
        for event in events:
            types.add(event["type"])
            state.apply(event)
        return not running and not events and reader.at_end

    try:
        wait_until(read_on, "the trainer to end and its events to be read to the end", interval=0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    assert reads_while_writing > 0
    assert "fused_group" in types and state.finished
    assert reader.bad_lines == 0 and state.skipped == 0
