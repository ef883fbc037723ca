"""trainer.plan: the runs of a sweep, their ids (unique by construction), the checks
that need the dataset's size."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.config import Config, load_config
from trainer.plan import RunSpec, check_against_dataset, lr_labels, queue_order, run_specs, slice_samples


def test_two_lrs_that_print_alike_get_two_run_ids() -> None:
    cfg = load_config(None, ["sweep.batch_sizes=[60]", "sweep.lrs=[0.1,0.1000001]"])
    assert [(s.run_id, s.lr) for s in run_specs(cfg)] == [
        ("bs60-lr0.1", 0.1),
        ("bs60-lr0.1000001", 0.1000001),
    ]


def test_lrs_that_print_apart_keep_their_short_ids() -> None:
    cfg = load_config(None, ["sweep.batch_sizes=[60]", "sweep.lrs=[0.1,0.05,1e-05]", "sweep.seeds=2"])
    assert [s.run_id for s in run_specs(cfg)] == [
        "bs60-lr0.1-s0",
        "bs60-lr0.1-s1",
        "bs60-lr0.05-s0",
        "bs60-lr0.05-s1",
        "bs60-lr1e-05-s0",
        "bs60-lr1e-05-s1",
    ]


@given(st.lists(st.floats(min_value=1e-12, max_value=1e6), min_size=1, max_size=20, unique=True))
@settings(max_examples=200, database=None, deadline=None)
def test_lr_labels_tell_any_different_lrs_apart(lrs: list[float]) -> None:
    labels = lr_labels(lrs)
    assert len(set(labels.values())) == len(lrs)
    if len({f"{lr:g}" for lr in lrs}) == len(lrs):  # ids as before whenever %g tells them apart
        assert labels == {lr: f"{lr:g}" for lr in lrs}


def test_run_specs_refuses_a_config_the_check_would_have_refused() -> None:
    cfg = Config()
    cfg.sweep.lrs = [0.1, 0.1]  # validation refuses repeats; built by hand here
    with pytest.raises(ValueError, match="bs1-lr0.1"):
        run_specs(cfg)


def test_check_against_dataset_names_the_batch_sizes_the_training_set_cannot_fill() -> None:
    cfg = load_config(None, ["sweep.batch_sizes=[60,6000,60000]"])
    assert check_against_dataset(cfg, 60_000) == []
    assert check_against_dataset(cfg, 3000) == [
        "batch sizes 6000, 60000 (sweep.batch_sizes) are larger than the training set (3000 samples); "
        "a batch cannot exceed it"
    ]
    assert check_against_dataset(cfg, 6000) == [
        "batch size 60000 (sweep.batch_sizes) is larger than the training set (6000 samples); a batch cannot exceed it"
    ]


def test_slice_samples_is_a_tenth_of_an_epoch_but_at_least_the_biggest_batch() -> None:
    cfg = load_config(None, ["sweep.batch_sizes=[60,600]"])
    assert slice_samples(cfg, 60_000) == 6000 and slice_samples(cfg, 3000) == 600


def test_queue_order_hands_out_the_most_iterations_first() -> None:
    specs = [RunSpec(run_id=f"r{b}", batch_size=b, lr=0.1, momentum=0.5) for b in (600, 6, 60)]
    assert [s.run_id for s in queue_order(specs, 6000)] == ["r6", "r60", "r600"]


def test_run_spec_event_fields_are_unchanged() -> None:
    spec = run_specs(load_config(None, ["sweep.batch_sizes=[60]"]))[0]
    assert spec.as_event() == {
        "run": "bs60",
        "batch_size": 60,
        "lr": 0.02,
        "split_chunks": 1,
        "seed": 0,
        "variant": "",
        "optim": "sgd",
    }
    assert math.isclose(spec.momentum, 0.5)
