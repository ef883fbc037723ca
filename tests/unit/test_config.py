"""trainer.config: loading experiments.toml, --set overrides, and the messages a user sees."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer.config import (
    CHOICES,
    Config,
    ConfigError,
    apply_overrides,
    config_from_toml,
    config_to_dict,
    load_config,
    load_or_exit,
    parse_override,
    to_toml,
)
from trainer.plan import resolved_lr, sweep_lrs

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "experiments.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(text: str, overrides: tuple[str, ...] = (), source: str = "exp.toml") -> str:
    """The message of the ConfigError that loading `text` raises (the test fails if none)."""
    with pytest.raises(ConfigError) as info:
        config_from_toml(textwrap.dedent(text).lstrip("\n"), source=source, overrides=overrides)
    assert str(info.value).strip(), "a ConfigError must carry a message"
    return str(info.value)


# ------------------------------------------------------------------ loading


def test_shipped_experiments_toml_gives_the_readme_defaults() -> None:
    cfg = load_config(REPO / "experiments.toml")
    assert cfg.sweep.batch_sizes == [1, 6, 60, 600, 6000]
    assert cfg.optim.lr == 0.02
    assert cfg.optim.momentum == 0.5
    assert cfg.data.dataset == "mnist"
    assert cfg.split_backward.enabled is False
    assert cfg == Config(), "the shipped file and the defaults in code must agree"
    assert cfg.source == str(REPO / "experiments.toml")


def test_no_path_reads_experiments_toml_in_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, "[sweep]\nepochs = 3\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg.sweep.epochs == 3
    assert cfg.source == "experiments.toml"


def test_no_path_and_no_experiments_toml_gives_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["sweep.epochs=2"])
    assert cfg.sweep.epochs == 2
    assert cfg.source == ""
    assert cfg.optim == Config().optim


def test_missing_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"nope\.toml: no such config file; pass a path .* create experiments\.toml"
    ):
        load_config(tmp_path / "nope.toml")


def test_directory_instead_of_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[output]\ndir = "r\xe9sultats"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[data]\ndataset = "mnist"\nlr = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3: TOML syntax error: ")
    assert "line 3" in str(info.value), "tomllib's own message is kept"


# -------------------------------------------------------------- unknown keys


def test_unknown_key_gives_file_line_and_did_you_mean(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, "[data]\ndataset = 'mnist'\n\n[sweep]\nepochs = 2\nbatch_sise = [6, 60]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("experiments.toml")
    assert (
        str(info.value)
        == "experiments.toml:6: sweep.batch_sise: unknown key; did you mean sweep.batch_sizes?"
    )


def test_key_in_the_wrong_section_points_to_its_section() -> None:
    msg = error_of("[optim]\nbatch_sizes = [6]\n")
    assert msg == "exp.toml:2: optim.batch_sizes: unknown key; did you mean sweep.batch_sizes?"


def test_unknown_key_without_a_near_name_lists_the_section_keys() -> None:
    msg = error_of("[model]\nzzzzzz = 1\n")
    assert msg == "exp.toml:2: model.zzzzzz: unknown key; [model] takes name, args, output, path"


def test_unknown_section_suggests_the_nearest() -> None:
    assert error_of("[sweeps]\nepochs = 1\n") == "exp.toml:1: sweeps: unknown section; did you mean [sweep]?"


def test_key_used_as_a_section_points_to_the_key() -> None:
    assert error_of("[epochs]\n") == "exp.toml:1: epochs: unknown section; did you mean sweep.epochs?"


def test_key_outside_any_section_is_unknown() -> None:
    assert error_of("epochs = 3\n") == "exp.toml:1: epochs: unknown key; did you mean sweep.epochs?"


def test_dotted_keys_and_inline_tables_are_located() -> None:
    msg = error_of(
        """
        # a comment
        sweep.epochs = 0
        split_backward = { enabled = false, chunks = 0 }
        """
    )
    assert "exp.toml:2: sweep.epochs: must be >= 1, got 0" in msg.splitlines()
    assert "exp.toml:3: split_backward.chunks: must be >= 1, got 0" in msg.splitlines()


def test_quoted_keys_are_located() -> None:
    assert error_of('[sweep]\n"epochs" = 0\n') == "exp.toml:2: sweep.epochs: must be >= 1, got 0"
    # A dot inside a quoted key is part of the name, not a sub-table.
    assert error_of('[sweep]\n\n"a.b" = 1\n').startswith("exp.toml:3: sweep.a.b: unknown key; ")


# -------------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[sweep]\nepochs = true", "sweep.epochs: expected an integer, got a boolean (true)"),
        ("[sweep]\nepochs = 1.5", "sweep.epochs: expected an integer, got a number (1.5)"),
        ('[optim]\nlr = "0.1"', 'optim.lr: expected a number, got a string ("0.1")'),
        ("[sweep]\nbatch_sizes = 6", "sweep.batch_sizes: expected a list of integers, got an integer (6)"),
        (
            '[sweep]\nbatch_sizes = [6, "60"]',
            'sweep.batch_sizes: expected a list of integers, got a string ("60") at position 2',
        ),
        (
            "[sweep]\nbatch_sizes = [6, true]",
            "expected a list of integers, got a boolean (true) at position 2",
        ),
        ("[data]\ndataset = 1", "data.dataset: expected a string, got an integer (1)"),
        (
            '[data]\ndownload = "yes"',
            'data.download: expected a boolean (true or false), got a string ("yes")',
        ),
        ("sweep = 3", "sweep: expected a table ([sweep]), got an integer (3)"),
        ("[sweep]\nseed = 1979-05-27", "sweep.seed: expected an integer, got a date (1979-05-27)"),
    ],
)
def test_wrong_type_names_what_is_expected_and_what_was_given(toml: str, expected: str) -> None:
    assert expected in error_of(toml)


def test_integer_is_accepted_where_a_number_is_expected() -> None:
    cfg = config_from_toml("[optim]\nlr = 1\nwarmup_epochs = 2\n")
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert isinstance(cfg.optim.warmup_epochs, float)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_rejected(value: str) -> None:
    assert f"optim.lr: expected a finite number, got {float(value)}" in error_of(f"[optim]\nlr = {value}\n")


# ------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.train_samples=-1", "data.train_samples: must be >= 0 (0 = all), got -1"),
        ("data.test_samples=-5", "data.test_samples: must be >= 0 (0 = all), got -5"),
        ("data.num_workers=-1", "data.num_workers: must be >= 0, got -1"),
        (
            "data.pipeline=streaming",
            'data.pipeline: "streaming" is not allowed; use one of "resident", "dataloader"',
        ),
        (
            "data.fallback=cifar",
            'data.fallback: "cifar" is not allowed; use one of "mnist", "fashion-mnist", '
            '"kmnist", "cifar10", "cifar100", "synthetic-digits", ""; did you mean "cifar10"?',
        ),
        ("model.name=resnet", 'model.name: "resnet" is not allowed; use one of "simple_cnn"'),
        ("optim.lr=0", "optim.lr: must be > 0, got 0.0"),
        ("optim.momentum=1", "optim.momentum: must be in [0, 1), got 1.0"),
        ("optim.momentum=-0.1", "optim.momentum: must be in [0, 1), got -0.1"),
        (
            "optim.lr_scaling=cubic",
            'optim.lr_scaling: "cubic" is not allowed; use one of "none", "linear", "sqrt"',
        ),
        ("optim.base_batch_size=0", "optim.base_batch_size: must be >= 1, got 0"),
        ("optim.warmup_epochs=-1", "optim.warmup_epochs: must be >= 0 (0 = no warm-up), got -1.0"),
        ("sweep.batch_sizes=[]", "sweep.batch_sizes: must list at least one batch size"),
        ("sweep.batch_sizes=[0,6]", "sweep.batch_sizes: every batch size must be >= 1, got 0"),
        ("sweep.batch_sizes=[6,60,6]", "sweep.batch_sizes: 6 listed more than once"),
        ("sweep.epochs=0", "sweep.epochs: must be >= 1, got 0"),
        ("sweep.target_accuracy=0", "sweep.target_accuracy: must be in (0, 1]"),
        (
            "sweep.target_accuracy=98",
            "sweep.target_accuracy: must be in (0, 1] (a fraction: 0.98 = 98%), got 98.0",
        ),
        ("sweep.seed=-1", "sweep.seed: must be in [0, 2**32), got -1"),
        (
            "sweep.schedule=parallel",
            'sweep.schedule: "parallel" is not allowed; use one of "interleaved", "sequential"',
        ),
        ("sweep.device=tpu", 'sweep.device: "tpu" is not allowed; use "auto", "cpu", "cuda" or "cuda:N"'),
        ("split_backward.chunks=0", "split_backward.chunks: must be >= 1, got 0"),
        (
            "split_backward.method=loop",
            'split_backward.method: "loop" is not allowed; use one of "vectorized"',
        ),
        ('output.dir=""', 'output.dir: must not be empty; use "." for the current directory'),
    ],
)
def test_impossible_values_name_the_key_and_what_is_allowed(override: str, expected: str) -> None:
    msg = error_of("", (override,))
    assert msg.startswith(f"--set {override}: "), "an override's problem names the --set"
    assert expected in msg


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("data.dataset=synthetic-digit", "synthetic-digits"),
        ("data.dataset=fashion_mnist", "fashion-mnist"),
        ("optim.lr_scaling=linaer", "linear"),
        ("sweep.schedule=sequentail", "sequential"),
        ("split_backward.method=retain-graph", "retain_graph"),
        ("model.name=simple-cnn", "simple_cnn"),
        ("sweep.device=gpu", "cuda"),
        ("sweep.device=gpu:1", "cuda:1"),
        ("sweep.device=cdua", "cuda"),
    ],
)
def test_enum_typo_gets_did_you_mean(override: str, suggestion: str) -> None:
    assert error_of("", (override,)).endswith(f'; did you mean "{suggestion}"?')


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_device_accepts_auto_cpu_and_cuda_n(device: str) -> None:
    assert config_from_toml(f'[sweep]\ndevice = "{device}"\n').sweep.device == device


def test_fallback_may_be_empty_to_fail_instead() -> None:
    assert config_from_toml('[data]\nfallback = ""\n').data.fallback == ""


def test_batch_size_larger_than_train_samples_names_both() -> None:
    msg = error_of("[data]\ntrain_samples = 100\n[sweep]\nbatch_sizes = [6, 60, 600]\n")
    assert msg == (
        "exp.toml:4: sweep.batch_sizes: batch size 600 larger than data.train_samples = 100; "
        "a batch cannot exceed the training set (raise data.train_samples, 0 = all, or drop them)"
    )
    # 0 means the whole training set: any batch size is fine then.
    assert config_from_toml(
        "[data]\ntrain_samples = 0\n[sweep]\nbatch_sizes = [60000]\n"
    ).sweep.batch_sizes == [60000]


def test_default_value_clashing_with_a_given_one_says_default() -> None:
    msg = error_of("", ("data.train_samples=100",))
    assert msg.startswith(
        "sweep.batch_sizes (default): batch sizes 600, 6000 larger than data.train_samples = 100"
    )


def test_chunks_must_divide_every_batch_size_when_split_backward_is_enabled() -> None:
    text = "[sweep]\nbatch_sizes = [12, 24, 36]\n[split_backward]\nenabled = true\nchunks = 5\n"
    msg = error_of(text)
    assert msg.startswith("exp.toml:5: split_backward.chunks: ")
    assert "does not divide 12, 24, 36 (sweep.batch_sizes)" in msg
    assert msg.endswith("chunks that divide every batch size: 2, 3, 4, 6, 12")
    # Disabled, the same chunks are fine: the check is about what will run.
    assert config_from_toml(text.replace("true", "false")).split_backward.chunks == 5


def test_chunks_check_names_only_the_offending_batch_sizes() -> None:
    msg = error_of(
        "", ("split_backward.enabled=true",)
    )  # default chunks = 4, batch sizes 1, 6, 60, 600, 6000
    assert msg.startswith("--set split_backward.enabled=true: split_backward.enabled: ")
    assert "does not divide 1, 6 (sweep.batch_sizes)" in msg
    assert "no chunks > 1 divides them all; drop 1, 6" in msg


def test_all_problems_are_reported_together_one_per_line() -> None:
    msg = error_of("[sweep]\nepochs = 0\nbatch_sise = 1\n[optim]\nlr = -1\nmomentum = '0.5'\n")
    assert msg.splitlines() == [
        "exp.toml:3: sweep.batch_sise: unknown key; did you mean sweep.batch_sizes?",
        'exp.toml:6: optim.momentum: expected a number, got a string ("0.5")',
        "exp.toml:5: optim.lr: must be > 0, got -1.0",
        "exp.toml:2: sweep.epochs: must be >= 1, got 0",
    ]


def test_a_key_with_a_type_error_gets_no_second_value_error() -> None:
    # batch_sizes falls back to its default after the type error; no chunks complaint about that default.
    msg = error_of('[sweep]\nbatch_sizes = "6,60"\n[split_backward]\nenabled = true\n')
    assert msg.splitlines() == [
        'exp.toml:2: sweep.batch_sizes: expected a list of integers, got a string ("6,60")'
    ]


# ---------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sweep.batch_sizes=[6,60]", (["sweep", "batch_sizes"], [6, 60])),
        ('data.dataset="synthetic-digits"', (["data", "dataset"], "synthetic-digits")),
        ("data.dataset=synthetic-digits", (["data", "dataset"], "synthetic-digits")),
        ("sweep.device=cuda:1", (["sweep", "device"], "cuda:1")),
        ("data.root=~/data/mnist", (["data", "root"], "~/data/mnist")),
        ("optim.lr=0.1", (["optim", "lr"], 0.1)),
        ("sweep.epochs = 3", (["sweep", "epochs"], 3)),
        ("split_backward.enabled=true", (["split_backward", "enabled"], True)),
        ("sweep={epochs=2}", (["sweep"], {"epochs": 2})),
        ('"sweep".epochs=1', (["sweep", "epochs"], 1)),
        ("output.dir=a=b", (["output", "dir"], "a=b")),
    ],
)
def test_parse_override(text: str, expected: tuple[list[str], object]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sweep.epochs", '--set sweep.epochs: missing "="; write KEY=VALUE'),
        ("=3", "is not a dotted key"),
        ("sweep epochs=3", "'sweep epochs' is not a dotted key"),
        ("sweep.epochs=", "no value after '='"),
        ("sweep.batch_sizes=6,60", "value is not valid TOML ("),
        ("sweep.batch_sizes=[6,60", "strings with spaces or brackets need quotes"),
        ("sweep.epochs=1\nsweep.seed=2", "expected one value"),
    ],
)
def test_bad_override_syntax_is_a_config_error(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert expected in str(info.value)


def test_override_list_without_brackets_suggests_them() -> None:
    with pytest.raises(ConfigError, match=r"lists need brackets: \[6,60\]"):
        parse_override("sweep.batch_sizes=6,60")


def test_override_of_unknown_key_names_the_set_and_suggests() -> None:
    msg = error_of("", ("sweep.batch_sise=[6]",))
    assert msg == "--set sweep.batch_sise=[6]: sweep.batch_sise: unknown key; did you mean sweep.batch_sizes?"


def test_override_wins_over_the_file_and_later_overrides_win(tmp_path: Path) -> None:
    path = write(tmp_path, "[sweep]\nbatch_sizes = [1, 6]\nepochs = 4\n")
    cfg = load_config(path, ["sweep.batch_sizes=[6,60]", "sweep.epochs=1", "sweep.epochs=2"])
    assert cfg.sweep.batch_sizes == [6, 60]
    assert cfg.sweep.epochs == 2


def test_apply_overrides_merges_tables_and_leaves_its_input_alone() -> None:
    raw = {"sweep": {"epochs": 4, "seed": 1}}
    merged = apply_overrides(raw, ["sweep={epochs=2}", "data.dataset=synthetic-digits"])
    assert merged == {"sweep": {"epochs": 2, "seed": 1}, "data": {"dataset": "synthetic-digits"}}
    assert raw == {"sweep": {"epochs": 4, "seed": 1}}


def test_override_into_a_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--set sweep\.epochs\.x=1: sweep\.epochs is a value, not a table"):
        apply_overrides({"sweep": {"epochs": 4}}, ["sweep.epochs.x=1"])


def test_all_bad_overrides_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides({}, ["a", "b=", "sweep.epochs=2"])
    assert len(info.value.problems) == 2
    assert str(info.value).count("\n") == 1


# ------------------------------------------------------------- write + read


def test_resolved_config_round_trips_through_to_toml(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            "data.dataset=synthetic-digits",
            'data.root="C:\\\\data \\"x\\""',
            "data.train_samples=6000",
            "optim.lr=0.1",
            "optim.lr_scaling=sqrt",
            "optim.warmup_epochs=2",
            "sweep.batch_sizes=[4,8,64]",
            "sweep.target_accuracy=0.9",
            "split_backward.enabled=true",
            "split_backward.method=retain_graph",
        ],
    )
    assert cfg.data.root == 'C:\\data "x"'
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config_to_dict(cfg)), encoding="utf-8")
    assert load_config(path) == cfg


def test_config_to_dict_holds_sections_only() -> None:
    d = config_to_dict(load_config(REPO / "experiments.toml"))
    assert list(d) == ["data", "model", "optim", "sweep", "split_backward", "gns", "perf", "output", "branch"]
    assert d["sweep"]["batch_sizes"] == [1, 6, 60, 600, 6000]


def test_to_toml_writes_nested_tables_quoted_keys_and_escapes() -> None:
    import tomllib

    d = {
        "top": 1,
        "a": {"x": 1.5, "b": {"y": [1, "two", False, {"z": -0.0}]}, "c": {}},
        "odd key": {"tab\there": "line\nbreak \x7f \\ \"q\" é"},
        "f": {"big": 1e300, "inf": math.inf},
    }
    assert tomllib.loads(to_toml(d)) == d
    assert to_toml({}) == ""


def test_to_toml_refuses_values_toml_cannot_hold() -> None:
    with pytest.raises(TypeError, match="NoneType"):
        to_toml({"a": None})


# ----------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("scaling", "batch_size", "expected"),
    [
        ("none", 600, 0.02),
        ("linear", 600, 0.2),
        ("linear", 6, 0.002),
        ("sqrt", 6000, 0.2),
        ("sqrt", 60, 0.02),
    ],
)
def test_resolved_lr_scales_from_base_batch_size(scaling: str, batch_size: int, expected: float) -> None:
    cfg = load_config(None, [f"optim.lr_scaling={scaling}", "optim.lr=0.02", "optim.base_batch_size=60"])
    assert resolved_lr(cfg, batch_size) == pytest.approx(expected)


def test_load_or_exit_prints_the_message_and_exits_2(tmp_path: Path) -> None:
    stream = io.StringIO()
    with pytest.raises(SystemExit) as info:
        load_or_exit(tmp_path / "missing.toml", (), stream=stream)
    assert info.value.code == 2
    assert stream.getvalue().startswith("bstui: config error:\n")
    assert "no such config file" in stream.getvalue()


def test_load_or_exit_returns_the_config_when_valid(capsys) -> None:
    cfg = load_or_exit(REPO / "experiments.toml", ["sweep.epochs=1"])
    assert cfg.sweep.epochs == 1
    assert capsys.readouterr().err == ""


def test_choices_hold_every_enum_default() -> None:
    defaults = config_to_dict(Config())
    for dotted, allowed in CHOICES.items():
        section, key = dotted.split(".")
        assert defaults[section][key] in allowed, dotted


@pytest.mark.subprocess
def test_config_module_imports_no_torch_or_textual() -> None:
    code = "import sys, trainer.config; print(sorted(m for m in ('torch', 'textual') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lr_grid_is_log_spaced_and_lrs_are_taken_as_given() -> None:
    grid = load_config(None, ["sweep.lr_grid={min=0.005,max=0.5,points=5}"])
    assert sweep_lrs(grid, 60) == pytest.approx([0.005, 0.0158114, 0.05, 0.158114, 0.5], rel=1e-5)
    given = load_config(None, ["sweep.lrs=[0.1,0.01]", "optim.lr_scaling=linear"])
    assert sweep_lrs(given, 600) == [0.1, 0.01]
    scaled = load_config(None, ["optim.lr_scaling=linear"])
    assert sweep_lrs(scaled, 600) == pytest.approx([0.2])


def test_lrs_and_lr_grid_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, ["sweep.lrs=[0.1]", "sweep.lr_grid={min=0.01,max=0.1,points=3}"])


def test_perf_fast_path_typo_suggests_the_choice() -> None:
    with pytest.raises(ConfigError, match='did you mean "cuda_graph"'):
        load_config(None, ["perf.fast_path=cuda_graphs"])


def test_a_factory_model_loads_without_being_imported_and_keeps_the_configs_folder(tmp_path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('[model]\nname = "no_such_pkg.nets:build"\noutput = "logits"\n[model.args]\nhidden = 8\n')
    cfg = load_config(path)  # only the form is checked here; the trainer imports it
    assert (cfg.model.name, cfg.model.args, cfg.model.output) == (
        "no_such_pkg.nets:build",
        {"hidden": 8},
        "logits",
    )
    assert cfg.model.path == str(tmp_path)
    assert load_config(path, ["model.path=lib"]).model.path == str(tmp_path / "lib")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "model.name=nets.build",
            'model.name: "nets.build" is not allowed; use one of "simple_cnn", "resnet_small" '
            'or your own as "package.module:factory"',
        ),
        ("model.args.hidden=3", 'model.args: "simple_cnn" takes no argument "hidden"; it takes none'),
        ("model.args.depth=3", 'takes no argument "depth"; it takes in_channels, width'),
        ("model.args.width=0", "model.args: width must be a whole number from 1 to 4096"),
        ("model.output=probs", 'model.output: "probs" is not allowed; use one of "log_probs", "logits"'),
    ],
)
def test_model_mistakes_name_the_key_and_what_is_allowed(override: str, expected: str) -> None:
    extra = (
        ("model.name=resnet_small",) if override.startswith(("model.args.depth", "model.args.width")) else ()
    )
    assert expected in error_of("", (*extra, override))


def test_every_shipped_experiment_loads_and_plans():
    """experiments/*.toml are documentation users copy: each must pass the config check as shipped."""
    from pathlib import Path

    from trainer.config import load_config
    from trainer.plan import run_specs

    files = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.toml"))
    assert len(files) >= 5
    for path in files:
        assert run_specs(load_config(str(path))), path.name
