"""Values as the schema's types: what the dataclass fields declare, within the size bounds.

A value that is not of its field's type, or too big to be one (a list of a million items, a
string of a megabyte, an integer no float can hold), is a `Mismatch`; the key keeps its default.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, get_args, get_origin, get_type_hints

from trainer.config.bounds import LIST_MAX, MAX_LIST, MAX_STRING
from trainer.config.messages import describe, num
from trainer.config.schema import Config

_TYPE_NAMES = {bool: ("a boolean (true or false)", "booleans"), int: ("an integer", "integers"),
               float: ("a number", "numbers"), str: ("a string", "strings")}  # fmt: skip


class Mismatch(Exception):
    """A value does not fit a field's type hint; the message says how."""


def type_name(tp: Any) -> str:
    if get_origin(tp) is dict:
        return "a table"
    if get_origin(tp) is list:
        return f"a list of {_TYPE_NAMES[get_args(tp)[0]][1]}"
    return _TYPE_NAMES[tp][0]


def coerce(value: Any, tp: Any, dotted: str = "") -> Any:
    """`value` as type `tp` (an int is fine for a float; a bool is never an int); Mismatch if not.

    Handles the hint types the config dataclasses use: bool, int, float, str, list[...], and
    dict[str, Any] (a free table such as [model.args]: any TOML values, already bounded in size and
    depth by the loader). `dotted` names the key, for its list bound (LIST_MAX).
    """
    if get_origin(tp) is dict:
        if not isinstance(value, dict):
            raise Mismatch(f"expected a table ([{dotted}] or {dotted} = {{...}}), got {describe(value)}")
        return value
    if get_origin(tp) is list:
        if not isinstance(value, list):
            raise Mismatch(f"expected {type_name(tp)}, got {describe(value)}")
        most = LIST_MAX.get(dotted, MAX_LIST)
        if len(value) > most:
            raise Mismatch(f"expected at most {most} items, got {len(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(coerce(item, get_args(tp)[0]))
            except Mismatch as err:
                if type(item) in _fits(tp):  # the right kind, but not finite or too big
                    raise Mismatch(f"{err} at position {i + 1}") from None
                raise Mismatch(
                    f"expected {type_name(tp)}, got {describe(item)} at position {i + 1}"
                ) from None
        return out
    if tp not in _TYPE_NAMES:
        raise TypeError(f"config field type {tp!r} is not supported by the loader; add it to coerce")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is float and is_number:
        try:
            as_float = float(value)
        except OverflowError:  # an integer beyond 1.8e308
            raise Mismatch(
                f"expected a number no float can exceed (about 1.8e308), got {num(value)}"
            ) from None
        if not math.isfinite(as_float):
            raise Mismatch(f"expected a finite number, got {value}")
        return as_float
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        if tp is str:
            _check_string(value)
        return value
    raise Mismatch(f"expected {type_name(tp)}, got {describe(value)}")


def _fits(tp: Any) -> tuple[type, ...]:
    """The Python types a list item may be, for telling "wrong type" from "too big"."""
    item = get_args(tp)[0]
    return (int, float) if item is float else (item,)


def _check_string(value: str) -> None:
    if len(value) > MAX_STRING:
        raise Mismatch(f"expected a string of at most {MAX_STRING} characters, got {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes of a --set that were not UTF-8
        raise Mismatch(
            "expected text, got characters that are not valid Unicode "
            "(a --set with bytes that are not UTF-8?)"
        ) from None


@functools.cache
def sections(cls: type) -> dict[str, Any]:
    """The TOML keys of a config dataclass and their type hints."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.metadata.get("toml", True)}


@functools.cache
def leaf_keys(cls: type = Config, prefix: tuple[str, ...] = ()) -> tuple[tuple[str, ...], ...]:
    """Every key path of the schema that holds a value (not a table)."""
    out: list[tuple[str, ...]] = []
    for name, tp in sections(cls).items():
        if dataclasses.is_dataclass(tp):
            out.extend(leaf_keys(tp, prefix + (name,)))
        else:
            out.append(prefix + (name,))
    return tuple(out)
