"""The one number formatter of the app, the report and the headless output (trainer.analysis.figures)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.analysis.figures import num, pct, setting


@pytest.mark.parametrize(
    "value, text",
    [
        (2.0, "2.00"),
        (2.28, "2.28"),
        (0.0123, "0.0123"),
        (0.00395, "0.00395"),
        (642, "642"),
        (1234, "1.23k"),
        (12345, "12.3k"),
        (999.7, "1.00k"),
        (1.5e6, "1.50M"),
        (6.28e-5, "6.28e-5"),
        (-0.5, "-0.500"),
        (0, "0"),
        (None, "-"),
        (math.nan, "-"),
        (math.inf, "-"),
        (True, "-"),
    ],
)
def test_num_is_three_significant_figures(value, text):
    assert num(value) == text


@pytest.mark.parametrize(
    "fraction, text",
    [
        (0.694, "69.4%"),
        (0.082, "8.20%"),
        (1.0, "100%"),
        (0.5, "50.0%"),
        (0.0, "0%"),
        (None, "-"),
    ],
)
def test_accuracy_is_a_percentage(fraction, text):
    assert pct(fraction) == text


@pytest.mark.parametrize(
    "lr, text",
    [
        (0.02, "0.02"),
        (0.0548, "0.0548"),
        (3e-5, "3e-5"),
        (1.5, "1.5"),
        (1.0, "1"),
        (0.000125, "0.000125"),
        (0.07071067811865475, "0.0707"),
        (0.15811388300841897, "0.158"),  # a log-spaced lr grid's points
    ],
)
def test_an_lr_reads_as_written_in_the_config(lr, text):
    assert setting(lr) == text


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_num_is_short_and_close(value):
    text = num(value)
    assert len(text) <= 10  # -1.13e-165 at worst
    if value and abs(value) >= 1e-3:
        scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1], 1.0)
        read = float(text.rstrip("kMG")) * scale
        assert read == pytest.approx(value, rel=6e-3)
