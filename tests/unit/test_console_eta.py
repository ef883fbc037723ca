"""The headless progress bars show an ETA from the measured rate."""

from __future__ import annotations

import io
import re

from rich.console import Console

from trainer.cli.console import ConsoleSink


def test_progress_bars_show_time_left_once_a_rate_is_measured():
    buf = io.StringIO()
    sink = ConsoleSink(Console(file=buf, width=140, force_terminal=True))
    sink.emit({"type": "sweep_started", "t": 0.0, "device": "cpu", "torch": "2", "dataset": "d"})
    sink.emit(
        {"type": "run_started", "t": 0.0, "run": "bs6", "iters_per_epoch": 100, "epochs": 2, "lr": 0.02}
    )
    for i in range(5):
        sink.emit({"type": "losses", "t": 0.1, "run": "bs6", "first_iter": 10 * i, "values": [1.0] * 10})
    sink.close()
    out = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", buf.getvalue())
    assert "50/200 iters" in out
    assert re.search(r"eta \d+:\d\d", out)  # minutes:seconds left at the measured rate
