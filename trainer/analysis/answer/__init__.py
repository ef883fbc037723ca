"""The sweep's answer, laid out: the batch x lr matrix (matrix.py), the steps-to-target curve with its
regimes (regime.py), the lr rule measured from the grid (lr_rule.py), the answer in sentences
(sentences.py) and a scheduled run's own row beside the matrix (scheduled.py). No torch, no numpy here
(the analysis it reads is trainer.analysis.scaling.analyse, the fit trainer.analysis.bcrit): the app's
scaling screen, report.md and the end of `python -m trainer run` all read it, so they say the same thing.
This package's namespace is the surface they import.
"""

from trainer.analysis.answer.lr_rule import (
    BestLr,
    LrRule,
    best_lrs,
    lr_rule,
    rule_sentence,
    unrun_batch_sizes,
)
from trainer.analysis.answer.matrix import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    METRICS,
    NOT_REACHED,
    UNFINISHED,
    UNUSABLE,
    Cell,
    Matrix,
    cell_status,
    cell_text,
    markdown_table,
    matrix,
)
from trainer.analysis.answer.regime import (
    DIMINISHING,
    NO_GAIN,
    PERFECT,
    TRAINING,
    Curve,
    CurvePoint,
    classify,
    curve,
    fit_slope,
    measured_slopes,
    regime_sentence,
)
from trainer.analysis.answer.scheduled import Scheduled, scheduled_entry
from trainer.analysis.answer.sentences import (
    answer_lines,
    answers,
    b_simple_sentence,
    fewest_steps_sentence,
    reached_sentence,
)

__all__ = [
    "DIMINISHING",
    "LOWER_IS_BETTER",
    "METRICS",
    "METRIC_NAMES",
    "NOT_REACHED",
    "NO_GAIN",
    "PERFECT",
    "Scheduled",
    "TRAINING",
    "UNFINISHED",
    "UNUSABLE",
    "BestLr",
    "Cell",
    "Curve",
    "CurvePoint",
    "LrRule",
    "Matrix",
    "answer_lines",
    "answers",
    "b_simple_sentence",
    "best_lrs",
    "cell_status",
    "cell_text",
    "classify",
    "curve",
    "fewest_steps_sentence",
    "fit_slope",
    "lr_rule",
    "markdown_table",
    "matrix",
    "measured_slopes",
    "reached_sentence",
    "regime_sentence",
    "rule_sentence",
    "scheduled_entry",
    "unrun_batch_sizes",
]
