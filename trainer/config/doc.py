"""docs/config.md, generated from the schema: every key with its default, allowed values and meaning.

Each key's meaning is written once, as the docstring under its field in `schema.py`; its default comes
from the dataclass, its allowed values from `schema.CHOICES` and `bounds`. This module only lays them out:

    python -m trainer.config.doc            # write docs/config.md
    python -m trainer.config.doc --check    # exit 1 when docs/config.md is not what the schema gives

A test runs the check, so a key added or changed without regenerating the page fails `make test`.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin

from trainer.config import bounds, schema
from trainer.config.bounds import LIST_MAX, MAX_CUDA_INDEX, MAX_LIST, PATH_KEYS, RANGES, Range
from trainer.config.coerce import leaf_keys, sections
from trainer.config.schema import CHOICES, FACTORY_KEYS, Config, VariantConfig

DEFAULT_PATH = Path("docs") / "config.md"
COMMAND = "python -m trainer.config.doc"


@cache
def field_docs() -> dict[str, dict[str, str]]:
    """{class name: {field name: its docstring}}, read from schema.py's source (the string under a field)."""
    out: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(schema)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = out.setdefault(node.name, {})
        for field, after in zip(node.body, node.body[1:]):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[field.target.id] = inspect.cleandoc(after.value.value)
    return out


def key_doc(path: tuple[str, ...]) -> str:
    """The docstring of a key of the schema ("" when it has none)."""
    return field_docs().get(_owner(path).__name__, {}).get(path[-1], "")


def _owner(path: tuple[str, ...]) -> type:
    cls: type = Config
    for part in path[:-1]:
        cls = sections(cls)[part]
    return cls


def _default(path: tuple[str, ...]) -> Any:
    value: Any = Config()
    for part in path:
        value = getattr(value, part)
    return value


def toml_value(value: Any) -> str:
    """A default as it is written in experiments.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    return repr(value)


def number(x: float) -> str:
    """A bound for people: 1,000,000,000 for integers, 1e6 for large round floats."""
    if isinstance(x, float) and x.is_integer() and x >= 1e5:
        return f"{x:.0e}".replace("e+0", "e").replace("e+", "e")
    if isinstance(x, int) and x >= 10_000:
        return f"{x:,}"
    return str(x)


def range_text(r: Range) -> str:
    lo, hi = number(r.lo), r.hi_text or number(r.hi)
    if r.exact or r.hi_open:
        text = f"in {'(' if r.lo_open else '['}{lo}, {hi}{')' if r.hi_open else ']'}"
    elif r.lo_open:
        text = f"> {lo}, at most {hi}"
    else:
        text = f"{lo} to {hi}"
    return text + r.note


def allowed(path: tuple[str, ...]) -> str:
    """What the loader accepts for a key, from the choices and bounds it checks against."""
    dotted = ".".join(path)
    tp = sections(_owner(path))[path[-1]]
    if tp is bool:
        return "`true`, `false`"
    if dotted in CHOICES:
        text = ", ".join(f"`{toml_value(c) if c == '' else c}`" for c in CHOICES[dotted])
        if dotted == "data.dataset":
            text += f', `"{schema.FOLDER_PREFIX}PATH"`'
        if dotted in FACTORY_KEYS:
            text += ', `"package.module:factory"`'
        return text
    if dotted == "sweep.device":
        return f"`auto`, `cpu`, `cuda`, `cuda:N` (N from 0 to {MAX_CUDA_INDEX}; no spaces, no leading zeros)"
    if dotted in PATH_KEYS:
        rule = "a folder: no NUL byte, each name and the whole path within the OS's NAME_MAX and PATH_MAX"
        return rule + ("; not empty" if dotted == "output.dir" else "")
    if get_origin(tp) is dict:
        return "a table"
    if get_origin(tp) is list:
        item = range_text(RANGES[dotted]) if dotted in RANGES else _type_word(get_args(tp)[0])
        return f"a list of at most {number(LIST_MAX.get(dotted, MAX_LIST))}, each {item}"
    if dotted in RANGES:
        return range_text(RANGES[dotted])
    return _type_word(tp)


def _type_word(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def cell(text: str) -> str:
    """One table cell: a paragraph on one line, `|` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def _section_intro(cls: type) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    doc = doc.split(": ", 1)[1] if doc.startswith("[") and ": " in doc else doc
    return cell(doc[:1].upper() + doc[1:])


def render() -> str:
    """The whole of docs/config.md."""
    out = [
        "# experiments.toml: every key",
        "",
        f"<!-- Generated from trainer/config/schema.py and bounds.py by `{COMMAND}`; edit those. -->",
        "",
        "Every key is optional; what a config leaves out takes the default below (the shipped",
        "`experiments.toml` is the study's setup). `--set KEY=VALUE` overrides any key from the command line",
        "(`KEY` dotted, `VALUE` TOML: `--set sweep.batch_sizes=[6,60]`; a bare word is a string). Every value",
        "is checked before anything trains: a value outside what is allowed is a config error (exit 2) naming",
        "the key, what is allowed and the file line. The upper ends are far beyond any real experiment: they",
        "keep a typo (an lr of `1e400`, `sweep.seeds = 1000000000`) from becoming a traceback, a search that",
        "never ends or gigabytes of memory.",
    ]
    for name, cls in sections(Config).items():
        keys = [p for p in leaf_keys() if p[0] == name]
        out += ["", f"## [{name}]", "", _section_intro(cls), ""]
        rows = [(f"`{'.'.join(p)}`", f"`{toml_value(_default(p))}`", allowed(p), key_doc(p)) for p in keys]
        out += _table(rows, ("key", "default", "allowed", "meaning"))
    out += _variants() + _limits() + _run_ids()
    return "\n".join(out) + "\n"


def _variants() -> list[str]:
    docs = field_docs()[VariantConfig.__name__]
    rows = [(f"`{k}`", docs[k]) for k in schema.VARIANT_KEYS]
    return [
        "",
        "## [[variants]]",
        "",
        _section_intro(VariantConfig),
        "Each variant's overrides are checked like the rest of the file, and errors name the variant.",
        "",
        *_table(rows, ("key", "meaning")),
        "",
        "```toml",
        "[[variants]]",
        'name = "lars"',
        "batch_sizes = [6000, 60000]",
        'optim = { name = "lars", lr = 20.0, momentum = 0.9, warmup_epochs = 2.0 }',
        "```",
    ]


def _limits() -> list[str]:
    b = bounds
    lists = ", ".join(f"`{k}`: {number(n)}" for k, n in LIST_MAX.items())
    return [
        "",
        "## Limits of the whole config",
        "",
        f"- lists: at most {number(MAX_LIST)} items ({lists}); strings: at most {number(b.MAX_STRING)}",
        "  characters, valid Unicode;",
        f"- `[[variants]]`: at most {b.MAX_VARIANTS}; a name of letters, digits and `_ . + -`, at most",
        f"  {b.MAX_VARIANT_NAME} characters; names may not differ only in case or in `+` against `_` (they",
        "  would share checkpoint files);",
        f"- the sweep: at most {number(b.MAX_RUNS)} runs (batch sizes per variant x lrs x seeds);",
        f"- the file: a regular file (not a FIFO or a device) of at most {b.MAX_CONFIG_BYTES // 1024} KiB;",
        f"  tables and lists nested at most {b.MAX_DEPTH} deep; dotted keys of at most {b.MAX_KEY_PARTS}",
        f"  parts; at most {number(b.MAX_HEADERS)} `[table]` headers; at most {number(b.MAX_OVERRIDES)}",
        "  `--set` options.",
        "",
        f"A config with many problems lists the first {schema.MAX_PROBLEMS} and counts the rest; long values",
        "are cut in messages.",
    ]


def _run_ids() -> list[str]:
    return [
        "",
        "## Run ids",
        "",
        "Run ids name each run in events, summary.csv and checkpoints: `bs<batch size>`, then `-<variant>`",
        "with `[[variants]]`, `-lr<lr>` with several lrs, `-s<i>` with several seeds",
        "(`bs6000-lars-lr0.05-s1`). They are unique by construction: batch sizes, variant names and",
        "`sweep.lrs` may not repeat, and an lr is written with 6 significant digits (as `%g` does) unless two",
        "lrs of the sweep would print alike there; then every lr of that sweep gets the fewest digits that",
        "tell them apart (`sweep.lrs = [0.1, 0.1000001]` gives `bs60-lr0.1` and `bs60-lr0.1000001`).",
    ]


def undocumented() -> list[str]:
    """Keys of the schema without a docstring (a test keeps this empty)."""
    return [".".join(p) for p in leaf_keys() if not key_doc(p)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="default: docs/config.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not what it would write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else None
        if current != text:
            print(f"{args.path} is stale: regenerate it with {COMMAND}", file=sys.stderr)
            return 1
        print(f"{args.path} is up to date")
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
