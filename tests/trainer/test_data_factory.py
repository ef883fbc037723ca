"""The user's own data: data.dataset = "package.module:factory" returning train and test tensors
or Datasets; the input shape, channels and classes come from the data and are checked against the model."""

from __future__ import annotations

import pytest

from trainer.config import Config
from trainer.data.datasets import DatasetUnavailable, load_dataset
from trainer.models.builtin import ModelError
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep
from trainer.sweep.prepare import check_model

DATA = "tests.trainer.factory_data"


def _data_cfg(name: str):
    cfg = Config()
    cfg.data.dataset = f"{DATA}:{name}"
    return cfg


def test_tensors_give_the_inputs_shape_and_the_classes():
    ds = load_dataset(_data_cfg("colour_tensors").data)
    assert ds.name == f"{DATA}:colour_tensors" and not ds.note
    assert tuple(ds.train.images.shape) == (800, 3, 32, 32) and len(ds.test) == 200 and ds.num_classes == 4


def test_datasets_are_read_into_tensors():
    ds = load_dataset(_data_cfg("grey_datasets").data)
    assert tuple(ds.train.images.shape) == (240, 1, 16, 16) and len(ds.test) == 60 and ds.num_classes == 10


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        (
            "float_labels",
            "its train labels are torch.float32 of shape [50] for 50 inputs; they must be integer",
        ),
        ("three_things", "the factory returned a tuple of 3"),
        ("raises", "the factory raised FileNotFoundError: /data/my-set/train.npz"),
        ("nowhere", "has no nowhere; it defines"),
    ],
)
def test_a_factory_that_does_not_give_a_dataset_is_refused_with_no_stand_in(name, cause):
    cfg = _data_cfg(name)
    assert cfg.data.fallback == "synthetic-digits"
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(cfg.data)
    assert cause in err.value.cause and err.value.fix, "your own data is fixed, never replaced by a fallback"


def test_a_model_that_does_not_fit_the_datas_shape_or_classes_is_a_model_error():
    cfg = _data_cfg("colour_tensors")
    ds = load_dataset(cfg.data)
    cfg.model.name, cfg.model.args = "resnet_small", {"in_channels": 1}
    with pytest.raises(ModelError, match=r"inputs shaped \[2, 3, 32, 32\].*in_channels = 3"):
        check_model(cfg, ds)
    cfg.model.args = {}  # three channels now, but ten classes for a dataset of four
    with pytest.raises(ModelError, match=r"returned shape \[2, 10\] .* needs \[2, 4\]"):
        check_model(cfg, ds)


@pytest.mark.parametrize("pipeline", ["resident", "dataloader"])
def test_a_factory_dataset_and_model_train_a_two_batch_size_sweep_on_cpu(tiny_config, pipeline):
    cfg = tiny_config(
        data={"dataset": f"{DATA}:colour_tensors", "pipeline": pipeline},
        model={"name": "tests.trainer.factory_data:colour_cnn", "output": "logits"},
        sweep={"epochs": 1},
    )
    sink = ListSink()
    assert run_sweep(cfg, Emitter([sink])).status == "done"
    started = sink.events[0]
    assert started["dataset"] == f"{DATA}:colour_tensors" and started["train_samples"] == 600
    assert started["input_shape"] == [3, 32, 32] and started["classes"] == 4
    assert [e["status"] for e in sink.of_type("run_finished")] == ["done", "done"]
    assert all(e["batch_norm"] for e in sink.of_type("run_started"))
    assert len(sink.of_type("epoch_end")) == 2
