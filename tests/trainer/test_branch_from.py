"""`python -m trainer branch DIR`: branched B_crit measured again from a sweep's run directory, into a new one
(DIR is only read); the same branches as the sweep's own, and every mistake refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from trainer.cli.main import main
from trainer.report.build import write_report

BASE_TOML = """
[data]
dataset = "synthetic-digits"
root = "{root}"
download = false
train_samples = 600
test_samples = 200

[optim]
lr = 0.3

[sweep]
batch_sizes = [20, 60]
epochs = 2
device = "cpu"
target_accuracy = 0.15

[perf]
cpu_threads = 1

[gns]
every = 0
probe_every = 200

[branch]
base_batch_size = 20
epochs = [1, 2]
batch_sizes = [10, 20, 60]
eval_every = 120
decrease = 0.1
max_samples = 240
"""


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _fingerprint(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path -> sha256 of its bytes)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def base(data_root, tmp_path_factory) -> Path:
    """A finished sweep with a [branch] table: base run bs20, kept points after epochs 1 and 2."""
    folder = tmp_path_factory.mktemp("branch_from")
    config = folder / "base.toml"
    config.write_text(BASE_TOML.format(root=data_root))
    assert main(["run", str(config), "--out", str(folder / "base"), "--quiet"]) == 0
    return folder / "base"


@pytest.fixture(scope="module")
def again(base) -> tuple[Path, dict[str, str], dict[str, str]]:
    """The branch command with DIR's own [branch] table: the new directory, DIR's files before and after."""
    before = _fingerprint(base)
    out = base.parent / "again"
    assert main(["branch", str(base), "--out", str(out), "--quiet"]) == 0
    return out, before, _fingerprint(base)


def test_the_run_directory_it_branches_from_is_unchanged(again):
    _, before, after = again
    assert before == after


def test_the_same_branch_table_measures_the_same_branches_as_the_sweep(base, again):
    out, _, _ = again

    def points(events):
        return [{k: v for k, v in e.items() if k != "t"} for e in events if e["type"] == "branch_point"]

    def losses(events, run_id):
        return [e["values"] for e in events if e["type"] == "losses" and e.get("run") == run_id]

    mine, theirs = _events(out), _events(base)
    assert len(points(theirs)) == 2
    assert points(mine) == points(theirs)  # crossings, fits and the base run's B_simple at each point
    assert points(mine)[0]["b_simple"] is not None
    for run_id in ("e1-bs10", "e1-bs60", "e2-bs20"):
        assert losses(mine, run_id) == losses(theirs, run_id) and losses(mine, run_id)


def test_the_new_directory_starts_with_the_base_run_and_says_where_it_came_from(base, again):
    out, _, _ = again
    events, theirs = _events(out), _events(base)
    started = events[0]
    assert started["type"] == "sweep_started" and started["branched_from"] == str(base.absolute())
    assert started["run_dir"] == str(out) and [r["run"] for r in started["runs"]] == ["bs20"]
    assert (
        started["config"]["sweep"]["batch_sizes"] == [20]
        and started["config"]["sweep"]["batch_schedule"] == ""
    )
    # the base run's own events as DIR recorded them, and none of the other run's (bs60)
    copied = [e for e in events if e.get("run") == "bs20"]
    assert copied == [e for e in theirs if e.get("run") == "bs20"]
    assert not [e for e in events if e.get("run") == "bs60"]
    assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "done"
    assert [s["run"] for s in events[-1]["summaries"]][0] == "bs20"
    assert sorted(p.name for p in (out / "checkpoints").glob("bs20-e*.pt")) == ["bs20-e1.pt", "bs20-e2.pt"]
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[1].startswith("bs20,") and any(r.startswith("e2-bs60,") for r in rows)


def test_the_report_and_the_app_read_the_new_directory(base, again):
    from tui.feeds.event_reader import read_all
    from tui.render.bcrit import curve_chart, facts_text
    from tui.state.sweep import SweepState

    out, _, _ = again
    text, _ = write_report(out, plots=False)
    assert "## Critical batch size over training (branched)" in text
    assert f"branched from the base run of {base.absolute()}" in text
    assert "| 2 | 60 | 0.3 |" in text  # a branch from epoch 2, at batch 60
    state = SweepState()
    state.apply_all(read_all(out)[0])
    assert state.skipped == 0
    assert len(state.branch_points) == 2 and state.branch_result is not None
    assert {"e1-bs10", "e2-bs60"} <= state.branch_runs and "bs20" in state.runs
    assert any(line.label == "B_simple" for line in curve_chart(state, 80, 20).lines)  # the `b` view
    assert "B_simple" in facts_text(state).plain


def test_options_replace_keys_of_the_branch_table(base, tmp_path):
    out = tmp_path / "other"
    args = ["branch", str(base), "--out", str(out), "--quiet", "--epochs", "2", "--batch-sizes", "20,30,60"]
    assert main([*args, "--decrease", "0.05", "--max-samples", "120"]) == 0
    events = _events(out)
    [point] = [e for e in events if e["type"] == "branch_point"]
    assert point["epoch"] == 2 and [b["batch_size"] for b in point["branches"]] == [20, 30, 60]
    branch = events[0]["config"]["branch"]
    assert (branch["decrease"], branch["max_samples"], branch["eval_every"]) == (0.05, 120, 120)
    assert sorted(p.name for p in (out / "checkpoints").glob("bs20-e*.pt")) == ["bs20-e2.pt"]


def test_a_config_file_gives_the_branch_table_and_its_other_tables_are_named_unused(base, tmp_path, capsys):
    table = tmp_path / "branch.toml"
    table.write_text(
        "[sweep]\nepochs = 9\n\n[branch]\nepochs = [1]\nbatch_sizes = [10, 20, 40]\nmax_samples = 120\n"
    )
    out = tmp_path / "from-file"
    assert main(["branch", str(base), "--config", str(table), "--out", str(out), "--quiet"]) == 0
    assert "only the [branch] table" in capsys.readouterr().err
    started = _events(out)[0]
    assert started["config"]["branch"]["batch_sizes"] == [10, 20, 40]
    assert started["config"]["branch"]["eval_every"] == 0  # the file's table replaces DIR's, defaults and all
    assert started["config"]["sweep"]["epochs"] == 2


def _copy(base: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(base, target)
    return target


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("missing", [], "no such directory"),
        ("empty", [], "is not a run directory (no config.toml"),
        ("no points", [], "was it run with a [branch] table? add [branch] epochs"),
        ("no branch table", [], "its sweep had no [branch] table"),
        ("not kept", ["--epochs", "1"], "kept no checkpoint after epoch 1; it kept 2"),
        ("ok", ["--batch-sizes", "10,20"], "branch.batch_sizes: needs at least 3 batch sizes"),
        ("ok", ["--decrease", "2"], "--decrease 2.0: branch.decrease"),
        ("ok", ["--batch-sizes", "10,x"], "give whole numbers separated by commas"),
        ("bad toml", [], "TOML syntax error"),
        ("no table", [], "no [branch] table"),
        ("file values", [], "branch.toml:3: branch.batch_sizes: needs at least 3 batch sizes"),
        (
            "other base",
            [],
            "branch.base_batch_size: 60, but the base run of the run directory trained at batch 20",
        ),
        ("other model", [], "bs20-e1.pt does not fit the config of"),
        ("other run", [], "it holds run 'bs60', not the base run bs20"),
        ("out inside", [], "is only read; give a new directory outside it"),
    ],
)
def test_a_mistake_exits_2_with_its_fix_and_writes_nothing(base, tmp_path, capsys, case, extra, message):
    import tomli_w

    from trainer.config.load import parse_toml

    run_dir, out = base, tmp_path / "new"
    args: list[str] = []
    if case == "missing":
        run_dir = tmp_path / "nowhere"
    elif case == "empty":
        run_dir = tmp_path / "empty"
        run_dir.mkdir()
    elif case == "other run":
        run_dir = _copy(base, tmp_path)
        shutil.copyfile(run_dir / "checkpoints" / "bs60.pt", run_dir / "checkpoints" / "bs20-e1.pt")
    elif case in ("no points", "not kept"):
        run_dir = _copy(base, tmp_path)
        for epoch in (1, 2) if case == "no points" else (1,):
            (run_dir / "checkpoints" / f"bs20-e{epoch}.pt").unlink()
    elif case in ("no branch table", "other model"):
        run_dir = _copy(base, tmp_path)
        raw = parse_toml((run_dir / "config.toml").read_text(), "config.toml")
        if case == "no branch table":
            raw["branch"].update(epochs=[], batch_sizes=[])
        else:
            raw["model"].update(name="resnet_small", args={"in_channels": 1})
        (run_dir / "config.toml").write_text(tomli_w.dumps(raw))
    elif case in ("bad toml", "no table", "other base", "file values"):
        file = tmp_path / "branch.toml"
        file.write_text(
            {
                "bad toml": "[branch\n",
                "no table": "[sweep]\nepochs = 2\n",
                "other base": "[branch]\nbase_batch_size = 60\n",
                "file values": "[branch]\nepochs = [1]\nbatch_sizes = [10, 20]\n",
            }[case]
        )
        args = ["--config", str(file)]
    elif case == "out inside":
        out = base / "inside"
    before = _fingerprint(run_dir) if run_dir.is_dir() else {}
    assert _code(["branch", str(run_dir), "--out", str(out), "--quiet", *args, *extra]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err
    assert not out.exists()
    assert (_fingerprint(run_dir) if run_dir.is_dir() else {}) == before


def _code(argv: list[str]) -> int:
    """main's exit code, also where argparse refuses an option (it raises SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.subprocess
def test_ctrl_c_keeps_what_was_recorded_and_resume_measures_the_rest(base, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.waiting import wait_until

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "cut"
    before = _fingerprint(base)
    args = ["branch", str(base), "--out", str(out), "--quiet", "--epochs", "1", "--decrease", "0.9"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", *args, "--max-samples", "1800"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    events_file = out / "events.jsonl"
    wait_until(
        lambda: events_file.exists() and '"run":"e1-bs20"' in events_file.read_text(),
        "a second branch",
        proc=proc,
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"resume with" in err
    events = _events(out)
    assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "stopped"
    assert [e["run"] for e in events if e["type"] == "run_finished" and e["status"] == "done"][:2] == [
        "bs20",
        "e1-bs10",
    ]  # the base run (copied) and the branch that finished before the stop
    assert _fingerprint(base) == before
    assert main(["resume", str(out), "--quiet"]) == 0  # the branches are measured again from the copied point
    events = _events(out)
    [point] = [e for e in events if e["type"] == "branch_point"]
    assert events[-1]["status"] == "done" and point["epoch"] == 1
    # the base run's B_simple at the point, read back from its recorded probe readings
    [theirs] = [e for e in _events(base) if e["type"] == "branch_point" and e["epoch"] == 1]
    assert point["b_simple"] is not None and point["b_simple"] == theirs["b_simple"]
