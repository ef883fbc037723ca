"""Data parallel sweeps under torchrun: rank slices, and 2 gloo processes on CPU giving the
per-iteration losses of one process with the same global batch and sample order."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.cli import main as cli
from trainer.config import load_config
from trainer.data.datasets import Split, load_dataset
from trainer.data.pipelines import LoaderBatches, ResidentBatches
from trainer.engine import ddp
from trainer.engine.ddp import ShardedBatches, check_config, rank_slice
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("n", [1, 2, 7, 125, 600])
def test_rank_slices_cover_a_batch_contiguously_in_near_equal_parts(n, world):
    parts = [rank_slice(n, world, r) for r in range(world)]
    assert parts[0].start == 0 and parts[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1


def _split(n: int) -> Split:
    g = torch.Generator().manual_seed(3)
    return Split(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10)


@pytest.mark.parametrize("pipeline", ["resident", "dataloader"])
def test_the_ranks_slices_make_up_each_global_batch_in_order(pipeline):
    # 7 samples in batches of 3: 3, 3, 1 - the last one leaves rank 0 of 2 with nothing.
    split = _split(7)

    def make():
        if pipeline == "resident":
            return ResidentBatches(split, 3, torch.device("cpu"), seed=5)
        return LoaderBatches(split, 3, torch.device("cpu"), seed=5)

    whole = list(make().batches(epoch=1))
    ranks = [ShardedBatches(make(), 2, r) for r in range(2)]
    per_rank = []
    for sharded in ranks:
        items = []
        for x, y in sharded.batches(epoch=1):
            items.append((x, y, sharded.global_n))
        per_rank.append(items)
    assert [len(items) for items in per_rank] == [3, 3]
    for i, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([per_rank[r][i][0] for r in range(2)]), x)
        assert torch.equal(torch.cat([per_rank[r][i][1] for r in range(2)]), y)
        assert per_rank[0][i][2] == per_rank[1][i][2] == x.shape[0]
    assert per_rank[0][2][0].shape == (0, 1, 28, 28)  # rank 0's empty slice of the last batch


def test_split_backward_and_batches_smaller_than_the_world_are_refused():
    cfg = load_config(
        None, ["sweep.batch_sizes=[2,8,60]", "split_backward.enabled=true", "split_backward.chunks=2"]
    )
    problems = check_config(cfg, world_size=4)
    assert any("split-backward (split_backward.enabled) cannot run under torchrun" in p for p in problems)
    assert any(
        "batch size 2 smaller than the 4 torchrun processes" in p and "--nproc-per-node 2" in p
        for p in problems
    )
    assert check_config(load_config(None, ["sweep.batch_sizes=[8,60]"]), world_size=4) == []


def test_a_refused_config_exits_2_before_joining_any_process_group(monkeypatch, capsys, tmp_path):
    # WORLD_SIZE=2 with no second process: joining would wait forever, so refusing must come first.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = cli.main(
        [
            "run",
            "--set",
            "split_backward.enabled=true",
            "--set",
            "sweep.batch_sizes=[8]",
            "--set",
            "split_backward.chunks=2",
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    assert "cannot run under torchrun" in capsys.readouterr().err
    assert not torch.distributed.is_initialized() and not (tmp_path / "out").exists()


def test_resume_is_refused_under_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["resume", str(tmp_path)]) == 2
    assert "not under torchrun" in capsys.readouterr().err


def test_a_single_process_joins_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ddp.init_from_env(load_config(None)) is None and not torch.distributed.is_initialized()


# ------------------------------------------------------------- 2 processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(events: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for e in events:
        if e["type"] == "losses":
            out.setdefault(e["run"], []).extend(e["values"])
    return out


DDP_CONFIG = """\
[data]
dataset = "synthetic-digits"
root = {root}
download = false
train_samples = 601   # batches of 50 end with one sample: one rank gets an empty slice
test_samples = 200

[sweep]
batch_sizes = [50, 125]   # 125 splits 62 + 63; its last batch of 101 splits 50 + 51
epochs = 2
device = "cpu"
target_accuracy = 0.15
micro_batch = {micro}

[gns]
every = 0

[[variants]]
name = "sgd"

[[variants]]
name = "lamb"
optim = {{ name = "lamb", lr = 0.01 }}
"""


@pytest.mark.subprocess
def test_two_gloo_processes_train_like_one_process_with_the_same_global_batch(data_root, tmp_path):
    config = tmp_path / "ddp.toml"
    # Each rank accumulates its slice in micro-batches of 25 (62 -> 25 + 25 + 12): still the same step.
    config.write_text(DDP_CONFIG.format(root=json.dumps(str(data_root)), micro=25), encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
            "-m",
            "trainer",
            "run",
            str(config),
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("run directory:") == 1  # rank 0 prints; rank 1 prints nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.toml", "out"]  # and writes nothing
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]

    # One process, the same config without micro-batches, the same global batches and order.
    cfg = load_config(config, ["sweep.micro_batch=0"])
    sink = ListSink()
    run_sweep(cfg, Emitter([sink]), dataset=load_dataset(cfg.data, seed=cfg.sweep.seed))

    single, parallel = _losses(sink.events), _losses(events)
    assert sorted(parallel) == ["bs125-lamb", "bs125-sgd", "bs50-lamb", "bs50-sgd"]
    for run, expected in single.items():
        assert len(parallel[run]) == len(expected) == 2 * (13 if run.startswith("bs50") else 5)
        assert parallel[run] == pytest.approx(expected, abs=1e-6, rel=0), run
    epochs = [e for e in events if e["type"] == "epoch_end"]
    assert {e["samples"] for e in epochs} == {601}  # global samples, not one rank's share


@pytest.mark.subprocess
def test_two_nodes_joined_by_a_rendezvous_endpoint_train_like_one_process(data_root, tmp_path):
    """torchrun --nnodes 2 with a c10d rendezvous endpoint, as on two machines (here two launchers, one
    process each, gloo on CPU): the same losses as one process; only global rank 0 writes the run."""
    config = tmp_path / "ddp.toml"
    text = DDP_CONFIG.format(root=json.dumps(str(data_root)), micro=0)
    config.write_text(
        text[: text.index("[[variants]]")].replace("epochs = 2", "epochs = 1"), encoding="utf-8"
    )
    out = tmp_path / "out"
    endpoint = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    nodes = []
    for host in (
        "true",
        "false",
    ):  # the first launcher holds the rendezvous store, as the endpoint's node does
        node_dir = tmp_path / f"node-{host}"
        node_dir.mkdir()
        nodes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--nnodes",
                    "2",
                    "--nproc-per-node",
                    "1",
                    "--rdzv-backend",
                    "c10d",
                    "--rdzv-endpoint",
                    endpoint,
                    "--rdzv-id",
                    "bstui-test",
                    "--rdzv-conf",
                    f"is_host={host}",
                    "-m",
                    "trainer",
                    "run",
                    str(config),
                    "--out",
                    str(out),
                    "--quiet",
                ],
                cwd=node_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=300)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert sum(log.count("run directory:") for log in logs) == 1  # global rank 0 prints; the other nothing
    assert all(not list((tmp_path / d).iterdir()) for d in ("node-true", "node-false"))  # and writes nothing
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    cfg = load_config(config)
    sink = ListSink()
    run_sweep(cfg, Emitter([sink]), dataset=load_dataset(cfg.data, seed=cfg.sweep.seed))
    single, parallel = _losses(sink.events), _losses(events)
    assert sorted(parallel) == sorted(single)
    for run, expected in single.items():
        assert parallel[run] == pytest.approx(expected, abs=1e-6, rel=0), run
