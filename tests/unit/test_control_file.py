"""The control file: viewers that did not start the trainer (bstui --attach) append the app's
commands to <run_dir>/controls.jsonl; the trainer applies each new complete line, refuses anything else,
and never replays what the file held before it started."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.waiting import wait_until
from trainer.runlog import CONTROLS
from trainer.runlog.controls import VIEWER_STOP, ControlFile, Controls, parse_control


def line(msg: object) -> bytes:
    return (json.dumps(msg) + "\n").encode()


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"cmd": "pause"}', {"cmd": "pause"}),
        (b'{"cmd": "resume", "extra": 1}', {"cmd": "resume"}),
        (b'{"cmd": "stop", "reason": "anything a viewer says"}', {"cmd": "stop", "reason": VIEWER_STOP}),
        (b'{"cmd": "split", "enabled": true, "chunks": 4}', {"cmd": "split", "enabled": True, "chunks": 4}),
        (
            b'{"cmd": "split", "enabled": false, "chunks": "x"}',
            {"cmd": "split", "enabled": False, "chunks": 1},
        ),
        (b'{"cmd": "split", "enabled": true, "chunks": 1}', None),  # 2-64 chunks, as the app offers
        (b'{"cmd": "split", "enabled": true, "chunks": 65}', None),
        (b'{"cmd": "split", "enabled": true, "chunks": true}', None),
        (b'{"cmd": "split", "enabled": "yes", "chunks": 4}', None),
        (b'{"cmd": "rm -rf"}', None),
        (b'["pause"]', None),
        (b'not json', None),
        (b'\xff\xfe', None),
        (b'', None),
    ],
)
def test_only_well_formed_commands_are_taken(raw, expected):
    assert parse_control(raw) == expected


def test_appended_lines_are_applied_and_what_was_there_before_is_history(tmp_path: Path):
    (tmp_path / CONTROLS).write_bytes(line({"cmd": "pause"}))  # an old pause: not replayed
    controls = Controls()
    cf = ControlFile(tmp_path, controls, interval_s=3600)  # polled by hand below
    assert cf.start()
    try:
        assert cf.poll() == 0 and not controls.paused
        with open(tmp_path / CONTROLS, "ab") as f:
            f.write(line({"cmd": "pause"}) + b"garbage\n" + b'{"cmd": "split", "enabled": true, "ch')
        assert cf.poll() == 1 and controls.paused and controls.split_chunks == 0
        with open(tmp_path / CONTROLS, "ab") as f:  # the rest of the cut line
            f.write(b'unks": 4}\n' + line({"cmd": "resume"}))
        assert cf.poll() == 2 and controls.split_chunks == 4 and not controls.paused
        with open(tmp_path / CONTROLS, "ab") as f:  # a line with no end in sight is never a command
            f.write(b"x" * (3 << 16) + b"\n" + line({"cmd": "stop"}))
        while cf.poll() == 0:
            pass
        assert controls.stop and controls.stop_reason == VIEWER_STOP
        (tmp_path / CONTROLS).write_bytes(b"")  # cut short by someone: what comes after is read
        with open(tmp_path / CONTROLS, "ab") as f:
            f.write(line({"cmd": "pause"}))
        assert cf.poll() == 1
    finally:
        cf.close()


def test_the_file_is_owner_only_and_a_link_in_its_place_is_refused(tmp_path: Path):
    cf = ControlFile(tmp_path, Controls(), interval_s=3600)
    assert cf.start()
    cf.close()
    assert stat.S_IMODE(os.stat(tmp_path / CONTROLS).st_mode) == 0o600  # only the trainer's user may write
    other = tmp_path / "other"
    other.mkdir()
    (other / CONTROLS).symlink_to(tmp_path / "elsewhere")
    assert not ControlFile(other, Controls(), interval_s=3600).start()  # trains on without it
    assert not (tmp_path / "elsewhere").exists()  # nothing made through the link


def test_the_thread_applies_commands_without_being_asked(tmp_path: Path):
    controls = Controls()
    cf = ControlFile(tmp_path, controls, interval_s=0.01)
    assert cf.start()
    try:
        with open(tmp_path / CONTROLS, "ab") as f:
            f.write(line({"cmd": "pause"}))
        wait_until(lambda: controls.paused, "the reader thread to apply the pause", timeout=60, interval=0.01)
    finally:
        cf.close()


def test_a_stop_interrupts_a_step_between_layers_before_its_update():
    import pytest
    import torch

    from trainer.engine.evaluation import evaluate
    from trainer.engine.split import plain_step
    from trainer.engine.stops import stop_inside_steps
    from trainer.models.builtin import SimpleModel
    from trainer.runlog.controls import Controls, StopRequested

    torch.manual_seed(0)
    model = SimpleModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    controls = Controls()
    stop_inside_steps(model, controls)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    plain_step(model, opt, x, y)  # no stop asked: an ordinary step
    before = [p.detach().clone() for p in model.parameters()]
    calls = []

    def stop_midway(grad):  # the stop arrives while the backward pass runs (the last layer's grads first)
        calls.append(1)
        controls.apply({"cmd": "stop"})

    model.fc.weight.register_hook(stop_midway)
    with pytest.raises(StopRequested):
        plain_step(model, opt, x, y)
    assert calls, "the backward pass never reached the last layer"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # no update from the cut step
    loss, acc = evaluate(model, x, y)  # an evaluation (no gradients) is not cut short
    assert 0.0 <= acc <= 1.0 and loss == loss
