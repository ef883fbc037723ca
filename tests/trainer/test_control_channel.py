"""The control channel for viewers that did not start the trainer: a headless
`python -m trainer run` obeys pause, resume, split and stop appended to its run directory's
controls.jsonl, records them like the app's own controls, and a stop from there is the same clean,
resumable stop as a signal (exit 130)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.trainer.test_signals import events_of, run_cmd, start, wait_for_more_losses
from tests.waiting import HANG_GUARD_S, wait_until
from trainer.runlog import CONTROLS, LOCK, SUMMARY
from trainer.runlog.commands import trainer_command
from trainer.runlog.controls import VIEWER_STOP

pytestmark = pytest.mark.subprocess


def send(out: Path, msg: dict) -> None:
    with open(out / CONTROLS, "a") as f:  # as bstui --attach does: append one line, never create
        f.write(json.dumps(msg) + "\n")


def wait_for_event(proc, out: Path, kind: str, **fields) -> dict:
    def found() -> dict | None:
        try:
            events = events_of(out)
        except (FileNotFoundError, json.JSONDecodeError):  # mid-write: look again
            return None
        matching = [e for e in events if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())]
        return matching[-1] if matching else None

    return wait_until(found, f"a {kind} event with {fields}", proc=proc)


def test_a_headless_trainer_obeys_pause_split_and_stop_from_its_control_file(data_root, tmp_path):
    out = tmp_path / "run"
    proc = start(run_cmd(data_root, out), tmp_path)
    try:
        wait_for_more_losses(proc, out / "events.jsonl", 0)
        assert (out / CONTROLS).is_file() and oct(os.stat(out / CONTROLS).st_mode & 0o777) == "0o600"
        send(out, {"cmd": "pause"})
        wait_for_event(proc, out, "paused", paused=True)
        send(out, {"cmd": "split", "enabled": True, "chunks": 2})
        send(out, {"cmd": "resume"})
        wait_for_event(proc, out, "mode_changed", split_chunks=2)
        send(out, {"cmd": "stop"})
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert VIEWER_STOP in err and f"{trainer_command('resume', out)}" in err and "Traceback" not in err
    events = events_of(out)
    assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "stopped"
    stopped = [e for e in events if e["type"] == "run_finished" and e["status"] == "stopped"]
    assert stopped and all(e["reason"] == VIEWER_STOP for e in stopped)
    assert (out / SUMMARY).is_file() and not os.path.lexists(out / LOCK)


def test_a_control_file_replaced_by_a_link_is_recorded_and_a_new_file_works_again(data_root, tmp_path):
    out = tmp_path / "run"
    proc = start(run_cmd(data_root, out), tmp_path)
    try:
        wait_for_more_losses(proc, out / "events.jsonl", 0)
        os.unlink(out / CONTROLS)
        os.symlink(tmp_path / "elsewhere", out / CONTROLS)  # another user's trick, or a careless one
        lost = wait_for_event(proc, out, "controls", working=False)
        assert "symbolic link" in lost["reason"] and str(out / CONTROLS) in lost["reason"]
        os.unlink(out / CONTROLS)  # the user removes the link: the trainer makes its own file again
        wait_for_event(proc, out, "controls", working=True)
        assert (out / CONTROLS).is_file() and not (out / CONTROLS).is_symlink()
        send(out, {"cmd": "stop"})  # and a viewer's stop reaches it again
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "controls from viewers stopped working" in err and "Traceback" not in err
    assert not (tmp_path / "elsewhere").exists()  # nothing written through the link
