"""Measurements taken while training that are not training: noise probes, gradient noise scale, oscillation."""
