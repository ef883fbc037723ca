"""The part of config validation that collects problems and fills dataclasses from raw TOML:
`BuilderBase`. The value rules (rules.py) and [[variants]] (variants.py) report through it;
validate.py's `Builder` adds `build`, which runs them (so they import this module, never validate.py).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from trainer.config.coerce import Mismatch, coerce, leaf_keys, sections
from trainer.config.messages import describe, did_you_mean, key
from trainer.config.schema import MAX_PROBLEMS, VARIANTS, Config


class BuilderBase(abc.ABC):
    """Fills a Config from a raw TOML dict, collecting every problem rather than stopping at the first."""

    def __init__(
        self,
        raw: dict[str, Any],
        origins: dict[tuple[str, ...], str],
        file: str,
        *,
        label: str = "",
        variant_origins: list[dict[tuple[str, ...], str]] | None = None,
        whole: bool = True,
    ) -> None:
        self.raw = raw
        self.whole = whole  # False while checking the config one variant makes (no sweep-wide rules)
        self.label = label  # put before key names: 'variant "lars": ' while checking a variant
        self.variant_origins = variant_origins or []  # per [[variants]] table in the file: key -> file:line
        self.origins = origins  # key path -> "file:line" or "--set ..."
        self.file = file  # "" when there is no file (defaults + overrides)
        self.problems: list[str] = []
        self.omitted = 0  # problems past MAX_PROBLEMS, counted only
        self.bad: set[str] = set()  # keys with an unknown-key, type or range problem (they hold defaults)

    @abc.abstractmethod
    def build(self) -> Config:
        """The Config, or ConfigError with every problem found."""

    # -- reporting

    @property
    def full(self) -> bool:
        """Whether further problems are only counted (the message already holds MAX_PROBLEMS)."""
        return len(self.problems) >= MAX_PROBLEMS

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

    def where(self, path: tuple[str, ...]) -> str:
        """file:line or the --set that gave `path` (or a table above it); the file, or ""."""
        found = next(
            (self.origins[path[:i]] for i in range(len(path), 0, -1) if path[:i] in self.origins), ""
        )
        return found or self.file

    def problem(self, path: tuple[str, ...] | str, message: str) -> None:
        """Record "where: key: message"; where is file:line or the --set; "key (default)" if not given."""
        if self.full:
            self.omitted += 1
            return
        path = tuple(path.split(".")) if isinstance(path, str) else path
        dotted = self.label + key(path)
        if not self.given(path):  # a default value clashing with a given one
            self.problems.append(f"{dotted} (default): {message}")
            return
        where = self.where(path)
        self.problems.append(f"{where}: {dotted}: {message}" if where else f"{dotted}: {message}")

    def check(self, dotted: str, ok: bool, message: str) -> None:
        """A value rule; skipped for keys already reported (they hold defaults now)."""
        if not ok and not self.is_bad(dotted):
            self.problem(dotted, message)

    def known_raw(self) -> dict[str, Any]:
        """The raw sections with only the keys the schema knows and that loaded (no unknown or
        badly typed keys): what a variant's config starts from, so they are not checked again."""

        def keep(cls: type, table: dict[str, Any], prefix: tuple[str, ...]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, tp in sections(cls).items():
                path = prefix + (name,)
                if name not in table or ".".join(path) in self.bad:
                    continue
                value = table[name]
                out[name] = keep(tp, value, path) if dataclasses.is_dataclass(tp) else value
            return out

        return keep(Config, {k: v for k, v in self.raw.items() if k != VARIANTS}, ())

    # -- keys and types, generically from the dataclasses

    def _dataclass(self, cls: type, table: dict[str, Any], prefix: tuple[str, ...]) -> Any:
        known = sections(cls)
        values: dict[str, Any] = {}
        for name, value in table.items():
            path = prefix + (name,)
            tp = known.get(name)
            if tp is None:
                self._unknown(path, value, known)
            elif dataclasses.is_dataclass(tp) and isinstance(value, dict):
                values[name] = self._dataclass(tp, value, path)
            elif dataclasses.is_dataclass(tp):
                self.problem(path, f"expected a table ([{key(path)}]), got {describe(value)}")
            else:
                try:
                    values[name] = coerce(value, tp, ".".join(path))
                    continue
                except Mismatch as err:
                    self.problem(path, str(err))
            if name not in values:
                self.bad.add(".".join(path))
        return cls(**values)

    def _unknown(self, path: tuple[str, ...], value: Any, known: dict[str, Any]) -> None:
        if self.full:  # nobody will read the suggestion: skip the search
            self.omitted += 1
            return
        name, leaves = path[-1], leaf_keys()
        if len(path) == 1 and did_you_mean(name, [VARIANTS]):
            self.problem(
                path, "unknown key; did you mean [[variants]] (an array of tables, one per variant)?"
            )
            return
        # A key of another section (batch_sizes under [optim]) is most likely in the wrong place.
        elsewhere = [".".join(leaf) for leaf in leaves if leaf[-1] == name]
        if len(path) == 1 and isinstance(value, dict):
            guess = did_you_mean(name, list(known))
            hint = (
                f"did you mean [{guess}]?" if guess
                else f"did you mean {elsewhere[0]}?" if elsewhere
                else f"sections are {', '.join(f'[{s}]' for s in known)}"
            )  # fmt: skip
            self.problem(path, f"unknown section; {hint}")
            return
        near = did_you_mean(name, list(known)) if len(path) > 1 else None
        guess = (
            (elsewhere[0] if elsewhere else None)
            or (".".join(path[:-1] + (near,)) if near else None)
            or did_you_mean(".".join(path), [".".join(leaf) for leaf in leaves])
        )
        if guess:
            self.problem(path, f"unknown key; did you mean {guess}?")
        elif len(path) == 1:
            self.problem(path, f"unknown key; keys belong in a section: {', '.join(f'[{s}]' for s in known)}")
        else:
            self.problem(path, f"unknown key; [{key(path[:-1])}] takes {', '.join(known)}")
