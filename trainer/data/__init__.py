"""Datasets and the input pipelines a run trains from."""
