"""Where keys are in a TOML text: key path -> line, for "file:line" in messages.

tomllib reports no positions, so this scans the text: [table] headers, `a.b = ...` lines within
them, and the first level of an inline table. Lines inside multi-line strings are skipped. Good
enough for pointing a user at a line; never raises; linear in the text.
"""

from __future__ import annotations

import json
import re

from trainer.config.bounds import MAX_DEPTH, MAX_KEY_PARTS
from trainer.config.schema import VARIANTS

_KEY_PART = re.compile(r"""[ \t]*(?:([A-Za-z0-9_-]+)|"((?:[^"\\\n]|\\.)*)"|'([^'\n]*)')[ \t]*""")
_HEADER = re.compile(r"[ \t]*\[\[?(.*?)\]\]?[ \t]*(#.*)?")
_VARIANTS_HEADER = re.compile(r"[ \t]*\[\[[ \t]*variants[ \t]*\]\][ \t]*(#.*)?")


def match_key_path(text: str, pos: int) -> tuple[list[str], int] | None:
    """A TOML key path (bare, "quoted", 'literal' parts joined by dots) at `pos`: (parts, end).

    None if there is none, or if it has more than MAX_KEY_PARTS parts (no key of a config has).
    """
    parts: list[str] = []
    while len(parts) < MAX_KEY_PARTS:
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
    return None


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path (and its prefixes) to the 1-based line that first gives it."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline = False

    def note(path: tuple[str, ...], line: int) -> None:
        for i in range(1, min(len(path), MAX_DEPTH + MAX_KEY_PARTS) + 1):
            found.setdefault(path[:i], line)

    for n, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            in_multiline = (line.count('"""') + line.count("'''")) % 2 == 0
            continue
        header = _HEADER.fullmatch(line)
        parsed = match_key_path(header.group(1), 0) if header else None
        if header and parsed and parsed[1] == len(header.group(1)):
            table = tuple(parsed[0])
            note(table, n)
        elif (parsed := match_key_path(line, 0)) and line.startswith("=", parsed[1]):
            path = table + tuple(parsed[0])
            note(path, n)
            rest = line[parsed[1] + 1 :].lstrip()
            if rest.startswith("{"):
                for m in re.finditer(r"[{,]", rest):
                    inner = match_key_path(rest, m.end())
                    if inner and rest.startswith("=", inner[1]):
                        note(path + tuple(inner[0]), n)
        in_multiline = (line.count('"""') + line.count("'''")) % 2 == 1
    return found


def variant_lines(text: str, where_file: str) -> list[dict[tuple[str, ...], str]]:
    """Per `[[variants]]` table in the text, where its keys are: path inside the variant -> "file:line"
    (the key () is the table's header). key_lines alone would give every variant the first one's lines."""
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if _VARIANTS_HEADER.fullmatch(line)]
    out = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        found = key_lines("\n".join(lines[start:end]))
        where = {
            path[1:]: f"{where_file}:{start + n}" for path, n in found.items() if path[:1] == (VARIANTS,)
        }
        out.append(where)
    return out


def deep_line(text: str, depth: int) -> int:
    """The first line where arrays and inline tables nest more than `depth` deep, or, if none does
    (tables count too), the first where they nest deepest: tomllib gives up on deep nesting without
    saying where. Strings and comments are skipped; 1 if nothing nests."""
    for limit in range(depth, 0, -1):
        line = _first_deeper(text, limit)
        if line:
            return line
    return 1


def _first_deeper(text: str, depth: int) -> int:
    level, line, quote, i = 0, 1, "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            line += 1
            if quote in ('"', "'"):
                quote = ""
        elif quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif ch in "[{":
            level += 1
            if level > depth:
                return line
        elif ch in "]}":
            level = max(0, level - 1)
        i += 1
    return 0
