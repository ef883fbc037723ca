"""Orchestration: a sweep's runs, interleaved or on a pool of GPUs, resumed, calibrated, sharded, branched."""
