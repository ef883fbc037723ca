"""Axis ticks: 1-2-5 steps, decades with 2 and 5 on log axes, labels of one precision."""

from __future__ import annotations

import math

import pytest

from tui.render.ticks import format_number, format_ticks, linear_ticks, log_ticks, ticks_with_labels


def steps(ticks: list[float]) -> set[float]:
    return {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}


@pytest.mark.parametrize(
    ("lo", "hi", "count"),
    [
        (0.0, 2.3, 3),
        (2.26, 2.36, 5),
        (0.0, 600_000.0, 6),
        (1e-7, 3e-7, 5),
        (-1.0, 1.0, 4),
        (3.0, 4e12, 5),
    ],
)
def test_linear_ticks_are_round_evenly_spaced_and_inside(lo, hi, count):
    ticks = linear_ticks(lo, hi, count)
    assert 2 <= len(ticks) <= count
    tol = (hi - lo) * 1e-9  # at the scale of the range
    assert all(lo - tol <= t <= hi + tol for t in ticks)
    (step,) = steps(ticks)  # one step
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1.0, 2.0, 5.0)


def test_no_quarter_steps_and_no_ticks_for_an_empty_range():
    assert linear_ticks(0.0, 1.0, 5) == [0.0, 0.5, 1.0]  # 0.2 would need 6 ticks; never 0.25
    assert 0.25 not in linear_ticks(0.0, 0.5, 3)
    assert (
        linear_ticks(1.0, 1.0, 5) == []
        and linear_ticks(math.nan, 1.0, 5) == []
        and linear_ticks(0, 1, 1) == []
    )
    assert ticks_with_labels(2.0, 2.0, 4) == []


def test_labels_share_their_precision():
    assert [label for _, label in ticks_with_labels(2.25, 2.36, 6)] == [
        "2.26",
        "2.28",
        "2.30",
        "2.32",
        "2.34",
        "2.36",
    ]
    assert format_ticks([0.0, 0.5, 1.0]) == ["0.0", "0.5", "1.0"]
    assert format_ticks([0.0, 200_000.0, 400_000.0]) == ["0", "200k", "400k"]
    assert format_ticks([1.2e6, 1.4e6]) == ["1.2M", "1.4M"]
    assert format_ticks([1.2e-5, 1.4e-5]) == ["1.2e-5", "1.4e-5"]
    assert format_ticks([0.9, 0.95], percent=True) == ["90%", "95%"]


def test_tiny_and_huge_ranges_get_distinct_labels():
    for lo, hi in ((1e-9, 3e-9), (0.9999, 1.0001), (1e11, 3e11), (12345.0, 12346.0)):
        labels = [label for _, label in ticks_with_labels(lo, hi, 5)]
        assert len(labels) >= 2 and len(set(labels)) == len(labels), (lo, hi, labels)


def test_log_ticks_are_decades_with_2_and_5_then_thinner():
    assert log_ticks(0.9, 3.2, 3) == [(1.0, "10"), (2.0, "100"), (3.0, "1000")]
    assert [label for _, label in log_ticks(-0.5, 0.4, 5)] == ["0.5", "1", "2"]
    many = log_ticks(-12.0, 12.0, 5)
    assert 2 <= len(many) <= 5 and all(pos == int(pos) for pos, _ in many)  # powers of ten only


def test_a_log_range_under_half_a_decade_still_gets_two_ticks():
    ticks = log_ticks(math.log10(1.3), math.log10(1.9), 4)
    assert len(ticks) >= 2
    assert all(math.log10(1.3) <= pos <= math.log10(1.9) for pos, _ in ticks)
    assert [label for _, label in ticks] == ["1.4", "1.6", "1.8"]


def test_numbers_alone_are_short():
    assert format_number(0.5) == "0.5" and format_number(20) == "20" and format_number(12_000) == "12k"
    assert format_number(3e-5) == "3e-5" and format_number(2e6) == "2M"
