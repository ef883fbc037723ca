"""Faults a long sweep meets: kill -9, out of memory, a full disk, an unwritable place,
two trainers on one run directory. Nothing measured may be lost; nothing may end in a traceback.

The kill points are seeded: each one kills the trainer process (SIGKILL, as `kill -9` does) at a
chosen moment of its own writing: before the k-th event line, half-way through a line, after a
checkpoint's temp file is written but before it is renamed, or before summary.csv is replaced.
The trainers run in forked copies of this process (torch is already imported, so each costs
milliseconds); one test also kills a real `python -m trainer run` from outside.
"""

from __future__ import annotations

import csv
import errno
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import trainer.engine.steps as steps
from tests.waiting import wait_until
from trainer.cli.exits import EXIT_IO
from trainer.cli.main import main
from trainer.runlog import LOCK, SUMMARY_FIELDS, RunDirSink, files, lock_status
from trainer.runlog.commands import trainer_command

ROOT = Path(__file__).resolve().parents[2]
TIMING = {"t", "wall_s", "compute_s", "data_s", "samples_per_s"}  # differ between any two runs
KILL_SEED = 6  # the kill points below come from this seed


def sweep_args(data_root: Path, out: Path, *extra: str) -> list[str]:
    """A tiny interleaved sweep: 2 batch sizes x 3 epochs on 600 generated samples (~30 events)."""
    return [
        "run",
        str(ROOT / "experiments.toml"),
        "--set",
        'data.dataset="synthetic-digits"',
        "--set",
        f'data.root="{data_root}"',
        "--set",
        "data.train_samples=600",
        "--set",
        "data.test_samples=200",
        "--set",
        "sweep.batch_sizes=[20,200]",
        "--set",
        "sweep.epochs=3",
        "--set",
        'sweep.schedule="interleaved"',
        # One thread: the kill test runs the trainer in a forked copy of this process, and a fork of a
        # process whose OpenMP pool has started (any earlier test's 2-thread step) hangs at its first
        # parallel region. bstui itself only ever spawns.
        "--set",
        "perf.cpu_threads=1",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def training_results(run_dir: Path) -> dict[str, dict]:
    """Per run: every per-iteration loss (checked gap- and duplicate-free), the per-epoch results
    without timings, and the statuses it finished with."""
    runs: dict[str, dict] = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        rid = e.get("run")
        if rid is None:
            continue
        r = runs.setdefault(rid, {"losses": [], "epochs": [], "finished": []})
        if e["type"] == "losses":
            assert e["first_iter"] == len(r["losses"]), (
                f"{rid}: gap or duplicate at iteration {e['first_iter']}"
            )
            r["losses"].extend(e["values"])
        elif e["type"] == "epoch_end":
            r["epochs"].append({k: v for k, v in e.items() if k not in TIMING})
        elif e["type"] == "run_finished":
            r["finished"].append(e["status"])
    return runs


def assert_same_results(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for rid in want:
        assert got[rid]["finished"] == want[rid]["finished"], rid
        assert got[rid]["losses"] == pytest.approx(want[rid]["losses"], rel=0, abs=1e-6), rid
        assert len(got[rid]["epochs"]) == len(want[rid]["epochs"]), rid
        for a, b in zip(got[rid]["epochs"], want[rid]["epochs"]):
            assert a.keys() == b.keys()
            for key in b:
                if isinstance(b[key], float):
                    assert a[key] == pytest.approx(b[key], rel=0, abs=1e-6), (rid, a["epoch"], key)
                else:
                    assert a[key] == b[key], (rid, a["epoch"], key)


def assert_run_dir_readable(run_dir: Path, partial_line_allowed: bool) -> None:
    """Every whole line of events.jsonl parses; summary.csv, if there, is whole."""
    text = (run_dir / "events.jsonl").read_text() if (run_dir / "events.jsonl").exists() else ""
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    for line in lines:
        assert isinstance(json.loads(line), dict)
    assert partial_line_allowed or tail == "", f"unexpected partial line {tail[:80]!r}"
    if (run_dir / "summary.csv").exists():
        with open(run_dir / "summary.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
        assert reader.fieldnames == SUMMARY_FIELDS
        assert all(None not in row and all(v is not None for v in row.values()) for row in rows)
        assert {r["run"] for r in rows} <= {"bs20", "bs200"}


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory) -> dict:
    """The uninterrupted sweep's training results."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(sweep_args(data_root, out)) == 0
    return training_results(out)


def _killed_child(argv: list[str], mode: str, k: int) -> None:
    """In a forked copy of this process: run the CLI and SIGKILL ourselves at the kill point."""
    import trainer.runlog.sink as store

    me = os.getpid()
    count = {"n": 0}
    if mode in ("line", "mid-line"):
        real_write = store.RunDirSink._write

        def write(self, text):
            count["n"] += 1
            if count["n"] == k:
                if mode == "mid-line":  # half a line reaches the disk, then the process dies
                    self._fh.write(text[: len(text) // 2])
                    self._fh.flush()
                os.kill(me, signal.SIGKILL)
            real_write(self, text)

        store.RunDirSink._write = write
    else:
        real_replace = os.replace
        target = ".pt" if mode == "checkpoint" else "summary.csv"

        def replace(src, dst):
            if str(dst).endswith(target):
                count["n"] += 1
                if count["n"] == k:  # the temp file is complete, the rename never happens
                    os.kill(me, signal.SIGKILL)
            real_replace(src, dst)

        os.replace = replace
    os._exit(main(argv))


def _run_until_killed(argv: list[str], mode: str, k: int) -> int:
    proc = multiprocessing.get_context("fork").Process(target=_killed_child, args=(argv, mode, k))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode is not None, "the trainer hung"
    return proc.exitcode


def kill_points(seed: int, n: int) -> list[tuple[str, int]]:
    """n seeded (mode, k) kill points, every mode at least once."""
    rng = random.Random(seed)
    modes = ["line", "mid-line", "checkpoint", "summary"] + [
        rng.choice(["line", "mid-line"]) for _ in range(n - 4)
    ]
    rng.shuffle(modes)
    limits = {"line": 7, "mid-line": 7, "checkpoint": 2, "summary": 1}
    return [(m, rng.randint(1, limits[m])) for m in modes]


@pytest.mark.subprocess
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_results(data_root, tmp_path, reference):
    out = tmp_path / "run"
    points = kill_points(KILL_SEED, 5)
    argv = sweep_args(data_root, out)
    survived = []
    for i, (mode, k) in enumerate(points):
        code = _run_until_killed(argv, mode, k)
        assert code == -signal.SIGKILL, f"kill point {i} ({mode} {k}) was not reached: exit {code}"
        assert_run_dir_readable(out, partial_line_allowed=(mode == "mid-line"))
        assert lock_status(out)["state"] == "stale"  # the dead trainer's lock stays, recognised as such
        survived.append((mode, k))
        argv = ["resume", str(out), "--quiet"]  # every later trainer continues the same sweep
    assert main(["resume", str(out), "--quiet"]) == 0
    assert len(survived) == len(points)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events].count("sweep_finished") == 1 and events[-1]["type"] == "sweep_finished"
    assert events[-1]["status"] == "done"
    assert_same_results(training_results(out), reference)
    assert not list((out / "checkpoints").glob(".*.tmp"))  # temp files of killed writes are cleaned up
    assert not (out / LOCK).exists()


@pytest.mark.subprocess
def test_kill_9_of_a_real_trainer_process_then_resume(data_root, tmp_path, reference, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", *sweep_args(data_root, out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    events_file = out / "events.jsonl"
    wait_until(
        lambda: events_file.exists() and '"epoch_end"' in events_file.read_text(),
        "an epoch's end",
        interval=0.02,
        proc=proc,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert_run_dir_readable(out, partial_line_allowed=True)
    assert lock_status(out)["state"] == "stale"
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "stale lock" in capsys.readouterr().err
    assert_same_results(training_results(out), reference)


def test_out_of_memory_at_one_batch_size_through_the_cli(data_root, tmp_path, monkeypatch):
    real = steps.plain_step

    def step(model, opt, x, y):
        if x.shape[0] == 200:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, opt, x, y)

    monkeypatch.setattr(steps, "plain_step", step)
    out = tmp_path / "run"
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1")) == 0
    with open(out / "summary.csv", newline="") as fh:
        status = {r["run"]: r["status"] for r in csv.DictReader(fh)}
    assert status == {"bs20": "done", "bs200": "oom"}


def _full_disk_after(n: int):
    """A RunDirSink._write that fails with ENOSPC from its n-th call on."""
    real = RunDirSink._write
    calls = {"n": 0}

    def write(self, text):
        calls["n"] += 1
        if calls["n"] >= n:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, text)

    return write


@pytest.mark.parametrize("where", ["events", "checkpoint"])
def test_a_full_disk_mid_sweep_stops_cleanly_and_the_sweep_resumes(
    where, data_root, tmp_path, monkeypatch, capsys, reference
):
    if where == "events":
        monkeypatch.setattr(RunDirSink, "_write", _full_disk_after(12))
    else:
        real_create_temp = files.create_temp

        def no_room_for_checkpoints(path):
            if Path(path).parent.name == "checkpoints":
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_create_temp(path)

        monkeypatch.setattr(files, "create_temp", no_room_for_checkpoints)
    out = tmp_path / "run"
    assert main(sweep_args(data_root, out)) == EXIT_IO
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"{trainer_command('resume', out)}" in err
    assert "Traceback" not in err
    assert_run_dir_readable(out, partial_line_allowed=False)
    assert not (out / LOCK).exists()
    monkeypatch.undo()  # room again
    assert main(["resume", str(out), "--quiet"]) == 0
    assert_same_results(training_results(out), reference)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories; see the test below")
def test_a_read_only_output_place_exits_2_before_training(data_root, tmp_path, capsys):
    tmp_path.chmod(0o555)
    try:
        assert main(sweep_args(data_root, tmp_path / "run")) == 2
    finally:
        tmp_path.chmod(0o755)
    err = capsys.readouterr().err
    assert "cannot write the run directory" in err and "Traceback" not in err


def test_a_run_directory_under_a_file_exits_2_before_training(data_root, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert main(sweep_args(data_root, blocker / "run")) == 2
    err = capsys.readouterr().err
    assert "cannot write the run directory" in err and "Traceback" not in err


def _lock_by(run_dir: Path, pid: int) -> None:
    import socket

    (run_dir / LOCK).write_text(
        json.dumps(
            {
                "pid": pid,
                "hostname": socket.gethostname(),
                "started": time.time(),
                "command": "python -m trainer run (the first one)",
                "token": "t",
            }
        )
    )


@pytest.mark.parametrize("force", [False, True])
def test_a_second_trainer_on_a_live_run_directory_exits_2(force, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    _lock_by(out, os.getpid())  # this test process plays the first trainer
    assert main(sweep_args(data_root, out, *(["--force"] if force else []))) == 2
    err = capsys.readouterr().err
    assert "another trainer" in err and f"pid {os.getpid()}" in err and "(the first one)" in err
    assert not (out / "events.jsonl").exists() and not (out / "config.toml").exists()
    assert main(["resume", str(out)]) == 2  # no config.toml: not a run directory yet


def test_resume_refuses_while_the_sweep_is_still_being_written(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1")) == 0
    before = (out / "events.jsonl").read_text()
    _lock_by(out, os.getpid())
    assert main(["resume", str(out)]) == 2
    assert "another trainer" in capsys.readouterr().err
    assert (out / "events.jsonl").read_text() == before


@pytest.mark.subprocess
def test_a_stale_lock_is_reported_and_the_trainer_goes_ahead(data_root, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    _lock_by(out, dead.pid)
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1")) == 0
    assert f"pid {dead.pid} is no longer running" in capsys.readouterr().err
    assert not (out / LOCK).exists()


def test_output_dir_is_created_and_a_new_run_never_touches_an_old_one(data_root, tmp_path):
    base = tmp_path / "deep" / "runs"
    argv = sweep_args(
        data_root, tmp_path / "unused", "--set", "sweep.epochs=1", "--set", f'output.dir="{base}"'
    )
    argv = (
        argv[: argv.index("--out")] + argv[argv.index("--out") + 2 :]
    )  # no --out: <output.dir>/<stamp>-<name>
    assert main(argv) == 0
    first = [p for p in base.iterdir()]
    assert len(first) == 1
    before = {p.name: p.read_bytes() for p in first[0].iterdir() if p.is_file()}
    assert main(argv) == 0
    runs = sorted(base.iterdir())
    assert len(runs) == 2 and first[0] in runs
    assert {p.name: p.read_bytes() for p in first[0].iterdir() if p.is_file()} == before


def test_force_reuses_a_run_directory_but_keeps_the_users_other_files(data_root, tmp_path):
    out = tmp_path / "run"
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1")) == 0
    (out / "notes.txt").write_text("mine")
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1")) == 2  # no --force: refused
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1", "--force")) == 0
    assert (out / "notes.txt").read_text() == "mine"
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events].count("sweep_started") == 1  # the old run's events are gone
