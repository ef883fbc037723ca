"""Models: a small registry of built-ins (the study's SimpleModel is the default), and the user's own
model through a factory.

`model.name = "package.module:factory"` names a callable that `factory(**model.args)` turns into an
nn.Module taking a batch of inputs and returning log-probabilities (`model.output = "log_probs"`) or
logits (`"logits"`: the module is wrapped in `LogSoftmax`, so every loss of the trainer - the NLL of
the step, the split chunks, the graph, the probes, evaluation - is the cross-entropy of the logits).
The module is imported in the trainer process only, from model.path (the config file's folder) first,
then the installed packages. `check_model` builds it once and tries it on a batch of the dataset
before anything trains; what does not fit is a `ModelError` naming the module and the fix.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig
from trainer.config.schema import is_factory
from trainer.config.user_code import FactoryError, guarded, import_factory, kind, one_line


class SimpleModel(nn.Module):
    """The study's model (SEED.md), ~12.9k parameters, input 1x28x28.

    conv 1->10 k5, pool 2, relu (28->24->12); conv 10->20 k5, pool 2, relu (12->8->4);
    conv 20->40 k3, pool 2, relu (4->2->1); linear 40->10; log-softmax.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv3 = nn.Conv2d(20, 40, kernel_size=3)
        self.fc = nn.Linear(40, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(F.max_pool2d(self.conv3(x), 2))
        x = x.flatten(1)
        return F.log_softmax(self.fc(x), dim=1)


class BasicBlock(nn.Module):
    """ResNet's basic block (He et al. 2016): two 3x3 conv + batch norm, and the shortcut (a 1x1 conv +
    batch norm where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetSmall(nn.Module):
    """A small ResNet-style CNN for 32x32 colour images (CIFAR's shape), with batch norm: a 3x3 stem, three
    stages of one basic block (width, 2 width, 4 width channels; 32 -> 32 -> 16 -> 8), global average
    pooling, linear, log-softmax. ~78k parameters at width 16. Any image size works (the pooling is
    global); `in_channels = 1` takes grey images such as MNIST's ([model.args])."""

    def __init__(self, in_channels: int = 3, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1), BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 4 * width, 2)
        )
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return F.log_softmax(self.fc(x.mean(dim=(2, 3))), dim=1)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "simple_cnn": SimpleModel,
    "resnet_small": ResNetSmall,
}


class ModelError(Exception):
    """The configured model cannot be built, or does not fit the data: a configuration the user fixes
    (exit 2, nothing trained). The message names model.name, the cause and the fix."""

    def __init__(self, name: str, cause: str, fix: str) -> None:
        self.name, self.cause, self.fix = name, cause, fix
        super().__init__(f'model.name = "{name}": {cause}. Fix: {fix}')


class LogSoftmax(nn.Module):
    """A model that returns logits, made to return log-probabilities (model.output = "logits")."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.net(x), dim=1)


def _config(model: ModelConfig | str) -> ModelConfig:
    return ModelConfig(name=model) if isinstance(model, str) else model


def build_model(model: ModelConfig | str) -> nn.Module:
    """A fresh model: a built-in by name, or the factory's (ModelError when it cannot be built)."""
    cfg = _config(model)
    if not is_factory(cfg.name):
        if cfg.name not in MODELS:
            raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(sorted(MODELS))}")
        net = MODELS[cfg.name](**cfg.args)  # the args a built-in takes are checked by the config loader
    else:
        factory = resolve_factory(cfg)
        try:
            net = guarded(f"calling your factory {cfg.name}", f"the factory {cfg.name}", factory, **cfg.args)
        except FactoryError as exc:
            raise ModelError(cfg.name, exc.cause, exc.fix) from exc
        except Exception as exc:  # noqa: BLE001 - whatever the user's code raises is reported, not a traceback
            raise ModelError(
                cfg.name,
                f"the factory raised {one_line(exc)} when called with {_call(cfg.args)}",
                _args_fix(factory),
            ) from exc
        if not isinstance(net, nn.Module):
            raise ModelError(
                cfg.name,
                f"the factory returned {kind(net)}, not a torch.nn.Module",
                "return the model itself (an nn.Module instance) from the factory",
            )
    return LogSoftmax(net) if cfg.output == "logits" else net


def resolve_factory(cfg: ModelConfig) -> Callable[..., Any]:
    """The callable a "package.module:factory" names, imported with model.path first on sys.path."""
    try:
        return import_factory(cfg.name, cfg.path, "model.path")
    except FactoryError as exc:
        raise ModelError(cfg.name, exc.cause, exc.fix) from exc


def check_model(model: ModelConfig | str, inputs: torch.Tensor, num_classes: int) -> None:
    """Build the model once (on the CPU, leaving no trace in the RNG) and try it on `inputs`, a few
    samples of the training set as the step sees them: ModelError when it cannot be built, has nothing
    to train, fails on the batch, or returns anything but [batch, num_classes] log-probabilities."""
    cfg = _config(model)
    with torch.random.fork_rng(devices=[]):
        net = build_model(cfg)
    if not any(p.requires_grad for p in net.parameters()):
        raise ModelError(
            cfg.name,
            "the model has no trainable parameters",
            "return a model with parameters "
            "(layers registered as attributes of the nn.Module, or in nn.ModuleList)",
        )
    shape = list(inputs.shape)
    net.eval()  # no batch-norm statistics or dropout draws from the check
    try:
        with torch.no_grad():
            out = guarded(
                f"trying your model {cfg.name} on a batch", f"the forward of model {cfg.name}", net, inputs
            )
    except FactoryError as exc:
        raise ModelError(cfg.name, exc.cause, exc.fix) from exc
    except Exception as exc:  # noqa: BLE001 - the user's forward
        fix = (
            f"make it take inputs of shape [batch, {', '.join(map(str, shape[1:]))}], or train it on data of "
            "the shape it takes"
        )
        if cfg.name == "resnet_small":
            fix = f"set [model.args] in_channels = {shape[1]} (the data's channels)"
        raise ModelError(
            cfg.name,
            f"the model failed on a batch of inputs shaped {shape} (the training data): {one_line(exc)}",
            fix,
        ) from exc
    want = [shape[0], num_classes]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ModelError(
            cfg.name,
            f"the model returned {kind(out)} for a batch, not a tensor of floats",
            f"return one tensor of shape {want} (batch, classes) from forward",
        )
    if list(out.shape) != want:
        raise ModelError(
            cfg.name,
            f"the model returned shape {list(out.shape)} for a batch of {shape[0]}; the "
            f"trainer needs {want} (batch, classes: the dataset has {num_classes})",
            f"set [model.args] num_classes = {num_classes}"
            if cfg.name == "resnet_small"
            else f"end the model with {num_classes} outputs per sample (e.g. nn.Linear(..., {num_classes}))",
        )
    if cfg.output == "log_probs":
        total = float(out.double().exp().sum(1).max()), float(out.double().exp().sum(1).min())
        if not all(math.isfinite(t) and abs(t - 1) < 1e-3 for t in total):
            raise ModelError(
                cfg.name,
                'model.output = "log_probs", but the outputs are not log-probabilities '
                f"(their exponentials sum to {total[1]:.3g}..{total[0]:.3g} per sample, not 1)",
                'set model.output = "logits" (the trainer then applies log_softmax), or end forward '
                "with F.log_softmax(x, dim=1)",
            )


def _call(args: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return f"({text})" if len(text) <= 200 else f"({text[:197]}...)"


def _args_fix(factory: Callable[..., Any]) -> str:
    try:
        try:  # annotations as written, not as strings (modules with `from __future__ import annotations`)
            sig = inspect.signature(factory, eval_str=True)
        except Exception:  # noqa: BLE001 - an annotation that does not evaluate
            sig = inspect.signature(factory)
        signature = f"it takes {sig.replace(return_annotation=inspect.Signature.empty)}; "
    except (TypeError, ValueError):
        signature = ""
    return f"{signature}check [model.args] against its parameters, or fix the factory"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
