"""`python -m trainer resume DIR`: checkpoints, and a continued sweep that equals an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
import tomllib
import torch

import trainer.engine.steps as steps
import trainer.sweep.calibrate as calibrate
import trainer.sweep.driver as sweep
from trainer.cli.exits import EXIT_INTERRUPTED
from trainer.cli.main import main, resume_sweep
from trainer.config import load_config
from trainer.engine.checkpoint import CheckpointWriter, checkpoint_path
from trainer.models.builtin import build_model
from trainer.plan import RunSettings, run_specs
from trainer.runlog import Emitter, ListSink, RunDirSink, create_run_dir, write_config
from trainer.runlog.commands import trainer_command
from trainer.runlog.controls import Controls
from trainer.sweep.resume import plan_resume, restore_check

ROOT = Path(__file__).resolve().parents[2]
TIMING = {"t", "wall_s", "compute_s", "data_s", "samples_per_s"}


def sweep_args(data_root: Path, out: Path, *extra: str) -> list[str]:
    """A tiny sequential sweep: bs20 trains all its 3 epochs before bs200 starts."""
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
        'sweep.schedule="sequential"',
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def restore_check_of(run_dir: Path):
    """The check `resume` makes of each checkpoint, for the sweep recorded in run_dir."""
    cfg = load_config(run_dir / "config.toml")
    return restore_check(run_specs(cfg), RunSettings.from_config(cfg))


def events_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def training_results(run_dir: Path) -> dict[str, dict]:
    """Per run: all per-iteration losses (gap- and duplicate-free), per-epoch results without timings."""
    runs: dict[str, dict] = {}
    for e in events_of(run_dir):
        if "run" not in e:
            continue
        r = runs.setdefault(e["run"], {"losses": [], "epochs": [], "finished": []})
        if e["type"] == "losses":
            assert e["first_iter"] == len(r["losses"]), f"{e['run']}: gap or duplicate at {e['first_iter']}"
            r["losses"].extend(e["values"])
        elif e["type"] == "epoch_end":
            r["epochs"].append({k: v for k, v in e.items() if k not in TIMING})
        elif e["type"] == "run_finished":
            r["finished"].append(e["status"])
    return runs


def _interrupt_at(monkeypatch, batch_size: int, call: int) -> None:
    """Ctrl-C during the `call`-th training step of the run with this batch size. The steps the sweep times
    alone first (trainer.sweep.calibrate) do not count: how many it takes depends on the machine's speed."""
    real, real_timing = steps.plain_step, calibrate.time_steps
    calls = {"n": 0, "timing": False}

    def step(model, opt, x, y):
        if x.shape[0] == batch_size and not calls["timing"]:
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
        return real(model, opt, x, y)

    def timing(*args, **kwargs):
        calls["timing"] = True
        try:
            return real_timing(*args, **kwargs)
        finally:
            calls["timing"] = False

    monkeypatch.setattr(steps, "plain_step", step)
    monkeypatch.setattr(calibrate, "time_steps", timing)


def test_ctrl_c_then_resume_keeps_finished_runs_and_continues_the_others(
    data_root, tmp_path, monkeypatch, capsys, reference
):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 200, call=5)  # bs20 is done; bs200 is in its second epoch (3 steps each)
    assert main(sweep_args(data_root, out)) == EXIT_INTERRUPTED
    assert f"resume with: {trainer_command('resume', out)}" in capsys.readouterr().err
    monkeypatch.undo()
    before = events_of(out)
    bs20_before = [e for e in before if e.get("run") == "bs20"]

    assert main(["resume", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "bs20: kept (done)" in err and "bs200: continues after epoch 1" in err
    after = events_of(out)
    assert [e for e in after if e.get("run") == "bs20"] == bs20_before  # a finished run is not retrained
    resumed = [e for e in after if e["type"] == "sweep_resumed"]
    assert len(resumed) == 1 and resumed[0]["kept"] == ["bs20"]
    assert [(r["run"], r["from_epoch"], r["iters"]) for r in resumed[0]["runs"]] == [("bs200", 1, 3)]
    assert resumed[0]["t"] >= max(e["t"] for e in before if e["type"] != "sweep_finished")
    statuses = [(e["run"], e["status"]) for e in after if e["type"] == "run_finished"]
    assert statuses == [("bs20", "done"), ("bs200", "done")]  # the "stopped" one was replaced
    assert [e["type"] for e in after].count("sweep_finished") == 1
    assert training_results(out) == reference  # same losses and epoch results, exactly, on CPU


def test_a_checkpoint_holds_the_run_and_loads_with_weights_only(data_root, tmp_path):
    out = tmp_path / "run"
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=2")) == 0
    path = checkpoint_path(out, "bs20")
    state = torch.load(path, weights_only=True)  # tensors and plain containers only
    assert state["run"] == "bs20" and state["epoch"] == 2 and state["iters"] == 2 * 30
    assert set(state["model"]) == set(build_model("simple_cnn").state_dict())
    assert all(buf["momentum_buffer"].shape for buf in state["optimizer"]["state"].values())
    assert isinstance(state["rng"]["torch"], torch.Tensor) and len(state["rng"]["python"][1]) == 625
    assert state["totals"]["epochs"] == 2 and len(state["totals"]["epoch_walls"]) == 2
    assert not list(path.parent.glob(".*.tmp"))
    last_epoch = [e for e in events_of(out) if e["type"] == "epoch_end" and e["run"] == "bs20"][-1]
    assert state["totals"]["best_test_acc"] >= last_epoch["test_acc"]


def test_checkpoints_are_saved_outside_the_runs_timers(tiny_config, tiny_dataset, tmp_path, monkeypatch):
    seen = []

    class Watching(CheckpointWriter):
        def __call__(self, run):
            seen.append((run.run_id, run.time.running))
            super().__call__(run)

    monkeypatch.setattr(sweep, "CheckpointWriter", Watching)
    run_dir = create_run_dir(tmp_path / "r")
    sweep.run_sweep(tiny_config(), Emitter([ListSink()]), dataset=tiny_dataset, run_dir=str(run_dir))
    assert sorted(seen) == [("bs20", False), ("bs20", False), ("bs200", False), ("bs200", False)]
    assert checkpoint_path(run_dir, "bs200").exists()


def test_an_unreadable_checkpoint_restarts_that_run_from_the_start(
    data_root, tmp_path, monkeypatch, capsys, reference
):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 20, call=50)  # bs20 in its second epoch; bs200 not started
    assert main(sweep_args(data_root, out)) == EXIT_INTERRUPTED
    monkeypatch.undo()
    checkpoint_path(out, "bs20").write_bytes(b"not a checkpoint")
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "bs20: starts again from the beginning" in capsys.readouterr().err
    assert training_results(out) == reference


def test_a_checkpoint_of_another_model_is_not_restored(data_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 200, call=5)  # bs20 done; bs200 in its second epoch
    assert main(sweep_args(data_root, out)) == EXIT_INTERRUPTED
    monkeypatch.undo()
    assert (
        plan_resume(out, ["bs20", "bs200"], check=restore_check_of(out)).runs["bs200"].action == "checkpoint"
    )
    path = checkpoint_path(out, "bs200")
    state = torch.load(path, weights_only=True)
    state["model"][next(iter(state["model"]))] = torch.zeros(3, 3)  # as if the model changed since
    torch.save(state, path)
    plan = plan_resume(out, ["bs20", "bs200"], check=restore_check_of(out))
    assert plan.runs["bs20"].action == "keep"
    assert plan.runs["bs200"].action == "restart" and "do not fit model" in plan.runs["bs200"].reason


def test_a_sweep_killed_before_it_recorded_anything_resumes_from_the_start(data_root, tmp_path):
    out = tmp_path / "run"
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1")) == 0
    uninterrupted = training_results(out)
    (out / "events.jsonl").write_text('{"type":"sweep_sta')  # cut off in its first line
    for ckpt in (out / "checkpoints").iterdir():
        ckpt.unlink()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert [e["type"] for e in events_of(out)][0] == "sweep_started"
    assert training_results(out) == uninterrupted


def test_resuming_a_finished_sweep_changes_nothing(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(sweep_args(data_root, out, "--set", "sweep.epochs=1")) == 0
    before = (out / "events.jsonl").read_bytes()
    assert main(["resume", str(out)]) == 0
    assert "nothing to resume" in capsys.readouterr().err
    assert (out / "events.jsonl").read_bytes() == before


def test_resume_refuses_a_config_that_no_longer_matches_the_recorded_sweep(
    data_root, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 20, call=3)
    assert main(sweep_args(data_root, out)) == EXIT_INTERRUPTED
    monkeypatch.undo()
    config = out / "config.toml"
    recorded = tomllib.loads(config.read_text())
    assert recorded["sweep"]["batch_sizes"] == [20, 200]
    recorded["sweep"]["batch_sizes"] = [20, 400]
    config.write_text(tomli_w.dumps(recorded))
    before = (out / "events.jsonl").read_bytes()
    assert main(["resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "config.toml" in err and "bs400" in err and "bs200" in err
    assert (out / "events.jsonl").read_bytes() == before


def test_resume_of_something_that_is_not_a_run_directory_exits_2(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err


class _StopAfterFirstEpochOf:
    """A sink that presses the app's stop once a run's first epoch ends."""

    def __init__(self, run_id: str, controls: Controls) -> None:
        self.run_id, self.controls = run_id, controls

    def emit(self, event: dict) -> None:
        if event["type"] == "epoch_end" and event["run"] == self.run_id and event["epoch"] == 1:
            self.controls.apply({"cmd": "stop"})

    def close(self) -> None:
        pass


def _sweep_into(cfg, dataset, run_dir: Path, *extra_sinks, controls=None):
    run_dir = create_run_dir(run_dir)
    write_config(run_dir, cfg)
    sink = RunDirSink(run_dir)
    try:
        return sweep.run_sweep(
            cfg, Emitter([sink, *extra_sinks]), dataset=dataset, controls=controls, run_dir=str(run_dir)
        )
    finally:
        sink.close()


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(
                    not torch.cuda.is_available(),
                    reason="needs a CUDA GPU (restores into the CUDA-graph fast path)",
                ),
            ],
        ),
    ],
)
def test_a_sweep_stopped_from_the_app_resumes_on_its_device(device, tiny_config, tiny_dataset, tmp_path):
    cfg = tiny_config(sweep={"device": device})
    _sweep_into(cfg, tiny_dataset, tmp_path / "ref")
    controls = Controls()
    out = tmp_path / "run"
    result = _sweep_into(cfg, tiny_dataset, out, _StopAfterFirstEpochOf("bs200", controls), controls=controls)
    assert result.status == "stopped"
    assert resume_sweep(load_config(out / "config.toml"), out, quiet=True) == 0
    got, want = training_results(out), training_results(tmp_path / "ref")
    # CUDA kernels may sum in another order from run to run; CPU results are exact.
    tol = {"rel": 1e-3, "abs": 1e-5} if device == "cuda" else {"rel": 0, "abs": 0}
    for run_id in ("bs20", "bs200"):
        assert got[run_id]["finished"] == want[run_id]["finished"] == ["done"]
        assert got[run_id]["losses"] == pytest.approx(want[run_id]["losses"], **tol)
        assert [e["test_acc"] for e in got[run_id]["epochs"]] == pytest.approx(
            [e["test_acc"] for e in want[run_id]["epochs"]], rel=0, abs=0.02 if device == "cuda" else 0
        )


FACTORY = (
    "--set",
    'model.name="tests.trainer.factory_models:mlp"',
    "--set",
    'model.output="logits"',
    "--set",
    "model.args.hidden=16",
)


def test_a_sweep_of_a_factory_model_stopped_after_epoch_1_and_resumed_equals_an_uninterrupted_one(
    data_root, tmp_path, monkeypatch, capsys
):
    """the user's own model (model.name = "package.module:factory", [model.args], logits) is
    rebuilt by resume from the run directory's config.toml and continues from its checkpoint exactly."""
    reference = tmp_path / "reference"
    assert main(sweep_args(data_root, reference, *FACTORY)) == 0
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 200, call=5)  # bs20 is done; bs200 is in its second epoch (3 steps each)
    assert main(sweep_args(data_root, out, *FACTORY)) == EXIT_INTERRUPTED
    monkeypatch.undo()
    recorded = tomllib.loads((out / "config.toml").read_text())["model"]
    assert recorded["name"] == "tests.trainer.factory_models:mlp" and recorded["args"] == {"hidden": 16}
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "bs200: continues after epoch 1" in capsys.readouterr().err
    started = [e for e in events_of(out) if e["type"] == "run_started" and e["run"] == "bs200"]
    assert (
        started[-1]["model"] == "tests.trainer.factory_models:mlp" and started[-1]["resumed_from_epoch"] == 1
    )
    assert training_results(out) == training_results(
        reference
    )  # same losses and epoch results, exactly, on CPU


@pytest.mark.training
def test_an_augmented_normalised_cifar_sweep_resumed_after_epoch_1_equals_an_uninterrupted_one(
    tmp_path, monkeypatch, capsys
):
    """data.augment draws its crops per (seed, epoch) and data.normalize reads its cached statistics: a resumed
    run sees the batches the uninterrupted one saw."""
    from tests.trainer.test_data_sources import write_cifar

    write_cifar(tmp_path / "data", n_batch=40)  # 200 training samples
    cifar = (
        "--set",
        'data.dataset="cifar10"',
        "--set",
        'data.normalize="dataset"',
        "--set",
        'data.augment="crop_flip"',
        "--set",
        'model.name="resnet_small"',
        "--set",
        "model.args.width=4",
        "--set",
        "data.download=false",
        "--set",
        'data.fallback=""',
        "--set",
        "data.train_samples=0",
        "--set",
        "data.test_samples=0",
        "--set",
        "sweep.batch_sizes=[50,100]",
        "--set",
        "gns.every=0",
        "--set",
        "gns.probe_every=0",
    )
    reference = tmp_path / "reference"
    assert main(sweep_args(tmp_path / "data", reference, *cifar)) == 0
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 100, call=3)  # bs50 is done; bs100 is in its second epoch (2 steps each)
    assert main(sweep_args(tmp_path / "data", out, *cifar)) == EXIT_INTERRUPTED
    monkeypatch.undo()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "bs100: continues after epoch 1" in capsys.readouterr().err
    assert training_results(out) == training_results(reference)
