"""[[variants]]: one sweep compares optimizers and split-backward at the same batch sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import ConfigError, config_from_toml, config_to_dict, load_config, to_toml
from trainer.plan import run_specs
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep

REPO = Path(__file__).resolve().parents[2]

THREE_ARMS = """\
[optim]
lr = 0.02

[sweep]
batch_sizes = [60, 6000, 60000]

[[variants]]
name = "sgd"

[[variants]]
name = "lars"
batch_sizes = [6000, 60000]
optim = { name = "lars", lr = 5.0, momentum = 0.9 }

[[variants]]
name = "split"
batch_sizes = [60000]
split_backward.enabled = true
split_backward.chunks = 10
"""


def test_runs_are_batch_size_times_variant_with_their_own_settings():
    specs = {s.run_id: s for s in run_specs(config_from_toml(THREE_ARMS))}
    assert list(specs) == [
        "bs60-sgd",
        "bs6000-sgd",
        "bs6000-lars",
        "bs60000-sgd",
        "bs60000-lars",
        "bs60000-split",
    ]
    lars = specs["bs6000-lars"]
    assert (lars.variant, lars.optim.name, lars.lr, lars.momentum, lars.split_chunks) == (
        "lars",
        "lars",
        5.0,
        0.9,
        1,
    )
    sgd = specs["bs60-sgd"]
    assert (sgd.optim.name, sgd.lr, sgd.momentum) == ("sgd", 0.02, 0.5)
    assert specs["bs60000-split"].split_chunks == 10 and specs["bs60000-split"].optim.name == "sgd"


def test_without_variants_run_ids_stay_as_before():
    assert [s.run_id for s in run_specs(load_config(None, ["sweep.batch_sizes=[6,60]"]))] == ["bs6", "bs60"]


def test_a_variant_scales_its_own_lr():
    cfg = config_from_toml(
        THREE_ARMS.replace('name = "lars", lr = 5.0', 'name = "lars", lr = 5.0, lr_scaling = "linear"')
    )
    specs = {s.run_id: s for s in run_specs(cfg)}
    assert specs["bs6000-lars"].lr == pytest.approx(500.0) and specs["bs6000-sgd"].lr == 0.02


def test_variant_problems_name_the_variant_and_its_line():
    text = THREE_ARMS.replace("lr = 5.0", "lr = -5.0").replace("chunks = 10", "chunks = 7")
    with pytest.raises(ConfigError) as info:
        config_from_toml(text, source="huge.toml")
    problems = info.value.problems
    assert 'huge.toml:13: variant "lars": optim.lr: must be > 0, got -5.0' in problems
    assert any(
        p.startswith(
            'huge.toml:19: variant "split": split_backward.chunks: with split_backward.enabled = true, '
            "chunks = 7 must divide every batch size, but does not divide 60000"
        )
        for p in problems
    )
    assert len(problems) == 2  # the sections' own keys are fine, so nothing else is reported


def test_a_sections_problem_is_reported_once_not_once_per_variant():
    with pytest.raises(ConfigError) as info:
        config_from_toml(THREE_ARMS.replace("lr = 0.02", "lr = 0"), source="huge.toml")
    assert [p for p in info.value.problems if "optim.lr" in p] == [
        "huge.toml:2: optim.lr: must be > 0, got 0.0"
    ]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            'name = "lamb"\nlr = 3',
            "variants[4].lr: unknown key; a variant takes name, optim, split_backward, "
            "batch_sizes; did you mean optim.lr?",
        ),
        ('name = "lamb"\noptim.lrr = 3', 'variant "lamb": optim.lrr: unknown key; did you mean optim.lr?'),
        ('name = "sgd"', 'variants[4].name: "sgd" is used by an earlier variant'),
        ("optim.lr = 3", "variants[4].name: every variant needs a name"),
        ('name = "two words"', "variants[4].name: every variant needs a name of letters"),
        (
            'name = "x"\nbatch_sizes = [600]',
            "variants[4].batch_sizes: must name some of sweep.batch_sizes (60, 6000, 60000)",
        ),
        (
            'name = "x"\noptim.name = "lasr"',
            'variant "x": optim.name: "lasr" is not allowed; use one of "sgd", '
            '"lars", "lamb"; did you mean "lars"?',
        ),
    ],
)
def test_bad_variants_are_config_errors(table: str, expected: str):
    with pytest.raises(ConfigError) as info:
        config_from_toml(THREE_ARMS + "\n[[variants]]\n" + table + "\n", source="huge.toml")
    assert expected in str(info.value)


def test_misspelt_variants_table_gets_a_did_you_mean():
    with pytest.raises(ConfigError, match=r"variant: unknown key; did you mean \[\[variants\]\]"):
        config_from_toml('[[variant]]\nname = "a"\n')


def test_variants_can_be_given_with_set():
    cfg = load_config(
        None, ["sweep.batch_sizes=[60,600]", 'variants=[{name="a"}, {name="b", optim={name="lamb"}}]']
    )
    assert [s.run_id for s in run_specs(cfg)] == ["bs60-a", "bs60-b", "bs600-a", "bs600-b"]


def test_resolved_config_with_variants_round_trips(tmp_path: Path):
    cfg = config_from_toml(THREE_ARMS)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config_to_dict(cfg)), encoding="utf-8")
    again = load_config(path)
    assert again == cfg and [v.name for v in again.variants] == ["sgd", "lars", "split"]


def test_the_shipped_huge_batch_experiment_compares_five_methods_at_two_huge_batches():
    cfg = load_config(REPO / "experiments" / "huge-batch.toml")
    specs = {s.run_id: s for s in run_specs(cfg)}
    methods = ["sgd", "linear", "lars", "lamb", "split"]
    assert list(specs) == ["bs60-sgd"] + [f"bs{b}-{m}" for b in (6000, 60000) for m in methods]
    assert specs["bs60-sgd"].lr == 0.02 and specs["bs60000-sgd"].lr == 0.02  # the study's lr, unscaled
    assert specs["bs6000-linear"].lr == pytest.approx(0.02 * 100)  # linear rule from batch 60
    assert cfg.variants[1].optim.warmup_epochs > 0
    assert specs["bs60000-lars"].optim.name == "lars" and specs["bs60000-lamb"].optim.name == "lamb"
    assert specs["bs60000-split"].split_chunks == 10 and specs["bs60000-split"].optim.name == "sgd"


# ------------------------------------------------------------------- a sweep


@pytest.fixture
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


@pytest.mark.usefixtures("_shared_dataset")
def test_a_sweep_with_variants_records_them_and_analyses_each_apart(tiny_config):
    cfg = tiny_config(sweep={"batch_sizes": [100, 200], "epochs": 1})
    cfg.variants = load_config(
        None,
        [
            "sweep.batch_sizes=[100,200]",
            'variants=[{name="sgd", batch_sizes=[200]}, {name="lamb", optim={name="lamb", lr=0.01}}]',
        ],
    ).variants
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]))
    assert [s["run"] for s in result.summaries] == ["bs100-lamb", "bs200-sgd", "bs200-lamb"]
    assert [r["variant"] for r in sink.events[0]["runs"]] == ["lamb", "sgd", "lamb"]
    started = {e["run"]: e for e in sink.of_type("run_started")}
    assert started["bs200-lamb"]["optim"] == "lamb" and started["bs200-sgd"]["optim"] == "sgd"
    assert {s["run"]: s["variant"] for s in result.summaries}["bs200-sgd"] == "sgd"
    scaling = sink.events[-1]["scaling"]
    assert set(scaling["variants"]) == {"sgd", "lamb"}
    assert [p["batch_size"] for p in scaling["variants"]["lamb"]["points"]] == [100, 200]
    # Same batch, same data order, same initial weights: only the optimizer differs.
    losses = {
        run: [v for e in sink.of_type("losses") if e["run"] == run for v in e["values"]]
        for run in ("bs200-sgd", "bs200-lamb")
    }
    assert losses["bs200-sgd"][0] == pytest.approx(losses["bs200-lamb"][0])
    assert losses["bs200-sgd"][1:] != pytest.approx(losses["bs200-lamb"][1:])


def test_the_scaling_analysis_keeps_variants_at_the_same_batch_and_lr_apart():
    from trainer.analysis.scaling import lr_points

    rows = [
        {"batch_size": 6000, "lr": 0.02, "variant": v, "status": "done", "best_test_acc": acc}
        for v, acc in (("sgd", 0.5), ("split", 0.9))
    ]
    points = lr_points(rows)
    assert [(p["variant"], p["seeds"], p["best_test_acc"]) for p in points] == [
        ("sgd", 1, 0.5),
        ("split", 1, 0.9),
    ]
    assert "variant" not in lr_points([{"batch_size": 60, "lr": 0.02, "status": "done"}])[0]
