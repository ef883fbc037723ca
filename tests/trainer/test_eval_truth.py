"""One evaluation truth in the run's book (trainer/engine/ledger.py): the best accuracy, the target, the collapse
and the summary all come from the run's evaluations on the slice; the full test set at epoch ends is
recorded apart. And the test set's slice itself (trainer/engine/evaluation.py). No training: fast."""

from __future__ import annotations

import torch

from trainer.analysis.accuracy import SLICE_SIZE, stratified_slice
from trainer.engine.evaluation import slice_of
from trainer.engine.ledger import Ledger
from trainer.plan import RunSpec
from trainer.runlog import Emitter, ListSink, summary_csv

SPEC = RunSpec(run_id="bs1", batch_size=1, lr=0.02, momentum=0.0)


def _ledger(target: float = 0.65) -> tuple[Ledger, ListSink]:
    sink = ListSink()
    ledger = Ledger(SPEC, Emitter([sink]), target_accuracy=target)
    ledger.eval_samples = 2000
    return ledger, sink


def _train(ledger: Ledger, loss: float = 1.0, n: int = 3) -> None:
    for _ in range(n):
        ledger.record(torch.tensor(loss), 1)
    ledger.flush()


def _evaluate(ledger: Ledger, acc: float, loss: float = 1.0) -> None:
    _train(ledger, loss)
    t = ledger.totals
    ledger.evaluated(
        test_acc=acc, test_loss=1.0, eval_samples=2000, wall_s=t.iters * 0.1, compute_s=t.iters * 0.05
    )


def test_a_run_goes_on_where_its_accuracy_is_well_above_its_own_datasets_chance():
    # 9% after 57% is chance on ten classes (a collapse that ends the run), nine times chance on a hundred.
    ten, _ = _ledger()
    hundred, _ = _ledger()
    hundred.classes = 100
    for acc in (0.31, 0.573, 0.09, 0.098):
        _evaluate(ten, acc)
        _evaluate(hundred, acc)
    assert ten.fell_back() is not None
    assert hundred.fell_back() is None and hundred.end_verdict() is None


def test_a_run_that_collapses_in_its_first_epoch_has_the_accuracy_it_reached():
    # `make run`'s batch 1 "collapsed after reaching 57.3%" while its table and summary had no accuracy.
    ledger, sink = _ledger()
    for acc in (0.31, 0.573, 0.09):
        _evaluate(ledger, acc)
        assert ledger.fell_back() is None  # one evaluation near chance is not a collapse yet
    _evaluate(ledger, 0.098)
    verdict = ledger.fell_back()
    assert verdict is not None and "after reaching 57.3%" in verdict.reason
    row = ledger.summary(status="collapsed", split_chunks=1, optim="sgd", micro_batch=0)
    assert (row["best_test_acc"], row["last_test_acc"], row["eval_set"], row["eval_samples"]) == (
        0.573,
        0.098,
        "slice",
        2000,
    )
    assert (row["collapsed_at_iter"], row["epochs"]) == (9, 0)
    header, line = summary_csv([row]).splitlines()
    cells = dict(zip(header.split(","), line.split(",")))
    assert (cells["best_test_acc"], cells["eval_set"]) == ("0.573", "slice")
    assert all(e["eval_set"] == "slice" and e["test_acc_se"] > 0 for e in sink.of_type("evaluation"))


def test_the_full_test_set_at_epoch_ends_never_mixes_with_the_slice():
    ledger, sink = _ledger(target=0.65)
    _evaluate(ledger, 0.55)
    _train(ledger)
    # the full test set scores higher than the slice here: it must not make the target or the best
    ledger.end_epoch(
        wall=1.0,
        compute=0.5,
        test_loss=0.9,
        test_acc=0.66,
        lr=0.02,
        split_chunks=1,
        probe_figures={},
        slice_loss=1.0,
        slice_acc=0.60,
        eval_samples=2000,
    )
    assert sink.of_type("target_reached") == []
    row = ledger.summary(status="done", split_chunks=1, optim="sgd", micro_batch=0)
    assert (row["best_test_acc"], row["last_test_acc"], row["final_test_acc"]) == (0.60, 0.60, 0.66)
    assert row["time_to_target_s"] is None
    # the epoch end's evaluation on the slice comes just before its epoch_end, which says `full`
    types = [e["type"] for e in sink.events if e["type"] in ("evaluation", "epoch_end")]
    assert types == ["evaluation", "evaluation", "epoch_end"]
    end_eval = sink.of_type("evaluation")[-1]
    assert (end_eval["epoch_end"], end_eval["test_acc"], end_eval["samples"]) == (True, 0.60, 6)
    assert sink.of_type("epoch_end")[0]["eval_set"] == "full"
    _evaluate(ledger, 0.70)
    target = sink.of_type("target_reached")
    assert len(target) == 1 and (target[0]["test_acc"], target[0]["source"], target[0]["iter_lo"]) == (
        0.70,
        "slice",
        6,
    )
    row = ledger.summary(status="done", split_chunks=1, optim="sgd", micro_batch=0)
    assert row["best_test_acc"] == 0.70 >= 0.65  # a run that reached the target shows a best at or above it


def test_a_fall_back_at_the_last_evaluation_is_confirmed_by_the_training_loss():
    for loss, collapsed in ((2.31, True), (0.8, False)):
        ledger, _ = _ledger()
        _evaluate(ledger, 0.9, loss=0.3)
        _train(ledger, loss)
        ledger.end_epoch(
            wall=1.0,
            compute=0.5,
            test_loss=2.3,
            test_acc=0.1,
            lr=0.02,
            split_chunks=1,
            probe_figures={},
            slice_loss=2.3,
            slice_acc=0.1,
            eval_samples=2000,
        )
        assert ledger.fell_back() is None  # in the loop: it waits for a second evaluation
        verdict = ledger.end_verdict()  # the run's last evaluation: the loss since the previous one decides
        assert (verdict is not None) == collapsed, loss
        if collapsed:
            assert verdict.kind == "fell_back" and ledger.totals.collapse["iter"] == 6


def test_a_checkpoint_of_an_older_trainer_loads_and_its_evaluations_keep_their_sets():
    ledger, _ = _ledger()
    _evaluate(ledger, 0.5)
    state = ledger.state_dict()
    for e in state["totals"]["evals"]:  # as the earlier trainer saved them
        del e["eval_set"], e["stretch"]
    state["totals"]["evals"].append(
        {"acc": 0.8, "loss": 1.0, "iters": 3, "samples": 3, "epoch": 1, "epoch_end": True}
    )
    other, _ = _ledger()
    other.load_state_dict(state)
    acc = other.accuracy()  # no slice evaluation: the full test set's epoch ends, as that trainer reported
    assert (acc.eval_set, acc.best) == ("full", 0.8)


def test_the_test_sets_slice_is_stratified_and_the_same_for_every_run():
    y = torch.arange(5000) % 10
    y[:1000] = 3  # an uneven test set
    x = torch.arange(5000, dtype=torch.float32).unsqueeze(1)
    a, b = slice_of(x, y), slice_of(x.clone(), y.clone())
    assert a.slice_size == SLICE_SIZE and not a.whole
    assert torch.equal(a.slice_x, b.slice_x) and torch.equal(a.slice_y, b.slice_y)
    assert a.slice_x.squeeze(1).long().tolist() == stratified_slice(y.tolist(), SLICE_SIZE)
    counts = torch.bincount(a.slice_y, minlength=10).tolist()
    share = (torch.bincount(y, minlength=10).double() * SLICE_SIZE / 5000).tolist()
    assert all(abs(c - s) < 1 for c, s in zip(counts, share))
    small = slice_of(x[:300], y[:300])
    assert small.whole and small.slice_x is small.x and small.slice_size == 300
