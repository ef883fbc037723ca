"""Property tests for trainer.config: whatever a user writes, the answer is a Config or a ConfigError.

Random TOML documents (sections and keys drawn partly from the real schema, partly random;
values of every TOML type, valid-looking and not; broken syntax), random edits of the shipped
experiments.toml, and random --set strings. Any other exception would reach the user as a
traceback instead of a message, so it fails the test. Documents that load must survive the
trip through to_toml unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trainer.config import (
    CHOICES,
    Config,
    ConfigError,
    apply_overrides,
    config_from_toml,
    config_to_dict,
    parse_override,
    to_toml,
)
from trainer.config.messages import cut

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# 200 examples keep CI fast; BSTUI_CONFIG_EXAMPLES=5000 digs deeper by hand. No example
# database: it would leave a .hypothesis/ folder in the repo.
FAST = settings(
    max_examples=int(os.environ.get("BSTUI_CONFIG_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SHIPPED = (Path(__file__).resolve().parents[2] / "experiments.toml").read_text(encoding="utf-8")
SCHEMA: dict[str, list[str]] = {section: list(keys) for section, keys in config_to_dict(Config()).items()}
ALL_KEYS = sorted({k for keys in SCHEMA.values() for k in keys})
ENUM_VALUES = sorted(
    {v for allowed in CHOICES.values() for v in allowed} | {"auto", "cpu", "cuda", "cuda:1", "gpu"}
)


def toml_value(value: Any) -> str:
    """A value as it would appear after `key = `, on one line (scalars and keys through the writer
    under test's public API; lists and tables inline, as a user types them in a --set)."""
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return to_toml({"v": value}).split(" = ", 1)[1].rstrip("\n")


def toml_key(key: str) -> str:
    return to_toml({key: 0}).rsplit(" = ", 1)[0]


# Values as Python objects: plausible for the schema, and anything else TOML can hold.
plain_values = st.one_of(
    st.sampled_from(ENUM_VALUES),
    st.integers(-3, 7000),
    st.integers(),
    st.floats(allow_nan=False),
    st.floats(-1, 2),
    st.booleans(),
    st.text(max_size=12),
    st.lists(st.integers(-2, 7000), max_size=6),
)
nested_values = st.recursive(
    plain_values,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(ALL_KEYS) | st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

# Value text: rendered values, and literals the writer never produces (dates, bad syntax).
value_text = st.one_of(
    nested_values.map(toml_value),
    st.sampled_from(
        [
            "nan",
            "-inf",
            "inf",
            "0x10",
            "1e400",
            "1_000",
            "1979-05-27",
            "07:32:00",
            "1979-05-27T07:32:00Z",
            "{ chunks = 3, enabled = true }",
            "[]",
            '[1, "a"]',
            '"""multi\nline"""',
            "'''x'''",
            "garbage",
            "",
            "[1,",
            '"unterminated',
            "{",
            "= =",
            "[[1], [2]]",
        ]
    ),
    st.text(max_size=10),
)
key_text = st.one_of(
    st.sampled_from(ALL_KEYS),
    st.sampled_from(list(SCHEMA)),
    st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True),
    st.text(max_size=8).map(lambda k: json.dumps(k, ensure_ascii=False)),  # quoted keys, not all valid TOML
)
dotted_key = st.lists(key_text, min_size=1, max_size=3).map(".".join)
header = st.one_of(st.sampled_from(list(SCHEMA)), key_text, dotted_key).map(lambda name: f"[{name}]")
line = st.one_of(
    header,
    st.tuples(dotted_key, value_text).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.sampled_from(["", "# comment", "[[sweep]]", "[sweep.extra]"]),
    st.text(max_size=15),
)
override = st.one_of(
    st.tuples(st.sampled_from(list(SCHEMA)), st.sampled_from(ALL_KEYS), value_text).map(
        lambda t: f"{t[0]}.{t[1]}={t[2]}"
    ),
    st.tuples(dotted_key, value_text).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=20),
)


def check_types(cls: type, values: dict, where: str) -> None:
    """Every value in `values` has exactly the type its dataclass field declares."""
    hints = get_type_hints(cls)
    for key, value in values.items():
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            check_types(expected, value, f"{where}.{key}")
        elif get_origin(expected) is list:
            item = get_args(expected)[0]
            assert all(type(v) is item for v in value), (where, key, value)
        elif get_origin(expected) is dict:  # a free table ([model.args]): any TOML values
            assert type(value) is dict and all(type(k) is str for k in value), (where, key, value)
        else:
            assert type(value) is expected, (where, key, value)


def check_outcome(text: str, overrides: list[str]) -> None:
    """Loading gives a well-typed Config that round-trips, or a ConfigError with a message."""
    try:
        cfg = config_from_toml(text, source="exp.toml", overrides=overrides)
    except ConfigError as err:
        assert str(err).strip()
        assert err.problems and all(p.strip() for p in err.problems)
        event("ConfigError")
        return
    event("loaded")
    for section, values in config_to_dict(cfg).items():
        check_types(type(getattr(cfg, section)), values, section)
    assert config_from_toml(to_toml(config_to_dict(cfg))) == cfg


@FAST
@given(lines=st.lists(line, max_size=12), overrides=st.lists(override, max_size=3))
def test_random_documents_load_or_raise_config_error(lines: list[str], overrides: list[str]) -> None:
    check_outcome("\n".join(lines) + "\n", overrides)


@FAST
@given(data=st.data())
def test_edits_of_the_shipped_file_load_or_raise_config_error(data: st.DataObject) -> None:
    text = SHIPPED
    for _ in range(data.draw(st.integers(1, 3))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 20)))
        text = text[:start] + data.draw(st.one_of(st.text(max_size=6), value_text)) + text[end:]
    check_outcome(text, [])


@FAST
@given(overrides=st.lists(override, min_size=1, max_size=4))
def test_random_overrides_load_or_raise_config_error(overrides: list[str]) -> None:
    check_outcome(SHIPPED, overrides)


@FAST
@given(text=st.one_of(override, st.text(max_size=30)))
def test_parse_override_returns_a_key_path_or_raises_config_error(text: str) -> None:
    try:
        keys, _ = parse_override(text)
    except ConfigError as err:
        assert str(err).startswith(f"--set {cut(text, 100)}: ")  # a long --set is cut in the message
        return
    assert keys and all(isinstance(k, str) for k in keys)
    assert apply_overrides({}, [text]) is not None


# The writer: any nested dict of our simple types survives tomllib.loads(to_toml(d)).
toml_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans(), st.text()
)
toml_trees = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@FAST
@given(d=st.dictionaries(st.text(max_size=6), toml_trees, max_size=5))
def test_to_toml_round_trips_through_tomllib(d: dict[str, Any]) -> None:
    assert tomllib.loads(to_toml(d)) == d


def path_text(**sizes: int) -> st.SearchStrategy[str]:
    """Any text a directory setting accepts: a NUL byte can name no directory, and a lone surrogate is
    no text (the config refuses both)."""
    return st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), **sizes)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Complete config dicts that satisfy every rule (including the cross-key ones)."""
    sizes = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=6, unique=True))
    gcd = math.gcd(*sizes)
    return {
        "data": {
            "dataset": draw(st.sampled_from(CHOICES["data.dataset"])),
            "root": draw(path_text(max_size=20)),
            "download": draw(st.booleans()),
            "fallback": draw(st.sampled_from(CHOICES["data.fallback"])),
            "pipeline": draw(st.sampled_from(CHOICES["data.pipeline"])),
            "train_samples": draw(st.just(0) | st.integers(max(sizes), 10**7)),
            "test_samples": draw(st.integers(0, 10**7)),
            "num_workers": draw(st.integers(0, 64)),
            "pin_memory": draw(st.booleans()),
            "path": draw(path_text(max_size=20)),
            "test_fraction": draw(st.floats(min_value=0.01, max_value=0.99)),
            "normalize": draw(st.sampled_from(CHOICES["data.normalize"])),
            # crop_flip takes 32x32 images: with the 28x28 built-ins only "none" is valid (tested in test_config).
            "augment": "none",
        },
        "model": draw(
            st.sampled_from(CHOICES["model.name"]).map(
                lambda name: {"name": name, "args": {}, "path": draw(path_text(max_size=20))}
            )
            | st.fixed_dictionaries(
                {  # the user's own factory: its args as given, its folder absolute
                    "name": st.sampled_from(["my_model:build", "lab.nets.resnet:make"]),
                    "args": st.dictionaries(
                        st.text(max_size=5), st.integers(-5, 5) | st.text(max_size=5), max_size=3
                    ),
                    "path": st.sampled_from([os.path.abspath("proj"), os.path.abspath(os.sep)]),
                }
            )
        )
        | {"output": draw(st.sampled_from(CHOICES["model.output"]))},
        "optim": {
            "name": draw(st.sampled_from(CHOICES["optim.name"])),
            "lr": draw(st.floats(min_value=1e-9, max_value=1e3)),
            "momentum": draw(st.floats(min_value=0, max_value=0.999)),
            "lr_scaling": draw(st.sampled_from(CHOICES["optim.lr_scaling"])),
            "base_batch_size": draw(st.integers(1, 10**6)),
            "warmup_epochs": draw(st.floats(min_value=0, max_value=100)),
            "weight_decay": draw(st.floats(min_value=0, max_value=1)),
            "trust_coefficient": draw(st.floats(min_value=1e-9, max_value=1)),
            "betas": draw(st.lists(st.floats(min_value=0, max_value=0.999), min_size=2, max_size=2)),
            "eps": draw(st.floats(min_value=1e-12, max_value=1)),
        },
        "sweep": {
            "batch_sizes": sizes,
            "epochs": draw(st.integers(1, 1000)),
            "target_accuracy": draw(st.floats(min_value=1e-6, max_value=1)),
            "seed": draw(st.integers(0, 2**32 - 1)),
            "schedule": draw(st.sampled_from(CHOICES["sweep.schedule"])),
            "device": draw(
                st.sampled_from(["auto", "cpu", "cuda"]) | st.integers(0, 15).map(lambda n: f"cuda:{n}")
            ),
            "lrs": (lrs := draw(st.lists(st.floats(min_value=1e-9, max_value=1e3), max_size=4, unique=True))),
            "lr_grid": {"min": 0.0, "max": 0.0, "points": 0}
            if lrs
            else {
                "min": (lo := draw(st.floats(min_value=1e-9, max_value=1.0))),
                # max = min, or far enough above it that 20 points are 20 lrs at 6 significant digits
                "max": lo * draw(st.just(1.0) | st.floats(min_value=2.0, max_value=10.0)),
                "points": draw(st.integers(0, 20)),
            },
            "seeds": draw(st.integers(1, 10)),
            "eval_every": draw(st.integers(-1, 10**9)),
            # 0 (off) or a divisor of every batch size: micro-batches cut the batches larger than them equally.
            "parallel": draw(st.sampled_from(CHOICES["sweep.parallel"])),
            "micro_batch": draw(
                st.just(0) | st.sampled_from([d for d in range(1, min(gcd, 64) + 1) if gcd % d == 0])
            ),
            # No schedule: a batch schedule needs a one-run sweep (its own tests: tests/unit/test_batch_schedule.py).
            "batch_schedule": "",
        },
        "split_backward": {
            "enabled": (enabled := draw(st.booleans())),
            "chunks": draw(st.sampled_from([k for k in range(1, min(gcd, 64) + 1) if gcd % k == 0]))
            if enabled
            else draw(st.integers(1, 100)),
            "method": draw(st.sampled_from(CHOICES["split_backward.method"])),
        },
        "gns": {
            "every": draw(st.integers(0, 10**4)),
            "chunks": draw(st.integers(2, 64)),
            "beta": draw(st.floats(min_value=0, max_value=0.999)),
            "probe_every": draw(st.integers(0, 10**9)),
        },
        "perf": {
            "fast_path": draw(st.sampled_from(CHOICES["perf.fast_path"])),
            "precision": draw(st.sampled_from(CHOICES["perf.precision"])),
            "channels_last": draw(st.booleans()),
            "cpu_threads": draw(st.integers(0, 64)),
            "fuse_runs": draw(st.sampled_from(CHOICES["perf.fuse_runs"])),
        },
        "output": {"dir": draw(path_text(min_size=1, max_size=20))},
        # No branches: a [branch] table needs a one-run sweep (its own tests: tests/unit/test_branch_fit.py).
        "branch": {
            "epochs": [],
            "batch_sizes": [],
            "decrease": draw(st.floats(min_value=0.01, max_value=0.99)),
            "lr_factors": [1.0],
            "max_samples": draw(st.integers(0, 10**6)),
            "eval_every": 0,
            "base_batch_size": 0,
        },
    }


@FAST
@given(d=valid_configs())
def test_valid_configs_load_and_write_back_unchanged(d: dict[str, Any]) -> None:
    cfg = config_from_toml(to_toml(d), source=os.path.join("run", "config.toml"))
    assert config_to_dict(cfg) == d


# ------------------------------------------------- any TOML value, any size
# Values of every TOML type, at sizes and magnitudes past every bound: ints of hundreds of digits,
# inf and nan, strings of thousands of characters (NUL and control characters included), lists of
# over a thousand items, tables and lists nested deeper than any setting, dates. Whatever a file
# or a --set carries, loading answers with a Config or a ConfigError, within the deadline below.
BOUNDED = settings(
    max_examples=int(os.environ.get("BSTUI_CONFIG_EXAMPLES", "200")),
    deadline=timedelta(seconds=10),  # generous: a shared CI box; typical examples take milliseconds
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
huge_ints = st.one_of(
    st.integers(-(10**600), 10**600),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, 2**32, 1099511627776, 10**30]),
)
small_scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(ENUM_VALUES),
)
any_scalars = st.one_of(
    small_scalars,
    huge_ints,
    st.builds(lambda ch, n: ch * n, st.characters(), st.integers(0, 5000)),  # long strings, NUL included
    st.dates(),
    st.times(),
    st.datetimes(),
    st.builds(lambda v, n: [v] * n, small_scalars, st.integers(0, 1200)),  # long lists
)


def _nest(value: Any, kinds: list[bool]) -> Any:
    for as_list in kinds:
        value = [value] if as_list else {"k": value}
    return value


any_values = st.recursive(
    any_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(ALL_KEYS) | st.text(max_size=6), inner, max_size=4),
        st.builds(_nest, inner, st.lists(st.booleans(), max_size=40)),  # deeper than any setting
    ),
    max_leaves=10,
)
schema_keys = st.sampled_from([f"{section}.{key}" for section, keys in SCHEMA.items() for key in keys])


@BOUNDED
@given(sets=st.lists(st.tuples(schema_keys | dotted_key, any_values), min_size=1, max_size=4))
def test_any_set_value_of_any_type_and_size_loads_or_raises_config_error(sets: list[tuple[str, Any]]) -> None:
    check_outcome("", [f"{k}={toml_value(v)}" for k, v in sets])


@BOUNDED
@given(
    doc=st.dictionaries(
        st.sampled_from(list(SCHEMA)) | st.just("variants") | st.text(max_size=6),
        st.dictionaries(st.sampled_from(ALL_KEYS) | st.text(max_size=6), any_values, max_size=6)
        | st.lists(
            st.dictionaries(
                st.sampled_from(["name", "optim", "batch_sizes", "split_backward"]), any_values, max_size=4
            ),
            max_size=4,
        )
        | any_values,
        max_size=5,
    )
)
def test_any_document_of_any_type_and_size_loads_or_raises_config_error(doc: dict[str, Any]) -> None:
    check_outcome(to_toml(doc), [])
