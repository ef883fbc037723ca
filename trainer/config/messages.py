"""Words for config messages: values as a user would name them, always cut to a readable length.

Whatever a user writes (a 5,000-digit number, a megabyte of key name), a message stays short.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Sequence

CUT = 40  # characters of a value or key shown in a message
LIST_SHOWN = 8  # items of a list of numbers shown in a message


def cut(text: str, limit: int = CUT) -> str:
    """`text`, or its start and "..." with the length when longer than `limit`."""
    if len(text) <= limit:
        return text
    return f"{text[: max(1, limit - 3)]}... ({len(text)} characters)"


def num(value: Any) -> str:
    """A number for a message: ints longer than CUT digits cut, floats as Python writes them."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 20_000:  # str() would refuse (Python's 4300-digit limit)
            return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
        text = str(value)
        if len(text) > CUT:
            return f"{text[: CUT - 3]}... ({len(text.lstrip('-'))} digits)"
        return text
    return str(value)


def nums(values: Sequence[Any]) -> str:
    """A list of numbers for a message: "6, 60", or the first LIST_SHOWN and how many more."""
    shown = ", ".join(num(v) for v in values[:LIST_SHOWN])
    more = len(values) - LIST_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def q(s: str) -> str:
    """A string as it would be written in TOML, for messages (cut)."""
    return json.dumps(cut(s), ensure_ascii=False)


def key(path: Sequence[str]) -> str:
    """A key path for a message: sweep.epochs (each part cut)."""
    return ".".join(cut(part) for part in path)


def describe(value: Any) -> str:
    """A value as a user would name it: 'a string ("x")', 'an integer (5)', 'a table'."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({num(value)})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({q(value)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} ({cut(str(value))})"  # TOML dates and times


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The nearest of `choices` to a misspelt `word`, or None (long words are not typos)."""
    if len(word) > 2 * CUT:
        return None
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None
