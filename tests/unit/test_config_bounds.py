"""Hostile and absurd configs: each is a ConfigError naming the key, what is
allowed and the fix, never a traceback, never an unbounded search or read."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainer.config import Config, ConfigError, config_from_toml, config_to_dict, load_config, to_toml
from trainer.config.bounds import MAX_CONFIG_BYTES, MAX_OVERRIDES, MAX_RUNS, NAME_MAX, PATH_MAX, RANGES
from trainer.config.coerce import leaf_keys, sections
from trainer.config.schema import MAX_PROBLEMS

REPO = Path(__file__).resolve().parents[2]


def error_of(text: str = "", overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_toml(textwrap.dedent(text).lstrip("\n"), source="exp.toml", overrides=overrides)
    return str(info.value)


# ------------------------------------------------------------------ numbers


def test_every_number_of_the_schema_has_a_range() -> None:
    numeric = {
        ".".join(path) for path in leaf_keys() if _field_type(path) in (int, float, list[int], list[float])
    }
    assert numeric == set(RANGES), "a new number needs its range in bounds.RANGES (docs/config.md shows it)"


def _field_type(path: tuple[str, ...]) -> object:
    cls = Config
    for part in path[:-1]:
        cls = sections(cls)[part]
    return sections(cls)[path[-1]]


def test_an_lr_with_400_zeros_is_a_config_error() -> None:
    msg = error_of("[optim]\nlr = 1" + "0" * 400 + "\n")
    assert msg.startswith("exp.toml:2: optim.lr: ")
    assert "(401 digits)" in msg and len(msg) < 200


def test_epochs_of_5000_nines_is_a_config_error_in_a_file_and_in_a_set() -> None:
    assert error_of("[sweep]\nepochs = " + "9" * 5000 + "\n").startswith(
        "exp.toml:2: a number has thousands of digits"
    )
    assert "a number of thousands of digits" in error_of("", ("sweep.epochs=" + "9" * 5000,))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "perf.cpu_threads=1099511627776",
            "perf.cpu_threads: must be in [0, 1024] (0 = chosen by the batch size), got 1099511627776",
        ),
        (
            "sweep.seeds=1000000000",
            "sweep.seeds: must be in [1, 1000] (repeats of each point), got 1000000000",
        ),
        ("sweep.lr_grid={min=0.01,max=1,points=1000000000}", "sweep.lr_grid.points: must be in [0, 1000]"),
        (
            "sweep.batch_sizes=[6,1000000000000]",
            "every batch size must be in [1, 10000000], got 1000000000000",
        ),
        ("sweep.epochs=100001", "sweep.epochs: must be in [1, 100000], got 100001"),
        ("optim.lr=1e7", "optim.lr: must be in (0, 1e6], got 10000000.0"),
        ("optim.base_batch_size=99999999999", "optim.base_batch_size: must be in [1, 10000000]"),
        ("data.train_samples=10000000000", "data.train_samples: must be in [0, 1000000000] (0 = all)"),
        ("sweep.lrs=[0.1,1e300]", "every lr must be in (0, 1e6], got 1e+300"),
        ("optim.warmup_epochs=1e300", "optim.warmup_epochs: must be in [0, 100000] (0 = no warm-up)"),
    ],
)
def test_numbers_beyond_their_range_name_the_key_and_the_range(override: str, expected: str) -> None:
    assert expected in error_of("", (override,))


def test_micro_batch_against_a_batch_of_10_to_the_30_is_refused_by_the_range() -> None:
    # Without the range, the micro-batch rule would search the divisors of 10**30 (it never ended).
    msg = error_of("", ("sweep.batch_sizes=[1000000000000000000000000000000]", "sweep.micro_batch=7"))
    assert msg.splitlines() == [
        "--set sweep.batch_sizes=[1000000000000000000000000000000]: sweep.batch_sizes: every batch size must be in "
        "[1, 10000000], got 1000000000000000000000000000000"
    ]


def test_a_sweep_of_too_many_runs_is_refused_before_any_is_planned() -> None:
    msg = error_of(
        "", ("sweep.batch_sizes=[1,2,3,4,5,6,7,8,9,10]", "sweep.lrs=[0.1,0.2]", "sweep.seeds=1000")
    )
    assert (
        f"the sweep would train 20000 runs (10 batch sizes x 2 lrs x 1000 seeds); at most {MAX_RUNS}" in msg
    )
    assert msg.startswith("--set sweep.seeds=1000: sweep.seeds: ")


def test_a_list_of_too_many_items_is_refused_without_reading_them() -> None:
    msg = error_of("", ("sweep.batch_sizes=[" + ",".join(map(str, range(1, 102))) + "]",))
    assert "sweep.batch_sizes: expected at most 100 items, got 101" in msg


# ------------------------------------------------------------------ devices


@pytest.mark.parametrize(
    "device",
    ["cuda:99999999999999999999", "cuda:128", "cuda:01", "cuda:-1", "cuda: 1", "CUDA", "cuda:1:2", "cpu:0"],
)
def test_device_strings_are_parsed_strictly(device: str) -> None:
    msg = error_of(f'[sweep]\ndevice = "{device}"\n')
    assert msg.startswith("exp.toml:2: sweep.device: ")
    assert 'use "auto", "cpu", "cuda" or "cuda:N" (N from 0 to 127)' in msg


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:127"])
def test_device_strings_that_torch_takes_as_meant_load(device: str) -> None:
    assert config_from_toml(f'[sweep]\ndevice = "{device}"\n').sweep.device == device


# -------------------------------------------------------------------- paths


@pytest.mark.parametrize("key", ["output.dir", "data.root"])
def test_a_nul_byte_in_a_path_is_a_config_error(key: str) -> None:
    section, name = key.split(".")
    assert f"exp.toml:2: {key}: \"a\\u0000b\" must not contain a NUL byte" in error_of(
        f'[{section}]\n{name} = "a\\u0000b"\n'
    )
    assert "must not contain a NUL byte" in error_of("", (f'{key}="x\\u0000"',))


def test_a_name_longer_than_the_os_allows_is_a_config_error() -> None:
    msg = error_of("", ("output.dir=runs/" + "d" * (NAME_MAX + 1),))
    assert f"has a name of {NAME_MAX + 1} bytes" in msg and f"at most {NAME_MAX} bytes" in msg
    assert len(msg) < 400, "the long name is cut in the message"


def test_a_path_longer_than_the_os_allows_is_a_config_error() -> None:
    long_path = "/".join(["é" * 100] * (PATH_MAX // 200 + 1))  # 2 bytes a character: under 4096 characters
    msg = error_of("", (f'data.root="{long_path}"',))
    assert f"paths on this system are at most {PATH_MAX - 1} bytes" in msg


def test_a_5000_character_directory_name_is_a_config_error() -> None:
    assert "output.dir: expected a string of at most 4096 characters, got 5000" in error_of(
        "", ("output.dir=" + "d" * 5000,)
    )


# --------------------------------------------------------------- the file


def test_5000_nested_arrays_are_a_config_error() -> None:
    msg = error_of("[sweep]\nbatch_sizes = " + "[" * 5000 + "]" * 5000 + "\n")
    assert msg.startswith("exp.toml:2: tables and lists nested more than 8 deep")
    assert "nested more than 8 deep" in error_of("", ("sweep.batch_sizes=" + "[" * 5000 + "]" * 5000,))


@pytest.mark.parametrize("depth", [9, 20, 200])
def test_lists_and_tables_nested_past_the_bound_are_a_config_error(depth: int) -> None:
    assert error_of("[sweep]\nbatch_sizes = " + "[" * depth + "]" * depth + "\n").startswith(
        "exp.toml:2: tables and lists nested more than 8 deep"
    )
    assert "nest more than 8 deep" in error_of("", ("sweep.batch_sizes=" + "[" * depth + "]" * depth,))
    assert "nested more than 8 deep" in error_of("x = " + "{a = " * depth + "1" + "}" * depth + "\n")


def test_eight_levels_are_within_the_bound() -> None:
    # [sweep] and 7 lists: 8 levels. 9 are refused, and the line is found though the lists alone are 8.
    assert "expected a list of integers" in error_of("[sweep]\nbatch_sizes = " + "[" * 7 + "]" * 7 + "\n")
    assert error_of("[sweep]\nbatch_sizes = " + "[" * 8 + "]" * 8 + "\n").startswith(
        "exp.toml:2: tables and lists"
    )


def test_a_dotted_key_of_50000_parts_is_refused_before_tomllib_sees_it() -> None:
    assert (
        error_of("a" + ".a" * 50_000 + " = 1\n")
        == "exp.toml:1: a dotted key of more than 16 parts; no setting has one"
    )
    assert error_of("", ("sweep={" + "a." * 50_000 + "b=1}",)).endswith(
        ": a dotted key of more than 16 parts; no setting has one"
    )
    assert "a key of more than 16 parts" in error_of("", ("a" + ".a" * 50_000 + "=1",))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_as_the_config_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "exp.toml"
    os.mkfifo(fifo)
    with pytest.raises(
        ConfigError,
        match=r"exp\.toml: cannot read config file: it is a FIFO \(named pipe\), not a "
        "regular file",
    ):
        load_config(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_and_a_link_to_it_are_refused_without_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="it is a device, not a regular file"):
        load_config("/dev/zero")
    (tmp_path / "link.toml").symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="it is a device, not a regular file"):
        load_config(tmp_path / "link.toml")


def test_a_huge_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with open(path, "wb") as f:
        f.truncate(10 * 1024**3)  # sparse: 10 GiB that take no disk
    with pytest.raises(ConfigError, match=rf"huge\.toml: the file is over {MAX_CONFIG_BYTES // 1024} KiB"):
        load_config(path)


def test_a_nul_byte_in_the_config_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config("exp\0.toml")


def test_thousands_of_unknown_keys_give_a_capped_message() -> None:
    text = "[sweep]\n" + "".join(f"k{i} = 1\n" for i in range(20_000))
    with pytest.raises(ConfigError) as info:
        config_from_toml(text, source="exp.toml")
    problems = info.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0] == "exp.toml:2: sweep.k0: unknown key; did you mean sweep.lrs?"
    assert problems[-1] == f"... and {20_000 - MAX_PROBLEMS} more problems (fix these first)"


def test_100000_unknown_keys_are_refused_by_the_file_size_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text("[sweep]\n" + "".join(f"k{i} = 1\n" for i in range(100_000)), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: the file is over {MAX_CONFIG_BYTES // 1024} KiB, and a config holds a "
        "few KB of settings: is it the right file?"
    ]


def test_too_many_set_options_are_refused() -> None:
    assert f"at most {MAX_OVERRIDES} in one command" in error_of(
        "", tuple(["sweep.epochs=1"] * (MAX_OVERRIDES + 1))
    )


@pytest.mark.parametrize(
    "override",
    [
        "data.dataset=" + "x" * 3000,
        "sweep.device=" + "y" * 3000,
        "sweep.batch_sizes=[" + "0," * 90 + "0]",
        "optim.betas=[" + "2.0," * 500 + "2.0]",
        "z" * 3000 + "=1",
        "sweep." + "q" * 3000 + "=1",
    ],
)
def test_long_values_and_keys_are_cut_in_messages(override: str) -> None:
    msg = error_of("", (override,))
    assert len(msg) < 500, msg


# ------------------------------------------------------------ run ids


def test_an_lr_grid_whose_points_print_alike_is_refused() -> None:
    msg = error_of("", ("sweep.lr_grid={min=0.1,max=0.100001,points=5}",))
    assert (
        "sweep.lr_grid.points: 5 points from 0.1 to 0.100001 give only 2 different lrs at 6 significant digits"
        in msg
    )
    assert "give only 1 different lr at" in error_of("", ("sweep.lr_grid={min=0.1,max=0.1000001,points=3}",))


@pytest.mark.parametrize(("first", "second"), [("lars", "LARS"), ("a+b", "a_b")])
def test_variant_names_that_would_share_checkpoint_files_are_refused(first: str, second: str) -> None:
    msg = error_of("", (f'variants=[{{name="{first}"}}, {{name="{second}"}}]',))
    assert f'"{second}" and the earlier "{first}" would share checkpoint files' in msg


# ----------------------------------------------------------------- write back


def test_config_toml_round_trips_variants_and_awkward_strings(tmp_path: Path) -> None:
    awkward = 'tab\there "quote" \\ back\nnew line é 中 \x7f \U0001f600'
    cfg = load_config(
        None,
        [
            "sweep.batch_sizes=[60,600]",
            f"data.root={to_toml({'v': awkward}).split(' = ', 1)[1].strip()}",
            'variants=[{name="a.b+c", optim={name="lamb", betas=[0.8, 0.9]}}, {name="x", batch_sizes=[600], '
            'split_backward={enabled=true, chunks=3}}]',
        ],
    )
    assert cfg.data.root == awkward
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config_to_dict(cfg)), encoding="utf-8")
    again = load_config(path)
    assert again == cfg and [v.name for v in again.variants] == ["a.b+c", "x"]


def test_a_config_toml_written_by_the_old_writer_still_loads_and_plans_the_same_runs() -> None:
    # Written by the hand-made TOML writer this package replaced (inline variants before the sections).
    cfg = load_config(Path(__file__).parent / "fixtures" / "old_writer_config.toml")
    assert cfg.data.root == 'C:\\data "x" \x7f tab\there é'
    assert [v.name for v in cfg.variants] == ["sgd", "lars+wd", "split"]
    assert cfg.variants[1].optim.betas == [0.8, 0.9] and cfg.variants[2].split_backward.chunks == 10
    from trainer.plan import run_specs

    ids = [s.run_id for s in run_specs(cfg)]
    assert ids[:4] == ["bs60-sgd-lr0.1-s0", "bs60-sgd-lr0.1-s1", "bs60-sgd-lr0.01-s0", "bs60-sgd-lr0.01-s1"]
    assert "bs6000-lars+wd-lr0.01-s1" in ids and len(ids) == len(set(ids)) == 24
    assert config_from_toml(to_toml(config_to_dict(cfg))) == cfg


@pytest.mark.subprocess
def test_config_and_plan_import_no_torch_numpy_rich_or_textual() -> None:
    code = (
        "import sys, trainer.config, trainer.plan; "
        "print(sorted(m for m in ('torch', 'numpy', 'rich', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
