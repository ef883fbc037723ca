"""Headless output a user can follow when it is not a terminal, and a trainer ps/htop can name."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from rich.console import Console

from trainer.cli.console import ConsoleSink
from trainer.process.title import trainer_title


class Flushes(io.StringIO):
    """A file that records what was flushed: a line written but held in a buffer would not count."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def test_not_a_terminal_each_run_gets_a_line_as_it_goes_written_at_once():
    out = Flushes()
    sink = ConsoleSink(Console(file=out, force_terminal=False, width=120))
    sink.emit(
        {
            "type": "sweep_started",
            "t": 0.0,
            "device": "cpu",
            "torch": "2",
            "dataset": "mnist",
            "run_dir": "runs/a",
            "runs": [],
        }
    )
    sink.emit(
        {
            "type": "run_started",
            "t": 0.1,
            "run": "bs60",
            "batch_size": 60,
            "lr": 0.02,
            "split_chunks": 1,
            "iters_per_epoch": 100,
            "epochs": 3,
        }
    )
    sink.emit({"type": "losses", "t": 0.2, "run": "bs60", "first_iter": 0, "values": [2.3] * 50})
    sink.emit(
        {
            "type": "epoch_end",
            "t": 1.0,
            "run": "bs60",
            "epoch": 1,
            "total_iters": 100,
            "test_acc": 0.694,
            "wall_s": 1.234,
            "compute_s": 1.0,
        }
    )
    assert out.flushed and "bs60: epoch 1 (33%) test acc 69.4% wall 1.23s compute 1.00s" in out.flushed[-1]
    sink.emit({"type": "run_finished", "t": 2.0, "run": "bs60", "status": "done", "reason": ""})
    lines = out.getvalue().splitlines()
    assert lines[-1] == "bs60: done" and "bs60: started, lr 0.02, 3 epochs" in lines
    assert not sink.started  # no progress bar behind the lines


@pytest.mark.subprocess
def test_the_trainer_process_is_named_for_ps_and_htop():
    assert (
        trainer_title("runs/20261207-0150", [60, 6, 60], 4)
        == "bstui trainer: runs/20261207-0150 bs6,60 (4 runs)"
    )
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainer.process.title import set_title; "
            "set_title('bstui trainer: runs/x bs6 (1 run)'); "
            "print(open('/proc/self/cmdline','rb').read().split(b'\\0')[0].decode())",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert reader.stdout.strip() == "bstui trainer: runs/x bs6 (1 run)"
