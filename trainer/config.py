"""Typed configuration for a sweep: experiments.toml -> Config.

Pure Python (stdlib only: no torch, no Textual): the app validates a config before it
opens a window, and `python -m trainer` validates before anything trains.

Defaults live here, in code; experiments.toml overrides them; `--set KEY=VALUE`
overrides both (see `apply_overrides`). The loader is generic over the dataclasses
below: adding a field with a type hint and a default is all a new key needs; value
rules that go beyond the type live in `_check_values`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence, TextIO, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Allowed values of the enum-like string keys, in one place. MODEL_NAMES mirrors
# trainer.models.MODELS (kept here so checking a name needs no torch import).
DATASETS = ("mnist", "fashion-mnist", "synthetic-digits")
MODEL_NAMES = ("simple_cnn",)
CHOICES: dict[str, tuple[str, ...]] = {
    "data.dataset": DATASETS,
    "data.fallback": DATASETS + ("",),
    "data.pipeline": ("resident", "dataloader"),
    "model.name": MODEL_NAMES,
    "optim.name": ("sgd", "lars", "lamb"),  # mirrors trainer.optim.OPTIMIZERS
    "optim.lr_scaling": ("none", "linear", "sqrt"),
    "sweep.schedule": ("interleaved", "sequential"),
    "sweep.parallel": ("off", "auto"),
    "split_backward.method": ("vectorized", "retain_graph"),
    "perf.fast_path": ("auto", "eager", "cuda_graph"),
    "perf.precision": ("fp32", "bf16"),
}
DEVICE_RE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
VARIANTS = "variants"  # the [[variants]] array of tables (issue 7)
VARIANT_KEYS = ("name", "optim", "split_backward", "batch_sizes")
VARIANT_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+")  # it goes into run ids: bs6000-lars
DEFAULT_CONFIG_FILE = "experiments.toml"


@dataclass
class DataConfig:
    dataset: str = "mnist"  # mnist | fashion-mnist | synthetic-digits
    root: str = "~/.cache/bstui/data"  # where datasets are looked for and downloaded to
    download: bool = True
    fallback: str = "synthetic-digits"  # used, visibly, when the dataset cannot be had; "" to fail
    pipeline: str = "resident"  # resident (whole split on the device) | dataloader (the study's loop)
    train_samples: int = 0  # 0 = all; else the first N
    test_samples: int = 0  # 0 = all; else the first N
    num_workers: int = 0  # DataLoader worker processes (dataloader pipeline only)
    pin_memory: bool = False  # pinned host memory + non-blocking copies (dataloader pipeline only)


@dataclass
class ModelConfig:
    name: str = "simple_cnn"  # the study's SimpleModel


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd (the study's) | lars | lamb (layer-wise trust ratios for huge batches)
    lr: float = 0.02  # learning rate at base_batch_size (or for every batch size when lr_scaling = none)
    momentum: float = 0.5  # SGD and LARS momentum
    lr_scaling: str = "none"  # none | linear | sqrt, relative to base_batch_size
    base_batch_size: int = 60  # batch size at which lr applies unscaled
    warmup_epochs: float = 0.0  # linear warm-up from ~0 to the run's lr over this many epochs
    weight_decay: float = 0.0  # L2 factor on the weights (every optimizer)
    trust_coefficient: float = 0.001  # LARS: local lr = this * |w| / (|g| + weight_decay |w|)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # LAMB: decay of the two Adam moments
    eps: float = 1e-6  # LAMB: added to sqrt(second moment)


@dataclass
class LrGridConfig:
    min: float = 0.0  # smallest lr of the grid
    max: float = 0.0  # largest lr of the grid
    points: int = 0  # lrs spaced evenly on a log scale from min to max; 0 = no grid


@dataclass
class SweepConfig:
    batch_sizes: list[int] = field(default_factory=lambda: [1, 6, 60, 600, 6000])
    epochs: int = 10
    target_accuracy: float = 0.98  # test accuracy that counts as "reached", in (0, 1]
    seed: int = 0  # in [0, 2**32): numpy's seed range
    schedule: str = "interleaved"  # interleaved | sequential
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    lrs: list[float] = field(default_factory=list)  # lr per run (batch size x lr); [] = optim.lr, scaled
    lr_grid: LrGridConfig = field(default_factory=LrGridConfig)  # or a log-spaced grid of lrs
    seeds: int = 1  # repeats of every (batch size, lr) point, seeds seed, seed+1, ...
    micro_batch: int = 0  # gradient accumulation: larger batches step once on micro-batches of this size; 0 = off
    parallel: str = "off"  # off | auto: with several GPUs, independent runs on different GPUs at once


@dataclass
class SplitBackwardConfig:
    enabled: bool = False
    chunks: int = 4  # k: backward passes and optimizer steps per forward pass
    method: str = "vectorized"  # vectorized | retain_graph


@dataclass
class GnsConfig:
    every: int = 50  # iterations between gradient-noise-scale estimates; 0 = off
    chunks: int = 4  # the small batch is batch/chunks (the largest divisor of the batch up to this)
    beta: float = 0.9  # EMA factor of the two averages whose ratio is B_simple


@dataclass
class PerfConfig:
    fast_path: str = "auto"  # auto (CUDA graphs on CUDA with the resident pipeline) | eager | cuda_graph
    precision: str = "fp32"  # fp32 | bf16 (autocast; the study is fp32)
    channels_last: bool = False  # NHWC memory format for the convolutions
    cpu_threads: int = 0  # torch intra-op threads on CPU; 0 = 1 (the study's model is too small to share out)


@dataclass
class OutputConfig:
    dir: str = "runs"  # parent of new run directories


@dataclass
class VariantConfig:
    """One arm of a comparison (`[[variants]]`, issue 7): the runs become batch size x variant.

    A variant overrides [optim] and [split_backward] keys and may run at a subset of
    sweep.batch_sizes; `optim` and `split_backward` are resolved (the config's, then the overrides).
    """

    name: str  # in run ids: bs6000-lars
    optim: OptimConfig
    split_backward: SplitBackwardConfig
    batch_sizes: list[int]  # the batch sizes it runs at (sweep.batch_sizes unless it names a subset)
    overrides: dict[str, Any]  # its table as written, name included (config.toml writes these back)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    split_backward: SplitBackwardConfig = field(default_factory=SplitBackwardConfig)
    gns: GnsConfig = field(default_factory=GnsConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    # [[variants]]: loaded apart from the sections (an array of tables of overrides); [] = one arm.
    variants: list[VariantConfig] = field(default_factory=list, metadata={"toml": False})
    # Not a TOML key: where the config came from, for messages and run directory names.
    source: str = field(default="", compare=False, metadata={"toml": False})


class ConfigError(Exception):
    """A configuration a user can fix. str(err) is the complete message, one problem a line.

    `problems` holds the same lines as a list (for the app, which may show them apart).
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------- entry points


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a config file (None: ./experiments.toml if present, else defaults), apply
    `--set` overrides, validate everything, and return the Config; ConfigError otherwise."""
    if path is None:
        if not os.path.isfile(DEFAULT_CONFIG_FILE):
            return config_from_toml("", source="", overrides=overrides)
        path = DEFAULT_CONFIG_FILE
    source = os.fspath(path)
    if not os.path.exists(source):
        raise ConfigError(
            f"{source}: no such config file; pass a path to an existing one or create "
            f"{DEFAULT_CONFIG_FILE} (every key is optional; see README)"
        )
    try:
        with open(source, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{source}: cannot read config file: {err.strerror or err}") from None
    return config_from_toml(text, source=source, overrides=overrides)


def config_from_toml(text: str, *, source: str = "", overrides: Sequence[str] = ()) -> Config:
    """Like `load_config`, from TOML text; `source` names the text in messages ("" = defaults)."""
    where_file = source or "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = str(err)
        m = re.search(r"line (\d+)", msg)
        line = int(m.group(1)) if m else max(1, len(text.splitlines()))
        raise ConfigError(f"{where_file}:{line}: TOML syntax error: {msg}") from None
    origins = {path: f"{where_file}:{line}" for path, line in _key_lines(text).items()}
    raw = apply_overrides(raw, overrides, origins=origins)
    variant_origins = _variant_lines(text, where_file)
    cfg = _Builder(raw, origins, where_file if source else "", variant_origins=variant_origins).build()
    cfg.source = source
    return cfg


def load_or_exit(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = (), *, stream: TextIO | None = None
) -> Config:
    """`load_config` for command lines (`python -m trainer`, `bstui`): on a ConfigError, print
    "bstui: config error:" and the message to `stream` (default: sys.stderr at call time) and
    exit with status 2 (DESIGN.md: bad configuration, nothing trained) instead of a traceback."""
    try:
        return load_config(path, overrides)
    except ConfigError as err:
        print(f"bstui: config error:\n{err}", file=stream if stream is not None else sys.stderr)
        raise SystemExit(2) from None


def resolved_lr(cfg: Config, batch_size: int) -> float:
    """The lr a run with this batch size uses, after `optim.lr_scaling` (before warm-up):
    none: lr; linear: lr * B / base (Goyal et al. 2017); sqrt: lr * sqrt(B / base) (Krizhevsky 2014)."""
    o = cfg.optim
    if o.lr_scaling == "none":
        return o.lr
    if o.lr_scaling == "linear":
        return o.lr * batch_size / o.base_batch_size
    if o.lr_scaling == "sqrt":
        return o.lr * math.sqrt(batch_size / o.base_batch_size)
    raise ValueError(f"unknown optim.lr_scaling {o.lr_scaling!r}; allowed: {', '.join(CHOICES['optim.lr_scaling'])}")


def sweep_lrs(cfg: Config, batch_size: int) -> list[float]:
    """The lrs a batch size runs with: sweep.lrs as given, a log-spaced sweep.lr_grid, or
    else the one lr of `resolved_lr` (issue 4: a fair comparison sweeps lr per batch size)."""
    s = cfg.sweep
    if s.lrs:
        return list(s.lrs)
    g = s.lr_grid
    if g.points > 0:
        if g.points == 1 or g.max == g.min:
            return [g.min]
        ratio = g.max / g.min
        return [float(f"{g.min * ratio ** (i / (g.points - 1)):.6g}") for i in range(g.points)]
    return [resolved_lr(cfg, batch_size)]


# ------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str], object]:
    """Split "KEY=VALUE" into (key path, value): "sweep.batch_sizes=[6,60]" -> (["sweep", "batch_sizes"], [6, 60]).

    VALUE is TOML (`data.dataset="synthetic-digits"`). A bare word that is not valid TOML is
    taken as a string (`data.dataset=synthetic-digits`, `sweep.device=cuda:1`), because shells
    eat the quotes of `--set data.dataset="synthetic-digits"`. ConfigError on bad syntax.
    """
    where = f"--set {text}"
    parsed = _match_key_path(text, 0)
    if "=" not in text:
        raise ConfigError(f'{where}: missing "="; write KEY=VALUE, e.g. --set sweep.batch_sizes=[6,60]')
    if parsed is None or parsed[1] >= len(text) or text[parsed[1]] != "=":
        key = text.split("=", 1)[0]
        raise ConfigError(f"{where}: {key.strip()!r} is not a dotted key; write e.g. --set sweep.epochs=3")
    keys, end = parsed
    value_text = text[end + 1 :].strip()
    if not value_text:
        raise ConfigError(f"{where}: no value after '='; write e.g. --set sweep.epochs=3")
    try:
        doc = tomllib.loads(f"v = {value_text}")
    except tomllib.TOMLDecodeError as err:
        if re.fullmatch(r"[^\s\"'\[\]{},]+", value_text):
            return keys, value_text
        hint = "strings with spaces or brackets need quotes"
        if "," in value_text and not value_text.startswith("["):
            hint = f"lists need brackets: [{value_text}]"
        raise ConfigError(f"{where}: value is not valid TOML ({err}); {hint}") from None
    if list(doc) != ["v"]:  # e.g. "1\nx = 2" smuggles in a second key
        raise ConfigError(f"{where}: expected one value, got {len(doc)} keys; put the value on one line")
    return keys, doc["v"]


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str], *, origins: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """Merge `--set KEY=VALUE` overrides into a raw TOML dict (harlequin's merge_profile_with_cli).

    Returns a new dict; later overrides win; a table value is merged into the table it names.
    Keys are not checked here (validation does that, naming the --set). `origins`, if given,
    records which --set each key path came from, for messages. ConfigError lists every bad override.
    """
    merged = _deep_copy(raw)
    problems: list[str] = []
    for text in overrides:
        try:
            keys, value = parse_override(text)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        table = merged
        for i, key in enumerate(keys[:-1]):
            nxt = table.setdefault(key, {})
            if not isinstance(nxt, dict):
                dotted = ".".join(keys[: i + 1])
                problems.append(f"--set {text}: {dotted} is a value, not a table, so it has no key {keys[i + 1]!r}")
                break
            table = nxt
        else:
            old = table.get(keys[-1])
            table[keys[-1]] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
            if origins is not None:
                for sub in _paths(value, tuple(keys)):
                    origins[sub] = f"--set {text}"
    if problems:
        raise ConfigError(problems)
    return merged


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for k, v in new.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _paths(value: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    """`prefix` and, for a table, the key paths inside it."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, prefix + (k,)))
    return out


# -------------------------------------------------- where keys are in the text

_KEY_PART = re.compile(r"""[ \t]*(?:([A-Za-z0-9_-]+)|"((?:[^"\\\n]|\\.)*)"|'([^'\n]*)')[ \t]*""")
_HEADER = re.compile(r"[ \t]*\[\[?(.*?)\]\]?[ \t]*(#.*)?")


def _match_key_path(text: str, pos: int) -> tuple[list[str], int] | None:
    """A TOML key path (bare, "quoted", 'literal' parts joined by dots) at `pos`: (parts, end)."""
    parts: list[str] = []
    while True:
        m = _KEY_PART.match(text, pos)
        if m is None:
            return None
        bare, basic, literal = m.groups()
        if basic is not None:
            try:
                basic = json.loads(f'"{basic}"')  # TOML escapes are JSON's, near enough for finding lines
            except ValueError:
                pass
        parts.append(next(p for p in (bare, basic, literal) if p is not None))
        pos = m.end()
        if text.startswith(".", pos):
            pos += 1
            continue
        return parts, pos


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path (and its prefixes) to the 1-based line that first gives it.

    tomllib reports no positions, so this scans the text: [table] headers, `a.b = ...`
    lines within them, and the first level of an inline table. Lines inside multi-line
    strings are skipped. Good enough for pointing a user at a line; never raises.
    """
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline = False

    def note(path: tuple[str, ...], line: int) -> None:
        for i in range(1, len(path) + 1):
            found.setdefault(path[:i], line)

    for n, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            in_multiline = (line.count('"""') + line.count("'''")) % 2 == 0
            continue
        header = _HEADER.fullmatch(line)
        parsed = _match_key_path(header.group(1), 0) if header else None
        if header and parsed and parsed[1] == len(header.group(1)):
            table = tuple(parsed[0])
            note(table, n)
        elif (parsed := _match_key_path(line, 0)) and line.startswith("=", parsed[1]):
            path = table + tuple(parsed[0])
            note(path, n)
            rest = line[parsed[1] + 1 :].lstrip()
            if rest.startswith("{"):
                for m in re.finditer(r"[{,]", rest):
                    inner = _match_key_path(rest, m.end())
                    if inner and rest.startswith("=", inner[1]):
                        note(path + tuple(inner[0]), n)
        in_multiline = (line.count('"""') + line.count("'''")) % 2 == 1
    return found


def _variant_lines(text: str, where_file: str) -> list[dict[tuple[str, ...], str]]:
    """Per `[[variants]]` table in the text, where its keys are: path inside the variant -> "file:line"
    (the key () is the table's header). _key_lines alone would give every variant the first one's lines."""
    lines = text.splitlines()
    header = re.compile(r"[ \t]*\[\[[ \t]*variants[ \t]*\]\][ \t]*(#.*)?")
    starts = [n for n, line in enumerate(lines) if header.fullmatch(line)]
    out = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        found = _key_lines("\n".join(lines[start:end]))
        where = {path[1:]: f"{where_file}:{start + n}" for path, n in found.items() if path[:1] == (VARIANTS,)}
        out.append(where)
    return out


# ----------------------------------------------------------- build + validate


def _q(s: str) -> str:
    """A string as it would be written in TOML, for messages."""
    return json.dumps(s, ensure_ascii=False)


def _describe(value: Any) -> str:
    """A value as a user would name it: 'a string ("x")', 'an integer (5)', 'a table'."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        text = str(value)
        return f"an integer ({text if len(text) <= 30 else text[:27] + '...'})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_q(value if len(value) <= 30 else value[:27] + '...')})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} ({value})"  # TOML dates and times


_TYPE_NAMES = {bool: ("a boolean (true or false)", "booleans"), int: ("an integer", "integers"),
               float: ("a number", "numbers"), str: ("a string", "strings")}  # fmt: skip


def _type_name(tp: Any) -> str:
    if get_origin(tp) is list:
        return f"a list of {_TYPE_NAMES[get_args(tp)[0]][1]}"
    return _TYPE_NAMES[tp][0]


class _Mismatch(Exception):
    """A value does not fit a field's type hint; the message says how."""


def _coerce(value: Any, tp: Any) -> Any:
    """`value` as type `tp` (an int is fine for a float; a bool is never an int); _Mismatch if not.

    Handles the hint types the config dataclasses use: bool, int, float, str, list[...].
    """
    if get_origin(tp) is list:
        if not isinstance(value, list):
            raise _Mismatch(f"expected {_type_name(tp)}, got {_describe(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_coerce(item, get_args(tp)[0]))
            except _Mismatch:
                raise _Mismatch(f"expected {_type_name(tp)}, got {_describe(item)} at position {i + 1}") from None
        return out
    if tp not in _TYPE_NAMES:
        raise TypeError(f"config field type {tp!r} is not supported by the loader; add it to _coerce")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is float and is_number:
        if not math.isfinite(value):
            raise _Mismatch(f"expected a finite number, got {value}")
        return float(value)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise _Mismatch(f"expected {_type_name(tp)}, got {_describe(value)}")


def _sections(cls: type) -> dict[str, Any]:
    """The TOML keys of a config dataclass and their type hints."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.metadata.get("toml", True)}


def _leaf_keys(cls: type = Config, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of the schema that holds a value (not a table)."""
    out: list[tuple[str, ...]] = []
    for name, tp in _sections(cls).items():
        if dataclasses.is_dataclass(tp):
            out.extend(_leaf_keys(tp, prefix + (name,)))
        else:
            out.append(prefix + (name,))
    return out


def _did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _nums(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


class _Builder:
    """Builds a Config from a raw TOML dict, collecting every problem rather than stopping at the first."""

    def __init__(
        self,
        raw: dict[str, Any],
        origins: dict[tuple[str, ...], str],
        file: str,
        *,
        label: str = "",
        variant_origins: list[dict[tuple[str, ...], str]] | None = None,
    ) -> None:
        self.raw = raw
        self.label = label  # put before key names: 'variant "lars": ' while checking a variant
        self.variant_origins = variant_origins or []  # per [[variants]] table in the file: key -> file:line
        self.origins = origins  # key path -> "file:line" or "--set ..."
        self.file = file  # "" when there is no file (defaults + overrides)
        self.problems: list[str] = []
        self.bad: set[str] = set()  # keys with an unknown-key or type problem (they hold defaults)

    def build(self) -> Config:
        cfg = self._dataclass(Config, {k: v for k, v in self.raw.items() if k != VARIANTS}, ())
        self._check_values(cfg)
        if VARIANTS in self.raw:
            cfg.variants = self._variants(self.raw[VARIANTS], cfg)
        if self.problems:
            raise ConfigError(self.problems)
        return cfg

    # -- reporting

    def given(self, path: tuple[str, ...]) -> bool:
        """Whether a key was written (file or --set) rather than left to its default."""
        node: Any = self.raw
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def is_bad(self, dotted: str) -> bool:
        parts = dotted.split(".")
        return any(".".join(parts[:i]) in self.bad for i in range(1, len(parts) + 1))

    def problem(self, path: tuple[str, ...] | str, message: str) -> None:
        """Record "where: key: message"; where is file:line or the --set; "key (default)" if not given."""
        path = tuple(path.split(".")) if isinstance(path, str) else path
        dotted = self.label + ".".join(path)
        if not self.given(path):  # a default value clashing with a given one
            self.problems.append(f"{dotted} (default): {message}")
            return
        where = next((self.origins[path[:i]] for i in range(len(path), 0, -1) if path[:i] in self.origins), "")
        where = where or self.file
        self.problems.append(f"{where}: {dotted}: {message}" if where else f"{dotted}: {message}")

    def check(self, dotted: str, ok: bool, message: str) -> None:
        """A value rule; skipped for keys already reported (they hold defaults now)."""
        if not ok and not self.is_bad(dotted):
            self.problem(dotted, message)

    # -- keys and types, generically from the dataclasses

    def _dataclass(self, cls: type, table: dict[str, Any], prefix: tuple[str, ...]) -> Any:
        known = _sections(cls)
        values: dict[str, Any] = {}
        for key, value in table.items():
            path = prefix + (key,)
            tp = known.get(key)
            if tp is None:
                self._unknown(path, value, known)
            elif dataclasses.is_dataclass(tp) and isinstance(value, dict):
                values[key] = self._dataclass(tp, value, path)
            elif dataclasses.is_dataclass(tp):
                self.problem(path, f"expected a table ([{'.'.join(path)}]), got {_describe(value)}")
            else:
                try:
                    values[key] = _coerce(value, tp)
                    continue
                except _Mismatch as err:
                    self.problem(path, str(err))
            if key not in values:
                self.bad.add(".".join(path))
        return cls(**values)

    def _unknown(self, path: tuple[str, ...], value: Any, known: dict[str, Any]) -> None:
        name, leaves = path[-1], _leaf_keys()
        if len(path) == 1 and _did_you_mean(name, [VARIANTS]):
            self.problem(path, "unknown key; did you mean [[variants]] (an array of tables, one per variant)?")
            return
        # A key of another section (batch_sizes under [optim]) is most likely in the wrong place.
        elsewhere = [".".join(leaf) for leaf in leaves if leaf[-1] == name]
        if len(path) == 1 and isinstance(value, dict):
            guess = _did_you_mean(name, list(known))
            hint = (
                f"did you mean [{guess}]?" if guess
                else f"did you mean {elsewhere[0]}?" if elsewhere
                else f"sections are {', '.join(f'[{s}]' for s in known)}"
            )  # fmt: skip
            self.problem(path, f"unknown section; {hint}")
            return
        near = _did_you_mean(name, list(known)) if len(path) > 1 else None
        guess = (
            (elsewhere[0] if elsewhere else None)
            or (".".join(path[:-1] + (near,)) if near else None)
            or _did_you_mean(".".join(path), [".".join(leaf) for leaf in leaves])
        )
        if guess:
            self.problem(path, f"unknown key; did you mean {guess}?")
        elif len(path) == 1:
            self.problem(path, f"unknown key; keys belong in a section: {', '.join(f'[{s}]' for s in known)}")
        else:
            self.problem(path, f"unknown key; [{'.'.join(path[:-1])}] takes {', '.join(known)}")

    # -- values

    def choice(self, dotted: str, value: str) -> None:
        allowed = CHOICES[dotted]
        guess = _did_you_mean(value, [a for a in allowed if a])
        hint = f"; did you mean {_q(guess)}?" if guess else ""
        self.check(dotted, value in allowed, f"{_q(value)} is not allowed; use one of {', '.join(map(_q, allowed))}{hint}")

    def _check_values(self, cfg: Config) -> None:
        """Rules beyond types; each message names the value and what is allowed."""
        for dotted in CHOICES:
            section, key = dotted.split(".")
            self.choice(dotted, getattr(getattr(cfg, section), key))
        d, o, s = cfg.data, cfg.optim, cfg.sweep
        for key in ("train_samples", "test_samples"):
            value = getattr(d, key)
            self.check(f"data.{key}", value >= 0, f"must be >= 0 (0 = all), got {value}")
        self.check("data.num_workers", d.num_workers >= 0, f"must be >= 0, got {d.num_workers}")
        self.check("optim.lr", o.lr > 0, f"must be > 0, got {o.lr}")
        self.check("optim.momentum", 0 <= o.momentum < 1, f"must be in [0, 1), got {o.momentum}")
        self.check("optim.base_batch_size", o.base_batch_size >= 1, f"must be >= 1, got {o.base_batch_size}")
        self.check("optim.warmup_epochs", o.warmup_epochs >= 0, f"must be >= 0 (0 = no warm-up), got {o.warmup_epochs}")
        self.check("optim.weight_decay", o.weight_decay >= 0, f"must be >= 0 (0 = none), got {o.weight_decay}")
        self.check("optim.trust_coefficient", o.trust_coefficient > 0,
                   f"must be > 0 (LARS uses 0.001), got {o.trust_coefficient}")
        self.check("optim.betas", len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
                   f"must be two numbers in [0, 1) (e.g. [0.9, 0.999]), got {o.betas}")
        self.check("optim.eps", o.eps > 0, f"must be > 0 (e.g. 1e-6), got {o.eps}")
        self.check("sweep.epochs", s.epochs >= 1, f"must be >= 1, got {s.epochs}")
        self.check(
            "sweep.target_accuracy",
            0 < s.target_accuracy <= 1,
            f"must be in (0, 1] (a fraction: 0.98 = 98%), got {s.target_accuracy}",
        )
        self.check("sweep.seed", 0 <= s.seed < 2**32, f"must be in [0, 2**32), got {s.seed}")
        as_cuda = s.device.replace("gpu", "cuda")  # "gpu" is a common guess; it should not suggest "cpu"
        guess = as_cuda if DEVICE_RE.fullmatch(as_cuda) else _did_you_mean(s.device, ["auto", "cpu", "cuda"])
        self.check(
            "sweep.device",
            DEVICE_RE.fullmatch(s.device) is not None,
            f'{_q(s.device)} is not allowed; use "auto", "cpu", "cuda" or "cuda:N"'
            + (f"; did you mean {_q(guess)}?" if guess else ""),
        )
        self.check("output.dir", bool(cfg.output.dir), 'must not be empty; use "." for the current directory')
        self._check_lrs(cfg)
        g = cfg.gns
        self.check("gns.every", g.every >= 0, f"must be >= 0 (0 = off), got {g.every}")
        self.check("gns.chunks", g.chunks >= 2, f"must be >= 2 (two batch sizes are needed), got {g.chunks}")
        self.check("gns.beta", 0 <= g.beta < 1, f"must be in [0, 1), got {g.beta}")
        self.check("perf.cpu_threads", cfg.perf.cpu_threads >= 0, f"must be >= 0 (0 = 1 thread), got {cfg.perf.cpu_threads}")
        self._check_batch_sizes(cfg)

    def _check_lrs(self, cfg: Config) -> None:
        s, grid = cfg.sweep, cfg.sweep.lr_grid
        bad = [lr for lr in s.lrs if lr <= 0]
        self.check("sweep.lrs", not bad, f"every lr must be > 0, got {_nums(bad)}")
        twice = sorted(lr for lr, n in Counter(s.lrs).items() if n > 1)
        self.check("sweep.lrs", not twice, f"{_nums(twice)} listed more than once")
        self.check("sweep.seeds", s.seeds >= 1, f"must be >= 1 (repeats of each point), got {s.seeds}")
        self.check("sweep.lr_grid.points", grid.points >= 0, f"must be >= 0 (0 = no grid), got {grid.points}")
        if grid.points > 0:
            self.check("sweep.lr_grid.min", grid.min > 0, f"must be > 0 (a log-scale grid), got {grid.min}")
            self.check("sweep.lr_grid.max", grid.max >= grid.min,
                       f"must be >= sweep.lr_grid.min = {grid.min}, got {grid.max}")
            self.check("sweep.lr_grid", not s.lrs,
                       "give either sweep.lrs or sweep.lr_grid, not both")

    def _check_batch_sizes(self, cfg: Config) -> None:
        sizes, sb, train = cfg.sweep.batch_sizes, cfg.split_backward, cfg.data.train_samples
        self.check("split_backward.chunks", sb.chunks >= 1, f"must be >= 1, got {sb.chunks}")
        if self.is_bad("sweep.batch_sizes"):
            return
        if not sizes:
            self.problem("sweep.batch_sizes", "must list at least one batch size, e.g. [6, 60]")
            return
        small = [b for b in sizes if b < 1]
        self.check("sweep.batch_sizes", not small, f"every batch size must be >= 1, got {_nums(small)}")
        twice = sorted(b for b, n in Counter(sizes).items() if n > 1)
        self.check("sweep.batch_sizes", not twice, f"{_nums(twice)} listed more than once; each batch size runs once")
        big = [b for b in sizes if b > train]
        self.check(
            "sweep.batch_sizes",
            train <= 0 or self.is_bad("data.train_samples") or not big,
            f"batch size{'s' if len(big) > 1 else ''} {_nums(big)} larger than data.train_samples = {train}; "
            "a batch cannot exceed the training set (raise data.train_samples, 0 = all, or drop them)",
        )
        if not small:
            self._check_micro_batch(cfg)
        if not sb.enabled or small or sb.chunks < 1 or self.is_bad("split_backward.chunks"):
            return
        odd = [b for b in sizes if b % sb.chunks]
        if odd:
            gcd = math.gcd(*sizes)
            # Small divisors only: batch sizes can be huge, and nobody splits into 1000 chunks.
            fits = [k for k in range(2, min(gcd, 64) + 1) if gcd % k == 0] + ([gcd] if gcd > 64 else [])
            fix = (
                f"chunks that divide every batch size: {_nums(fits)}"
                if fits
                else f"no chunks > 1 divides them all; drop {_nums(odd)} or choose other batch sizes"
            )
            key = "split_backward.chunks" if self.given(("split_backward", "chunks")) else "split_backward.enabled"
            self.problem(
                key,
                f"with split_backward.enabled = true, chunks = {sb.chunks} must divide every batch size, "
                f"but does not divide {_nums(odd)} (sweep.batch_sizes); {fix}",
            )

    # -- [[variants]]

    def _variants(self, value: Any, base: Config) -> list[VariantConfig]:
        """Each [[variants]] table, checked as the config it makes (this one with its overrides),
        through the same builder; its problems are named after the variant."""
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            self.problem((VARIANTS,), f"expected an array of tables ([[variants]] with a name and overrides), "
                                      f"got {_describe(value)}")
            return []
        # Line numbers per variant only when the variants are the file's (not replaced by a --set).
        in_file = not self.origins.get((VARIANTS,), "").startswith("--set")
        out: list[VariantConfig] = []
        for i, table in enumerate(value):
            lines = self.variant_origins[i] if in_file and i < len(self.variant_origins) else {}
            here = lines.get((), self.origins.get((VARIANTS,), self.file))
            variant = self._variant(i, table, base, lines, here, {v.name for v in out})
            if variant is not None:
                out.append(variant)
        return out

    def _variant(
        self, i: int, table: dict[str, Any], base: Config, lines: dict[tuple[str, ...], str], here: str,
        taken: set[str],
    ) -> VariantConfig | None:
        def say(key: str, message: str) -> None:
            where = lines.get((key,), here)
            self.problems.append(f"{where}: variants[{i + 1}].{key}: {message}" if where else f"variants[{i + 1}].{key}: {message}")

        name = table.get("name")
        ok = True
        if not isinstance(name, str) or not VARIANT_NAME_RE.fullmatch(name):
            got = "missing" if name is None else f"got {_describe(name)}"
            say("name", f"every variant needs a name of letters, digits and _ . + - (it goes into run ids "
                        f"such as bs6000-lars); {got}")
            name, ok = f"#{i + 1}", False
        elif name in taken:
            say("name", f'"{name}" is used by an earlier variant; each variant needs its own name')
            ok = False
        for key in table:
            if key in VARIANT_KEYS:
                continue
            moved = [".".join(leaf) for leaf in _leaf_keys() if leaf[-1] == key and leaf[0] in VARIANT_KEYS]
            guess = moved[0] if moved else _did_you_mean(key, VARIANT_KEYS)
            say(key, f"unknown key; a variant takes {', '.join(VARIANT_KEYS)}" + (f"; did you mean {guess}?" if guess else ""))
            ok = False
        sizes = table.get("batch_sizes")
        if sizes is not None:
            try:
                sizes = _coerce(sizes, list[int])
            except _Mismatch as err:
                say("batch_sizes", str(err))
                sizes, ok = None, False
        if sizes is not None:
            foreign = [b for b in sizes if b not in base.sweep.batch_sizes]
            if foreign or not sizes:
                say("batch_sizes", f"must name some of sweep.batch_sizes ({_nums(base.sweep.batch_sizes)}), a variant "
                                   f"runs at a subset of them; {'got ' + _nums(foreign) if foreign else 'got none'}")
                ok = False
        # The config this variant makes: the sections as written, with the variant's overrides merged in.
        merged = _deep_copy({k: v for k, v in self.raw.items() if k != VARIANTS})
        origins = dict(self.origins)
        for section in ("optim", "split_backward"):
            if section in table:
                over, old = table[section], merged.get(section)
                merged[section] = _merge(old, over) if isinstance(old, dict) and isinstance(over, dict) else over
                for sub in _paths(over, (section,)):
                    origins[sub] = lines.get(sub, here)
        if sizes and isinstance(merged.setdefault("sweep", {}), dict):
            merged["sweep"]["batch_sizes"] = sizes
            origins[("sweep", "batch_sizes")] = lines.get(("batch_sizes",), here)
        # Built twice, with and without the variant's label, to keep only problems the variant adds
        # (the sections' own problems are already reported once).
        plain = _Builder(merged, origins, self.file)
        named = _Builder(merged, origins, self.file, label=f'variant "{name}": ')
        cfg = None
        for builder in (named, plain):
            try:
                cfg = builder.build()
            except ConfigError:
                cfg = None
        self.problems.extend(n for p, n in zip(plain.problems, named.problems) if p not in self.problems)
        if cfg is None or not ok:
            return None
        return VariantConfig(name=name, optim=cfg.optim, split_backward=cfg.split_backward,
                             batch_sizes=list(cfg.sweep.batch_sizes), overrides=_deep_copy(table))

    def _check_micro_batch(self, cfg: Config) -> None:
        """sweep.micro_batch must cut every batch larger than itself into equal micro-batches (issue 7)."""
        m, sizes = cfg.sweep.micro_batch, cfg.sweep.batch_sizes
        self.check("sweep.micro_batch", m >= 0, f"must be >= 0 (0 = off), got {m}")
        if m <= 0 or self.is_bad("sweep.micro_batch"):
            return
        odd = [b for b in sizes if b > m and b % m]
        if not odd:
            return
        # Nearby values that work: divisors of the big batch sizes' gcd, at most m, largest first.
        g = math.gcd(*[b for b in sizes if b > m])
        divisors = {d for i in range(1, math.isqrt(g) + 1) if g % i == 0 for d in (i, g // i)}
        fits = sorted((d for d in divisors if 1 < d <= m and all(b % d == 0 for b in sizes if b > d)), reverse=True)
        fix = f"micro-batch sizes that do: {_nums(fits[:4])}" if fits else "only 1 does; choose other batch sizes"
        self.problem(
            "sweep.micro_batch",
            f"{m} must divide every batch size larger than it (each batch is cut into equal micro-batches), "
            f"but does not divide {_nums(odd)} (sweep.batch_sizes); {fix}",
        )


# ------------------------------------------------------------------ write back


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The resolved config as plain TOML-able tables (sections, then variants if any; not `source`)."""
    out: dict[str, Any] = {name: dataclasses.asdict(getattr(cfg, name)) for name in _sections(Config)}
    if cfg.variants:
        out[VARIANTS] = [_deep_copy(v.overrides) for v in cfg.variants]
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str) -> str:
    # Control characters (and DEL) may not appear raw in a TOML basic string.
    return '"' + "".join(
        _ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch) for ch in s
    ) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_str(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"to_toml cannot write {type(value).__name__} values ({value!r})")


def to_toml(d: dict[str, Any]) -> str:
    """A small TOML writer for the config's types: str, int, float, bool, lists, nested tables.

    A table's values come first, then its sub-tables as [a.b] sections; tables inside lists
    become inline tables. For such dicts, tomllib.loads(to_toml(d)) == d.
    """
    lines: list[str] = []

    def table(t: dict[str, Any], path: list[str]) -> None:
        values = [(k, v) for k, v in t.items() if not isinstance(v, dict)]
        subs = [(k, v) for k, v in t.items() if isinstance(v, dict)]
        if path and (values or not subs):  # a table holding only tables needs no header of its own
            lines.append("[" + ".".join(map(_toml_key, path)) + "]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values)
        if values or (path and not subs):
            lines.append("")
        for k, v in subs:
            table(v, path + [k])

    table(d, [])
    return "\n".join(lines).rstrip("\n") + "\n" if lines else ""
