"""Signals to a trainer: SIGTERM and SIGHUP are the same clean stop as Ctrl-C
(runs stopped and resumable, summary.csv written, the lock released, the resume command printed, exit
128 + the signal), for `run`, `resume` and the app's trainer; a signal during start-up is one line and
its exit code, never a traceback, and leaves no lock."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import HANG_GUARD_S, collect_until, wait_until
from trainer.cli.child import run_child
from trainer.cli.main import main
from trainer.runlog import LOCK, write_config
from trainer.runlog.commands import trainer_command
from trainer.sweep import prepare as sweep_prepare

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def sweep_overrides(data_root: Path) -> list[str]:
    """The issue's tiny CPU sweep, with epochs enough that a signal always lands mid-sweep."""
    return [
        'data.dataset="synthetic-digits"',
        f'data.root="{data_root}"',
        "data.train_samples=3000",
        "data.test_samples=500",
        "sweep.batch_sizes=[30,300]",
        "sweep.epochs=40",
        'sweep.device="cpu"',
    ]


def trainer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer", *args]


def run_cmd(data_root: Path, out: Path) -> list[str]:
    sets = [x for o in sweep_overrides(data_root) for x in ("--set", o)]
    return trainer_cmd("run", str(ROOT / "experiments.toml"), *sets, "--out", str(out), "--quiet")


def start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    # Its own session: a SIGHUP or SIGINT sent to it reaches no one else (pytest included).
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count_losses(events_file: Path) -> int:
    try:
        return events_file.read_text().count('"type":"losses"')
    except FileNotFoundError:
        return 0


def wait_for_more_losses(proc: subprocess.Popen, events_file: Path, than: int) -> None:
    wait_until(lambda: count_losses(events_file) > than, f"more than {than} losses events", proc=proc)


def cpu_seconds(pid: int) -> float:
    """The CPU time process `pid` has used so far, all its threads together (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in ticks


def events_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def assert_clean_stop(out: Path, signum: int, returncode: int, err: str) -> None:
    name = NAMES[signum]
    assert returncode == 128 + signum, err
    assert "Traceback" not in err
    assert f"stopped by {name}" in err and f"{trainer_command('resume', out)}" in err
    assert not os.path.lexists(out / LOCK)
    events = events_of(out)
    assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "stopped"
    finished = [e for e in events if e["type"] == "run_finished"]
    stopped = [e for e in finished if e["status"] == "stopped"]
    assert stopped and all(e["reason"] == f"stopped by {name}" for e in stopped)
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["run"] for r in rows) == ["bs30", "bs300"]
    assert {r["status"] for r in rows} <= {"stopped", "done"} and "stopped" in {r["status"] for r in rows}


def test_sigterm_to_run_then_sighup_to_resume_are_clean_stops(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start(run_cmd(data_root, out), tmp_path)
    wait_for_more_losses(proc, out / "events.jsonl", 0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert_clean_stop(out, signal.SIGTERM, proc.returncode, err)
    summary_after_run = (out / "summary.csv").read_text()

    before = count_losses(out / "events.jsonl")
    proc = start(trainer_cmd("resume", str(out), "--quiet"), tmp_path)
    wait_for_more_losses(proc, out / "events.jsonl", before)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert "resuming" in err
    assert_clean_stop(out, signal.SIGHUP, proc.returncode, err)
    assert any(e["type"] == "sweep_resumed" for e in events_of(out))
    assert (out / "summary.csv").read_text() != summary_after_run  # the resume trained on, and recorded it


def test_ctrl_c_soon_after_start_is_one_line_and_130(data_root: Path, tmp_path: Path) -> None:
    """Ctrl-C as soon as torch is loading: start-up (or, on a fast machine, the sweep's first steps);
    either way one clean exit 130, no traceback, no lock."""
    out = tmp_path / "run"
    proc = start(run_cmd(data_root, out), tmp_path)
    maps = Path(f"/proc/{proc.pid}/maps")

    def loading_torch() -> bool:
        try:
            return proc.poll() is not None or "libtorch" in maps.read_text()
        except (FileNotFoundError, ProcessLookupError):  # it ended between the two looks
            return True

    wait_until(loading_torch, "the trainer to load torch", interval=0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert not os.path.lexists(out / LOCK)


# ---------------------------------------------------------------- start-up, in process (deterministic)


def signal_while_loading(monkeypatch: pytest.MonkeyPatch, signum: int) -> None:
    """load_dataset receives `signum` (as from a terminal or `kill`) and would otherwise go on."""

    def load(*args, **kwargs):
        os.kill(os.getpid(), signum)
        # The handler raises out of this wait; a handler that let the start-up go on fails it instead.
        wait_until(lambda: False, f"{NAMES[signum]} to end the start-up", timeout=60)

    monkeypatch.setattr(sweep_prepare, "load_dataset", load)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_run_loads_its_dataset_is_one_line(data_root, tmp_path, monkeypatch, capsys, signum):
    signal_while_loading(monkeypatch, signum)
    out = tmp_path / "run"
    sets = [x for o in sweep_overrides(data_root) for x in ("--set", o)]
    handlers = {s: signal.getsignal(s) for s in NAMES}
    assert main(["run", str(ROOT / "experiments.toml"), *sets, "--out", str(out), "--quiet"]) == 128 + signum
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"bstui: interrupted by {NAMES[signum]} before training began; nothing was trained"]
    assert not out.exists()  # nothing left behind: no directory, no lock
    assert {s: signal.getsignal(s) for s in NAMES} == handlers  # main put the handlers back


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_resume_loads_its_dataset_releases_the_lock(
    tiny_config, tmp_path, monkeypatch, capsys, signum
):
    out = tmp_path / "run"
    out.mkdir()
    write_config(out, tiny_config())  # a run directory whose sweep never recorded anything
    before = sorted(p.name for p in out.iterdir())
    signal_while_loading(monkeypatch, signum)
    assert main(["resume", str(out), "--quiet"]) == 128 + signum
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"interrupted by {NAMES[signum]} before training began" in err
    assert f"{trainer_command('resume', out)}" in err
    assert not os.path.lexists(out / LOCK)
    assert sorted(p.name for p in out.iterdir()) == before


# ---------------------------------------------------------------- the app's trainer


def test_the_apps_trainer_stops_cleanly_on_a_signal(data_root, tmp_path):
    """SIGHUP (an SSH drop); SIGTERM takes the same handler (tests/unit/test_stop_signals.py)."""
    signum = signal.SIGHUP
    out = tmp_path / "run"
    ctx = multiprocessing.get_context("spawn")
    events_q, control_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(
        target=run_child, args=(None, sweep_overrides(data_root), str(out), events_q, control_q)
    )
    proc.start()
    try:
        events = collect_until(
            events_q, lambda seen: any(e["type"] == "losses" for e in seen), "a losses event", proc
        )
        os.kill(proc.pid, signum)
        events += collect_until(
            events_q, lambda seen: seen[-1]["type"] == "sweep_finished", "the sweep's end", proc
        )
        proc.join(HANG_GUARD_S)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert events[-1]["status"] == "stopped"
    stopped = [e for e in events if e["type"] == "run_finished" and e["status"] == "stopped"]
    assert stopped and all(e["reason"] == f"stopped by {NAMES[signum]}" for e in stopped)
    assert (out / "summary.csv").exists() and not os.path.lexists(out / LOCK)
    assert events_of(out)[-1]["status"] == "stopped"


def test_sigterm_during_a_multi_second_step_stops_inside_it_cleanly(data_root: Path, tmp_path: Path) -> None:
    """Batch 6000 on a CPU: one step takes seconds, longer than a stop may wait. The stop is
    taken between two layers of the step (trainer.engine.stops.stop_inside_steps), the step is abandoned
    before its update, and the stop is the same clean, resumable one (bench/stop.py times it)."""
    out = tmp_path / "run"
    sets = [
        'data.dataset="synthetic-digits"',
        f'data.root="{data_root}"',
        "data.train_samples=12000",
        "data.test_samples=500",
        "sweep.batch_sizes=[6000]",
        "sweep.epochs=5",
        'sweep.device="cpu"',
    ]
    proc = start(
        trainer_cmd(
            "run",
            str(ROOT / "experiments.toml"),
            *[x for o in sets for x in ("--set", o)],
            "--out",
            str(out),
            "--quiet",
        ),
        tmp_path,
    )
    wait_until(
        lambda: (
            '"type":"run_started"'
            in ((out / "events.jsonl").read_text() if (out / "events.jsonl").exists() else "")
        ),
        "the run to start",
        proc=proc,
    )
    # Inside the first step (seconds long here): the trainer has computed for a while since the run began.
    # CPU time, not wall time, so a loaded machine that barely runs the trainer does not signal too early.
    began = cpu_seconds(proc.pid)
    wait_until(
        lambda: cpu_seconds(proc.pid) - began >= 0.5, "the trainer to compute into its first step", proc=proc
    )
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and f"{trainer_command('resume', out)}" in err
    events = events_of(out)
    assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "stopped"
    (finished,) = [e for e in events if e["type"] == "run_finished"]
    assert finished["status"] == "stopped" and finished["reason"] == "stopped by SIGTERM"
    # The step under way was cut, not finished first (a finished one would be flushed as a losses block).
    assert not [e for e in events if e["type"] == "losses"]
    assert (out / "summary.csv").is_file() and not os.path.lexists(out / LOCK)
