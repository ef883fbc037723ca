"""The user's own model: model.name = "package.module:factory", [model.args], model.output.

A factory defined in tests (tests/trainer/factory_models.py) trains a 2-batch-size sweep on CPU; each
mistake a user makes with a factory is a config error (exit 2) naming the module and the fix."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.trainer.factory_models import Mlp
from trainer.cli.main import main
from trainer.config import ModelConfig, load_config
from trainer.data.datasets import as_inputs
from trainer.models.builtin import LogSoftmax, ModelError, build_model, check_model, count_parameters
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep

FACTORIES = "tests.trainer.factory_models"


@pytest.fixture
def inputs(tiny_dataset) -> torch.Tensor:
    return as_inputs(tiny_dataset.train.images[:2])


def model(name: str, **kw) -> ModelConfig:
    return ModelConfig(name=f"{FACTORIES}:{name}", **kw)


def test_a_factory_model_trains_a_two_batch_size_sweep_on_cpu(tiny_config, tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)
    cfg = tiny_config(model={"name": f"{FACTORIES}:mlp", "args": {"hidden": 24}, "output": "logits"})
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]))
    assert result.status == "done"
    started = sink.of_type("run_started")
    assert [e["run"] for e in started] == ["bs20", "bs200"]
    # The factory's model with its args trained, not the built-in: 784*24+24 + 24*10+10 parameters.
    assert {e["parameters"] for e in started} == {count_parameters(Mlp(24))} == {19_090}
    assert {(e["model"], e["model_output"]) for e in started} == {(f"{FACTORIES}:mlp", "logits")}
    assert [e["status"] for e in sink.of_type("run_finished")] == ["done", "done"]
    for e in sink.of_type("epoch_end"):
        assert 0.0 <= e["test_acc"] <= 1.0 and e["train_loss"] > 0 and e["test_loss"] > 0


def test_logits_are_trained_through_their_log_softmax():
    torch.manual_seed(0)
    net = build_model(model("mlp", args={"hidden": 8}, output="logits"))
    assert isinstance(net, LogSoftmax)
    x, y = torch.rand(5, 1, 28, 28), torch.tensor([0, 3, 9, 1, 1])
    # The trainer's NLL of the wrapped output is the cross-entropy of the factory's logits.
    assert torch.allclose(F.nll_loss(net(x), y), F.cross_entropy(net.net(x), y))


def test_log_probs_models_are_used_as_they_are():
    net = build_model(model("mlp_log_probs"))
    assert not isinstance(net, LogSoftmax)


@pytest.mark.parametrize(
    ("name", "kw", "cause", "fix"),
    [
        (
            "raises",
            {},
            "the factory raised RuntimeError: the weights file is missing when called with ()",
            "it takes (hidden: int = 32)",
        ),
        (
            "mlp",
            {"args": {"width": 3}},
            "the factory raised TypeError: mlp() got an unexpected keyword argument",
            "it takes (hidden: int = 32); check [model.args] against its parameters",
        ),
        ("not_a_module", {}, "the factory returned a list, not a torch.nn.Module", "return the model itself"),
        (
            "three_classes",
            {},
            "the model returned shape [2, 3] for a batch of 2; the trainer needs [2, 10]",
            "nn.Linear(..., 10)",
        ),
        (
            "colour_input",
            {},
            "the model failed on a batch of inputs shaped [2, 1, 28, 28]",
            "make it take inputs of shape [batch, 1, 28, 28]",
        ),
        (
            "mlp",
            {},
            'model.output = "log_probs", but the outputs are not log-probabilities',
            'set model.output = "logits"',
        ),
        (
            "nowhere",
            {},
            "module tests.trainer.factory_models (",
            'name a function of the module after the colon',
        ),
        (
            "NOT_CALLABLE",
            {},
            "NOT_CALLABLE in module tests.trainer.factory_models is a int, not a callable",
            "name a function",
        ),
    ],
)
def test_a_factory_that_does_not_fit_is_a_model_error_naming_cause_and_fix(inputs, name, kw, cause, fix):
    with pytest.raises(ModelError) as err:
        check_model(model(name, **kw), inputs, 10)
    message = str(err.value)
    assert message.startswith(f'model.name = "{FACTORIES}:{name}": ')
    assert cause in err.value.cause and fix in err.value.fix and message.endswith(f". Fix: {err.value.fix}")


def test_a_missing_attribute_lists_what_the_module_defines(inputs):
    with pytest.raises(ModelError, match="has no nowhere; it defines .*mlp"):
        check_model(model("nowhere"), inputs, 10)


def test_a_working_factory_passes_the_check(inputs):
    check_model(model("mlp", args={"hidden": 4}, output="logits"), inputs, 10)
    check_model(model("mlp_log_probs"), inputs, 10)


def test_the_check_leaves_the_random_stream_alone(inputs):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    check_model(model("mlp_log_probs"), inputs, 10)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------- through `python -m trainer run`, from the config's folder


def _project(tmp_path: Path, source: str, *, name: str = "build", extra: str = "") -> tuple[Path, str]:
    """A user's project: a module of a unique name (imports are cached per process) beside a config."""
    module = f"own_model_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(source)
    config = tmp_path / "own.toml"
    config.write_text(f'[model]\nname = "{module}:{name}"\noutput = "logits"\n{extra}')
    return config, module


OWN_MODEL = """
from torch import nn

def build(hidden=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, 10))
"""


def _args(config: Path, data_root: Path, out: Path) -> list[str]:
    return [
        "run",
        str(config),
        "--set",
        'data.dataset="synthetic-digits"',
        "--set",
        f'data.root="{data_root}"',
        "--set",
        "data.train_samples=600",
        "--set",
        "data.test_samples=200",
        "--set",
        "sweep.batch_sizes=[60,600]",
        "--set",
        "sweep.epochs=1",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
    ]


def test_a_module_beside_the_config_is_found_and_trains(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir("/")  # not the config's folder: the module must be found through it
    config, _ = _project(tmp_path, OWN_MODEL, extra="[model.args]\nhidden = 12\n")
    out = tmp_path / "run"
    assert main(_args(config, data_root, out)) == 0
    resolved = load_config(out / "config.toml")
    # config.toml keeps the folder, so `resume` finds the module wherever it is started from.
    assert resolved.model.path == str(tmp_path) and resolved.model.args == {"hidden": 12}


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        (None, "build", "no module named own_model_"),
        (OWN_MODEL, "buld", "has no buld; it defines build"),
        (
            "import not_installed_anywhere_xyz\n",
            "build",
            "imports not_installed_anywhere_xyz, which is not installed",
        ),
        ("def build(:\n", "build", "raised SyntaxError"),
        (OWN_MODEL.replace("hidden, 10", "hidden, 7"), "build", "returned shape [2, 7] for a batch of 2"),
    ],
)
def test_a_bad_factory_exits_2_before_training_naming_the_module(
    data_root, tmp_path, capsys, source, name, expected
):
    config, module = _project(tmp_path, source or "", name=name)
    if source is None:
        (tmp_path / f"{module}.py").unlink()
    out = tmp_path / "run"
    assert main(_args(config, data_root, out)) == 2
    err = capsys.readouterr().err
    assert f'model.name = "{module}:{name}"' in " ".join(err.split()) and expected in " ".join(err.split())
    assert "Fix:" in err and "Traceback" not in err
    assert not out.exists(), "nothing is made before the model is known to fit"


def test_the_shipped_own_model_example_is_found_beside_its_config_and_fits_the_data(inputs, monkeypatch):
    monkeypatch.chdir("/")
    root = Path(__file__).resolve().parents[2] / "experiments"
    cfg = load_config(root / "own-model.toml")
    assert cfg.model.path == str(root)
    check_model(cfg.model, inputs, 10)
