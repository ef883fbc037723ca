"""k for split-backward as the app offers it (tui.state.split_choice)."""

from __future__ import annotations

from tui.state.split_choice import chunk_choices, split_outcome, step_chunks

LR_GRID = [1, 6, 60, 600, 6000]


def test_plus_and_minus_step_only_through_k_that_divide_a_batch_size():
    assert chunk_choices([6]) == [2, 3, 6]
    assert step_chunks(3, 1, [6]) == 6 and step_chunks(6, 1, [6]) == 6  # the end: stays
    assert step_chunks(6, -1, [6]) == 3 and step_chunks(2, -1, [6]) == 2
    assert step_chunks(4, 1, [6]) == 6 and step_chunks(4, -1, [6]) == 3  # from a k no batch takes
    ks = chunk_choices(LR_GRID)
    assert 7 not in ks and all(any(b % k == 0 for b in LR_GRID) for k in ks)
    assert step_chunks(6, 1, LR_GRID) == 8  # 7 divides none of them


def test_a_partial_switch_says_which_batch_sizes_switched_and_which_stay_plain_and_why():
    message, partial, none = split_outcome(5, [6, 60, 600])
    assert partial and not none
    assert message == "split ÷5 on for batch 60, 600; batch 6 stays plain (5 does not divide it)"
    message, partial, none = split_outcome(3, [6, 60])
    assert not partial and not none and message == "split ÷3 on for batch 6, 60"
    message, partial, none = split_outcome(7, [6, 60])
    assert none and "divides none" in message
