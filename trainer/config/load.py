"""Loading a config: the file (bounded), its TOML (bounded), `--set` overrides merged in, validated.

The entry points `load_config`, `config_from_toml` and `load_or_exit` return a Config or raise
ConfigError (exit 2 on a command line); nothing a user writes gets a traceback, and nothing takes
unbounded time or memory: the file must be a regular file of at most MAX_CONFIG_BYTES, nesting is
bounded, and every value is checked against its type and range (`validate`).
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import sys
from typing import Any, Sequence, TextIO

from trainer.config.bounds import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_HEADERS, MAX_KEY_PARTS, MAX_OVERRIDES
from trainer.config.keylines import deep_line, key_lines, match_key_path, variant_lines
from trainer.config.merge import deep_copy, key_paths, merge_value
from trainer.config.messages import cut
from trainer.config.schema import (
    DEFAULT_CONFIG_FILE,
    FOLDER_PREFIX,
    Config,
    ConfigError,
    is_factory,
    is_folder,
)
from trainer.config.validate import Builder

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a config file (None: ./experiments.toml if present, else defaults), apply
    `--set` overrides, validate everything, and return the Config; ConfigError otherwise."""
    if path is None:
        if not os.path.isfile(DEFAULT_CONFIG_FILE):
            return config_from_toml("", source="", overrides=overrides)
        path = DEFAULT_CONFIG_FILE
    source = os.fspath(path)
    return config_from_toml(read_config_text(source), source=source, overrides=overrides)


def read_config_text(source: str) -> str:
    """The text of a config file: a regular file (not a FIFO, a device or a folder, which could block
    or never end) of at most MAX_CONFIG_BYTES, in UTF-8. ConfigError otherwise."""
    missing = (
        f"{source}: no such config file; pass a path to an existing one or create "
        f"{DEFAULT_CONFIG_FILE} (every key is optional; see docs/config.md)"
    )
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ConfigError(missing) from None
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(f"{source}: cannot read config file: {reason}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{source}: cannot read config file: it is {_file_kind(info.st_mode)}, not a "
                "regular file; give the path of a .toml file"
            )
        data = b""
        if info.st_size <= MAX_CONFIG_BYTES:
            chunks, total = [], 0
            while total <= MAX_CONFIG_BYTES and (chunk := os.read(fd, 1 << 16)):
                chunks.append(chunk)
                total += len(chunk)
            data = b"".join(chunks)
        if info.st_size > MAX_CONFIG_BYTES or len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{source}: the file is over {MAX_CONFIG_BYTES // 1024} KiB, and a config holds a "
                "few KB of settings: is it the right file?"
            )
    except OSError as err:
        raise ConfigError(f"{source}: cannot read config file: {err.strerror or err}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{source}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8"
        ) from None


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a file")


def config_from_toml(text: str, *, source: str = "", overrides: Sequence[str] = ()) -> Config:
    """Like `load_config`, from TOML text; `source` names the text in messages ("" = defaults)."""
    where_file = source or "<config>"
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{where_file}: over {MAX_CONFIG_BYTES // 1024} KiB of text; a config holds a few KB"
        )
    raw = parse_toml(text, where_file)
    origins = {path: f"{where_file}:{line}" for path, line in key_lines(text).items()}
    raw = apply_overrides(raw, overrides, origins=origins)
    return config_from_raw(raw, origins, source=source, variant_origins=variant_lines(text, where_file))


def config_from_raw(
    raw: dict[str, Any],
    origins: dict[tuple[str, ...], str],
    *,
    source: str = "",
    variant_origins: list[dict[tuple[str, ...], str]] | None = None,
) -> Config:
    """The Config of parsed TOML tables, validated; `origins` says where each key path was given (file:line
    or the option), for messages; `source` is the config file paths in it are relative to."""
    where_file = source or "<config>"
    cfg = Builder(raw, origins, where_file if source else "", variant_origins=variant_origins).build()
    cfg.source = source
    cfg.model.path = model_folder(cfg.model.name, cfg.model.path, source)
    cfg.data.path = model_folder(cfg.data.dataset, cfg.data.path, source)
    if is_folder(cfg.data.dataset) and cfg.data.dataset[len(FOLDER_PREFIX) :].strip():
        # A relative image folder is taken from the config file's folder, written absolute (as model.path),
        # so a resumed sweep reads the folder the sweep did.
        base = os.path.dirname(os.path.abspath(source)) if source else os.path.abspath(".")
        folder = os.path.expanduser(cfg.data.dataset[len(FOLDER_PREFIX) :].strip())
        cfg.data.dataset = FOLDER_PREFIX + os.path.normpath(os.path.join(base, folder))
    return cfg


def model_folder(name: str, path: str, source: str) -> str:
    """Where a factory's module is looked for first, as an absolute folder: model.path (data.path), or
    "" for the config file's own folder (the current folder without a file); a relative model.path is
    taken from the config file's folder. A built-in model keeps `path` as given (nothing is imported)."""
    if not is_factory(name):
        return path
    base = os.path.dirname(os.path.abspath(source)) if source else os.path.abspath(".")
    return os.path.normpath(os.path.join(base, os.path.expanduser(path))) if path else base


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


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """tomllib.loads with every failure a ConfigError naming `where` and the line: syntax errors,
    nesting tomllib cannot follow or deeper than MAX_DEPTH, integers of more than 4300 digits."""
    _check_shape(text, where)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = str(err)
        m = re.search(r"line (\d+)", msg)
        line = int(m.group(1)) if m else max(1, len(text.splitlines()))
        raise ConfigError(f"{where}:{line}: TOML syntax error: {cut(msg, 200)}") from None
    except RecursionError:
        raise ConfigError(_too_deep(where, deep_line(text, MAX_DEPTH))) from None
    except ValueError:  # Python's limit on integer digits (sys.get_int_max_str_digits)
        m = re.search(r"[0-9_]{4000,}", text)
        line = text.count("\n", 0, m.start()) + 1 if m else 1
        raise ConfigError(
            f"{where}:{line}: a number has thousands of digits; no setting needs more than a few"
        ) from None
    if _depth(raw, MAX_DEPTH + 1) - 1 > MAX_DEPTH:  # the document itself is not a level
        raise ConfigError(_too_deep(where, deep_line(text, MAX_DEPTH)))
    return raw


_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_LONG_KEY = re.compile(
    rf"(?:^|[\[{{,])[ \t]*{_PART}(?:[ \t]*\.[ \t]*{_PART}){{{MAX_KEY_PARTS},}}", re.MULTILINE
)
_HEADER_LINE = re.compile(r"^[ \t]*\[", re.MULTILINE)


def _check_shape(text: str, where: str) -> None:
    """Refuse, before tomllib sees them, the shapes it takes minutes over: dotted keys of more than
    MAX_KEY_PARTS parts (its time grows with the cube of the parts) and more than MAX_HEADERS table
    headers (the square). No config comes near either."""
    m = _LONG_KEY.search(text)
    if m is not None:
        line = text.count("\n", 0, m.start()) + 1
        raise ConfigError(
            f"{where}:{line}: a dotted key of more than {MAX_KEY_PARTS} parts; no setting has one"
        )
    headers = sum(1 for _ in itertools.islice(_HEADER_LINE.finditer(text), MAX_HEADERS + 1))
    if headers > MAX_HEADERS:
        raise ConfigError(
            f"{where}: more than {MAX_HEADERS} [table] headers; a config has a few (its sections "
            "and one [[variants]] per variant)"
        )


def _too_deep(where: str, line: int) -> str:
    return (
        f"{where}:{line}: tables and lists nested more than {MAX_DEPTH} deep; no setting nests deeper "
        "than 4 (variants -> optim -> betas)"
    )


def _depth(value: Any, limit: int) -> int:
    """How deep tables and lists nest in `value`, counting `value` itself; limit + 1 for anything
    deeper than `limit` (iteratively, and without walking further: the value may nest very deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            if level + 1 > limit:
                return limit + 1
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


# ------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str], object]:
    """Split "KEY=VALUE" into (key path, value): "sweep.batch_sizes=[6,60]" -> (["sweep", "batch_sizes"], [6, 60]).

    VALUE is TOML (`data.dataset="synthetic-digits"`). A bare word that is not valid TOML is
    taken as a string (`data.dataset=synthetic-digits`, `sweep.device=cuda:1`), because shells
    eat the quotes of `--set data.dataset="synthetic-digits"`. ConfigError on bad syntax.
    """
    where = f"--set {cut(text, 100)}"
    parsed = match_key_path(text, 0)
    if "=" not in text:
        raise ConfigError(f'{where}: missing "="; write KEY=VALUE, e.g. --set sweep.batch_sizes=[6,60]')
    if parsed is None or parsed[1] >= len(text) or text[parsed[1]] != "=":
        key = text.split("=", 1)[0].strip()
        if key.count(".") >= MAX_KEY_PARTS:
            raise ConfigError(f"{where}: a key of more than {MAX_KEY_PARTS} parts; no setting has one")
        raise ConfigError(f"{where}: {cut(key)!r} is not a dotted key; write e.g. --set sweep.epochs=3")
    keys, end = parsed
    value_text = text[end + 1 :].strip()
    if not value_text:
        raise ConfigError(f"{where}: no value after '='; write e.g. --set sweep.epochs=3")
    try:
        _check_shape(value_text, where)
    except ConfigError as err:  # "--set ...:1: a dotted key ..." -> "--set ...: a dotted key ..."
        raise ConfigError(str(err).replace(f"{where}:1:", f"{where}:", 1)) from None
    try:
        doc = tomllib.loads(f"v = {value_text}")
    except tomllib.TOMLDecodeError as err:
        if re.fullmatch(r"[^\s\"'\[\]{},]+", value_text):
            return keys, value_text
        hint = "strings with spaces or brackets need quotes"
        if "," in value_text and not value_text.startswith("["):
            hint = f"lists need brackets: [{cut(value_text)}]"
        raise ConfigError(f"{where}: value is not valid TOML ({cut(str(err), 200)}); {hint}") from None
    except RecursionError:
        raise ConfigError(
            f"{where}: value nested more than {MAX_DEPTH} deep; no setting nests deeper than 4"
        ) from None
    except ValueError:  # Python's limit on integer digits
        raise ConfigError(
            f"{where}: a number of thousands of digits; no setting needs more than a few"
        ) from None
    if list(doc) != ["v"]:  # e.g. "1\nx = 2" smuggles in a second key
        raise ConfigError(f"{where}: expected one value, got {len(doc)} keys; put the value on one line")
    if len(keys) - 1 + _depth(doc["v"], MAX_DEPTH) > MAX_DEPTH:
        raise ConfigError(
            f"{where}: key and value nest more than {MAX_DEPTH} deep; no setting nests deeper than 4"
        )
    return keys, doc["v"]


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str], *, origins: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """Merge `--set KEY=VALUE` overrides into a raw TOML dict (harlequin's merge_profile_with_cli).

    Returns a new dict; later overrides win; a table value is merged into the table it names
    (`merge_value`). Keys are not checked here (validation does that, naming the --set). `origins`,
    if given, records which --set each key path came from, for messages. ConfigError lists every
    bad override.
    """
    if len(overrides) > MAX_OVERRIDES:
        raise ConfigError(
            f"{len(overrides)} --set options; at most {MAX_OVERRIDES} in one command (put the "
            "settings in a config file)"
        )
    merged = deep_copy(raw)
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
                problems.append(
                    f"--set {cut(text, 100)}: {cut(dotted)} is a value, not a table, so it has no key "
                    f"{cut(keys[i + 1])!r}"
                )
                break
            table = nxt
        else:
            table[keys[-1]] = merge_value(table.get(keys[-1]), value)
            if origins is not None:
                for sub in key_paths(value, tuple(keys)):
                    origins[sub] = f"--set {cut(text, 100)}"
    if problems:
        raise ConfigError(problems)
    return merged
