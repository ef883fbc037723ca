"""A sweep in shards (`python -m trainer run CONFIG --shard I/N --out DIR`): the assignment, and shards
that train, resume and report as the one sweep they are parts of."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import trainer.engine.steps as steps
from tests.waiting import wait_until
from trainer.analysis.scaling import analyse
from trainer.cli.exits import EXIT_INTERRUPTED, EXIT_USAGE
from trainer.cli.main import main
from trainer.config import Config
from trainer.report.plots import run_series
from trainer.runlog.commands import trainer_command
from trainer.runlog.shards import (
    SHARD_FILE,
    is_sharded,
    parse_shard,
    read_shard_file,
    read_sharded,
    shard_dir,
)
from trainer.sweep.shard_plan import ShardError, assign, plan_shard, shard_units

ROOT = Path(__file__).resolve().parents[2]
TIMING_KEYS = {"t", "started_at"}


def sweep_args(data_root: Path, out: Path, *extra: str) -> list[str]:
    """6 runs: batch sizes 10, 30, 100 with two lrs each, each run alone (fused steps are slow on a small CPU;
    the assignment keeps fused groups whole, tested below)."""
    return [
        "run",
        str(ROOT / "experiments.toml"),
        "--set",
        'data.dataset="synthetic-digits"',
        "--set",
        f'data.root="{data_root}"',
        "--set",
        "data.train_samples=300",
        "--set",
        "data.test_samples=100",
        "--set",
        "sweep.batch_sizes=[10,30,100]",
        "--set",
        "sweep.eval_every=0",
        "--set",
        "gns.every=0",
        "--set",
        "gns.probe_every=0",
        "--set",
        'perf.fuse_runs="off"',
        "--set",
        "perf.cpu_threads=1",
        "--set",
        "sweep.lrs=[0.02,0.05]",
        "--set",
        "sweep.epochs=2",
        "--set",
        "sweep.target_accuracy=0.08",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def events_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def results(events: list[dict]) -> dict[str, dict]:
    """Per run: its per-iteration losses, its evaluations and its summary, without timings."""
    runs: dict[str, dict] = {}
    for e in events:
        if "run" not in e:
            continue
        r = runs.setdefault(e["run"], {"losses": [], "evals": [], "summary": None})
        if e["type"] == "losses":
            assert e["first_iter"] == len(r["losses"]), f"{e['run']}: gap or duplicate at {e['first_iter']}"
            r["losses"].extend(e["values"])
        elif e["type"] in ("epoch_end", "evaluation"):
            r["evals"].append((e.get("iter"), e.get("test_acc"), e.get("test_loss")))
        elif e["type"] == "run_finished":
            r["summary"] = untimed(e["summary"])
    return runs


def timed(key: str) -> bool:
    """A field the clock measured: t, seconds (wall_s, time_s_lo...), rates (samples_per_s)."""
    return key in TIMING_KEYS or key.endswith("_s") or "_s_" in key or "per_s" in key


def untimed(obj):
    """The value without what the clock measured (seconds, rates, the wall time of the start)."""
    if isinstance(obj, dict):
        return {k: (None if timed(k) else untimed(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def swept(data_root, tmp_path_factory) -> dict[str, Path]:
    """The sweep unsharded, and in 2 shards."""
    base = tmp_path_factory.mktemp("shards")
    full, sharded = base / "full", base / "sharded"
    assert main(sweep_args(data_root, full)) == 0
    for i in range(2):
        assert main(sweep_args(data_root, sharded, "--shard", f"{i}/2")) == 0
    return {"full": full, "sharded": sharded}


def _cfg(**sweep) -> Config:
    cfg = Config()
    cfg.data.train_samples = 600
    for k, v in sweep.items():
        setattr(cfg.sweep, k, v)
    return cfg


def test_parse_shard_takes_i_of_n_and_refuses_the_rest():
    assert parse_shard("0/3") == (0, 3) and parse_shard(" 2 / 3 ") == (2, 3)
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0", ""):
        with pytest.raises(ValueError):
            parse_shard(bad)


@pytest.mark.parametrize("fuse", ["auto", "off"])
def test_every_run_goes_to_exactly_one_shard_the_same_way_each_time(fuse):
    cfg = _cfg(batch_sizes=[1, 6, 60, 600, 6000], lrs=[0.01, 0.02, 0.05, 0.1], seeds=2)
    cfg.perf.fuse_runs = fuse
    ids = [r for u in shard_units(cfg) for r in (s.run_id for s in u.specs)]
    assert len(ids) == 40 and len(set(ids)) == 40
    units = shard_units(cfg)
    for n in range(1, len(units) + 1):
        shards = assign(cfg, n)
        assert shards == assign(cfg, n)  # deterministic
        flat = [r for s in shards for r in s]
        assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
        assert all(shards)  # no shard left without work
        owner = {r: i for i, s in enumerate(shards) for r in s}
        for unit in units:  # a unit (a group that may fuse) is never split
            assert len({owner[s.run_id] for s in unit.specs}) == 1
        cost = {i: sum(u.cost for u in units if owner[u.specs[0].run_id] == i) for i in range(n)}
        assert max(cost.values()) - min(cost.values()) <= max(u.cost for u in units)  # balanced (LPT bound)
    if fuse == "auto":  # runs of a batch size under 512 stay together; 600 and 6000 train alone
        assert len(units) == 3 + 2 * 8
    else:
        assert len(units) == 40


def test_more_shards_than_units_is_refused_with_the_most_that_works():
    cfg = _cfg(batch_sizes=[10, 30], lrs=[0.02, 0.05])
    with pytest.raises(ShardError, match="at most 2 shards"):
        plan_shard(cfg, 0, 3)


def test_shards_train_the_same_runs_as_the_unsharded_sweep(swept):
    full, sharded = swept["full"], swept["sharded"]
    assert is_sharded(sharded) and not is_sharded(full)
    own = [read_shard_file(shard_dir(sharded, i)) for i in range(2)]
    assert own[0].rows == own[1].rows and sorted(own[0].runs + own[1].runs) == sorted(
        results(events_of(full))
    )
    for i in range(2):
        started = events_of(shard_dir(sharded, i))[0]
        assert started["shard"] == {"index": i, "count": 2}
        assert [r["run"] for r in started["runs"]] == own[i].runs
    parts = {**results(events_of(shard_dir(sharded, 0))), **results(events_of(shard_dir(sharded, 1)))}
    assert parts == results(events_of(full))  # same losses, evaluations and summaries, exactly, on CPU


def test_the_shards_read_as_one_sweep(swept):
    full, sharded = swept["full"], swept["sharded"]
    log = read_sharded(sharded, analyse)
    merged = log.events
    assert merged[0]["type"] == "sweep_started" and merged[-1]["type"] == "sweep_finished"
    assert [e["type"] for e in merged].count("sweep_started") == 1
    assert [e["type"] for e in merged].count("sweep_finished") == 1
    assert [r["run"] for r in merged[0]["runs"]] == [r["run"] for r in events_of(full)[0]["runs"]]
    assert all(a["t"] <= b["t"] for a, b in zip(merged[1:-1], merged[2:-1]))  # one time order
    assert results(merged) == results(events_of(full))
    want = events_of(full)[-1]
    assert untimed(merged[-1]["summaries"]) == untimed(want["summaries"])
    assert untimed(merged[-1]["scaling"]) == untimed(want["scaling"])
    assert log.problems == [] and "2 shards" in log.notes[0]


def _timeless_copy(src: Path, dst: Path) -> None:
    """The run directory (or sharded sweep) with every clock reading replaced by 1.0."""
    for path in src.rglob("events.jsonl"):
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        out.write_text("".join(json.dumps(_ones(e)) + "\n" for e in lines))
    for path in src.rglob(SHARD_FILE):
        (dst / path.relative_to(src)).write_bytes(path.read_bytes())


def _ones(obj):
    if isinstance(obj, dict):
        return {k: (1.0 if timed(k) and obj[k] is not None else _ones(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ones(v) for v in obj]
    return obj


def test_report_on_the_shards_equals_report_on_the_unsharded_sweep(swept, tmp_path, capsys):
    full, sharded = tmp_path / "full", tmp_path / "sharded"
    _timeless_copy(swept["full"], full)
    _timeless_copy(swept["sharded"], sharded)
    assert (
        main(["report", str(full), "--no-plots"]) == 0 and main(["report", str(sharded), "--no-plots"]) == 0
    )
    capsys.readouterr()
    one = (full / "report.md").read_text().splitlines()
    two = [
        ln
        for ln in (sharded / "report.md").read_text().splitlines()
        if not ln.startswith("- sharded: 2 shards")
    ]
    assert "B_crit" in "\n".join(one) and one == two
    # The plots draw the same curves (in the order their runs started, which differs between the two)
    assert run_series(read_sharded(sharded).events) == run_series(events_of(full))


def test_a_missing_shard_is_named_with_the_command_that_starts_it(swept, tmp_path, capsys):
    part = tmp_path / "part"
    (part / "shards").mkdir(parents=True)
    import shutil

    shutil.copytree(shard_dir(swept["sharded"], 1), shard_dir(part, 1))
    assert main(["report", str(part), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "shard 0/2 has not started" in text and f"--shard 0/2 --out {part}" in text
    assert "(sweep still running or interrupted)" in text


def test_resume_of_the_sweeps_directory_names_each_shards_resume(swept, capsys):
    assert main(["resume", str(swept["sharded"])]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "holds a sweep in shards" in err and f"resume {shard_dir(swept['sharded'], 1)}" in err


def test_shard_needs_out_and_a_valid_index(data_root, tmp_path, capsys):
    args = sweep_args(data_root, tmp_path / "x")
    no_out = args[: args.index("--out")]
    assert main([*no_out, "--shard", "0/2"]) == EXIT_USAGE
    assert "--shard needs --out DIR" in capsys.readouterr().err
    assert main([*args, "--shard", "2/2"]) == EXIT_USAGE
    assert "numbered 0 to 1" in capsys.readouterr().err
    assert main([*args, "--shard", "0/7"]) == EXIT_USAGE
    assert "use at most 6 shards" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_shard_interrupted_mid_run_resumes_its_own_runs_exactly(
    data_root, tmp_path, monkeypatch, capsys, swept
):
    out = tmp_path / "sweep"
    shard = read_shard_file(shard_dir(swept["sharded"], 1))
    sizes = {r["batch_size"] for r in shard.rows if r["shard"] == 1}
    real, calls = steps.plain_step, {"n": 0}

    def step(model, opt, x, y):  # Ctrl-C in the middle of the shard's runs
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real(model, opt, x, y)

    monkeypatch.setattr(steps, "plain_step", step)
    assert main(sweep_args(data_root, out, "--shard", "1/2")) == EXIT_INTERRUPTED
    assert f"resume with: {trainer_command('resume', shard_dir(out, 1))}" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["resume", str(shard_dir(out, 1)), "--quiet"]) == 0
    resumed = events_of(shard_dir(out, 1))
    assert [e["type"] for e in resumed].count("sweep_resumed") == 1
    assert {e["batch_size"] for e in resumed if e["type"] == "run_started"} == sizes
    want = results(events_of(shard_dir(swept["sharded"], 1)))
    assert results(resumed) == want  # exactly as the uninterrupted shard trained, on CPU


def _sets(data_root: Path, *extra: str) -> list[str]:
    """The --set and --device arguments of sweep_args (for submit)."""
    args = sweep_args(data_root, Path("unused"), *extra)[2:]
    return [a for i, a in enumerate(args) if a not in ("--quiet", "--out") and args[i - 1] != "--out"]


@pytest.mark.subprocess
def test_submit_through_the_local_executor_trains_the_same_sweep(data_root, tmp_path, capsys, swept):
    out = tmp_path / "sweep"
    code = main(
        [
            "submit",
            str(ROOT / "experiments.toml"),
            *_sets(data_root),
            "--out",
            str(out),
            "--nodes",
            "2",
            "--executor",
            "local",
            "--wait",
        ]
    )
    text = capsys.readouterr()
    assert code == 0, text.err
    assert f"--attach {out}" in text.out and "submitted 2 shards (local" in text.out
    assert (out / "submitit" / "config.toml").is_file() and is_sharded(out)
    merged = read_sharded(out, analyse)
    assert results(merged.events) == results(events_of(swept["full"]))
    assert untimed(merged.events[-1]["summaries"]) == untimed(events_of(swept["full"])[-1]["summaries"])


def test_submit_to_slurm_without_slurm_says_so_and_writes_nothing(data_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    out = tmp_path / "sweep"
    assert (
        main(["submit", str(ROOT / "experiments.toml"), *_sets(data_root), "--out", str(out), "--nodes", "2"])
        == EXIT_USAGE
    )
    err = capsys.readouterr().err
    assert "no SLURM here (sbatch is not on PATH)" in err and "--executor local" in err
    assert not out.exists()


@pytest.mark.subprocess
@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="finds the job's task process in /proc (Linux)"
)
def test_a_shard_signalled_before_its_time_limit_stops_cleanly_is_requeued_and_resumes_exactly(
    data_root, tmp_path
):
    """submitit's checkpointing protocol: USR2 -> the trainer's clean stop -> requeue -> resume."""
    from trainer.cli.submit import Cluster, ShardJob, make_executor
    from trainer.config import load_config
    from trainer.runlog import write_config

    extra = ("--set", "sweep.epochs=8")
    reference = tmp_path / "reference"
    assert main(sweep_args(data_root, reference, *extra, "--shard", "0/2")) == 0
    sets = _sets(data_root, *extra)
    overrides = [sets[i + 1] for i, a in enumerate(sets) if a == "--set"] + ['sweep.device="cpu"']
    root = tmp_path / "sweep"
    (root / "submitit").mkdir(parents=True)
    write_config(root / "submitit", load_config(str(ROOT / "experiments.toml"), overrides))
    executor = make_executor(Cluster(nodes=2, executor="local", timeout_min=30), root / "submitit")
    job = executor.submit(ShardJob(str(root / "submitit" / "config.toml"), str(root), 0, 2))
    events = shard_dir(root, 0) / "events.jsonl"

    def first_epoch_end() -> bool:  # a checkpoint to resume from
        assert not job.done(), "the shard ended before its first epoch end"
        return events.exists() and '"epoch_end"' in events.read_text()

    wait_until(first_epoch_end, "the shard's first epoch end")
    # What SLURM does before the time limit or at a preemption: USR2 to the job's task (the local executor's
    # controller, job._process, forwards it only at its own time limit).
    controller = job._process.pid
    task = int(Path(f"/proc/{controller}/task/{controller}/children").read_text().split()[0])
    os.kill(task, signal.SIGUSR2)
    job.result()  # requeued and finished
    after = events_of(shard_dir(root, 0))
    kinds = [e["type"] for e in after]
    assert kinds.count("sweep_resumed") == 1 and kinds[-1] == "sweep_finished"
    assert results(after) == results(events_of(shard_dir(reference, 0)))  # exactly as uninterrupted
    log = "".join(p.read_text() for p in (root / "submitit").glob("*_log.*"))
    assert "Calling checkpoint method" in log and "Requeued" in log
