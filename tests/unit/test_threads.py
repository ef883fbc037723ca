"""CPU threads by the work of one step: one thread for tiny steps, every core for larger."""

from __future__ import annotations

from trainer.engine.threads import MIN_SHARED_BATCH, cpu_threads


def test_tiny_steps_run_on_one_thread_and_larger_ones_on_every_core():
    assert cpu_threads(1, cores=8) == 1
    assert cpu_threads(MIN_SHARED_BATCH - 1, cores=8) == 1
    assert cpu_threads(MIN_SHARED_BATCH, cores=8) == 8
    assert cpu_threads(6000, cores=2) == 2


def test_the_work_is_per_pass_so_micro_batches_count_not_the_batch():
    assert cpu_threads(6000, micro_batch=8, cores=4) == 1
    assert cpu_threads(6000, micro_batch=64, cores=4) == 4
    assert cpu_threads(32, micro_batch=600, cores=4) == 4  # a micro-batch above the batch: one pass


def test_perf_cpu_threads_overrides_the_rule():
    assert cpu_threads(1, configured=3, cores=8) == 3
    assert cpu_threads(6000, configured=1, cores=8) == 1


def test_a_machine_reporting_no_cores_still_gets_one_thread():
    assert cpu_threads(600, cores=0) == 1
