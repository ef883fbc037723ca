"""Bounds on everything a config or `--set` can carry: numbers, lists, strings, paths,
devices, the file itself and the sweep's size.

Every number has a range. The upper ends are far beyond any real experiment, but they keep the
sweep's memory and time finite and every later computation in ordinary arithmetic (an lr of 1e400
or 10**5000 epochs is a typo, not a plan). docs/config.md lists them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

MAX_CONFIG_BYTES = 256 * 1024  # a config holds a few KB (config.toml of the biggest sweep allowed: ~150 KB)
MAX_HEADERS = 1000  # [table] and [[array]] headers (tomllib slows down quadratically with them)
MAX_OVERRIDES = 1000  # --set options in one command
MAX_DEPTH = 8  # tables and arrays inside each other (a config needs 4: variants[1].optim.betas[1])
MAX_KEY_PARTS = 16  # parts of one dotted key (a.b.c)
MAX_LIST = 1000  # items in any list value
LIST_MAX = {"sweep.batch_sizes": 100}  # tighter per-key list bounds (a variant's batch_sizes too)
MAX_STRING = 4096  # characters in any string value
MAX_VARIANT_NAME = 100  # characters; it goes into run ids and file names (bs60-<name>-lr0.1-s3.pt)
MAX_VARIANTS = 100  # [[variants]] tables
MAX_RUNS = 10_000  # runs in one sweep: batch sizes x variants x lrs x seeds
MAX_BATCH = 10_000_000  # samples in one batch (the largest published batches are ~10**5)
MAX_EPOCHS = 100_000
MAX_LR = 1e6
MAX_CUDA_INDEX = 127  # PyTorch's device index is an int8: cuda:128 would silently become cuda:-128


@dataclass(frozen=True)
class Range:
    """The allowed values of a number: lo..hi, each end open or closed, with a note for messages.

    `exact`: the upper end is part of the meaning (momentum < 1), so a message always shows the
    interval; otherwise a value below lo gets the short "must be >= lo" and one above hi the interval.
    """

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    note: str = ""  # e.g. " (0 = all)"
    exact: bool = False
    hi_text: str = ""  # how to print hi when its digits would not help ("2**32")

    def __contains__(self, value: float) -> bool:
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def interval(self) -> str:
        hi = self.hi_text or _num(self.hi)
        return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {hi}{')' if self.hi_open else ']'}"

    def rule(self, value: float) -> str:
        """What a value outside the range is told: "must be >= 1" or "must be in [1, 100000]"."""
        too_small = value <= self.lo if self.lo_open else value < self.lo
        if too_small and not self.exact:
            return f"must be {'>' if self.lo_open else '>='} {_num(self.lo)}{self.note}"
        return f"must be {self.interval()}{self.note}"


def _num(x: float) -> str:
    """A bound as written in messages and docs/config.md: 100000, 1e+06 -> 1000000.0 stays short as 1e6."""
    if isinstance(x, float) and x >= 1e5 and x.is_integer():
        return f"{x:.0e}".replace("e+0", "e").replace("e+", "e")
    return str(x)


# Every number of the schema, in the order its problems are reported. Lists of numbers use the
# range of their items (sweep.batch_sizes, sweep.lrs, optim.betas).
RANGES: dict[str, Range] = {
    "data.train_samples": Range(0, 1_000_000_000, note=" (0 = all)"),
    "data.test_samples": Range(0, 1_000_000_000, note=" (0 = all)"),
    "data.num_workers": Range(0, 256),
    "data.test_fraction": Range(0, 1, lo_open=True, hi_open=True, exact=True),
    "optim.lr": Range(0, MAX_LR, lo_open=True),
    "optim.momentum": Range(0, 1, hi_open=True, exact=True),
    "optim.base_batch_size": Range(1, MAX_BATCH),
    "optim.warmup_epochs": Range(0, MAX_EPOCHS, note=" (0 = no warm-up)"),
    "optim.weight_decay": Range(0, 1000, note=" (0 = none)"),
    "optim.trust_coefficient": Range(0, 1000, lo_open=True, note=" (LARS uses 0.001)"),
    "optim.betas": Range(0, 1, hi_open=True, exact=True),
    "optim.eps": Range(0, 1, lo_open=True, note=" (e.g. 1e-6)"),
    "sweep.batch_sizes": Range(1, MAX_BATCH),
    "sweep.epochs": Range(1, MAX_EPOCHS),
    "sweep.target_accuracy": Range(0, 1, lo_open=True, exact=True, note=" (a fraction: 0.98 = 98%)"),
    "sweep.seed": Range(0, 2**32, hi_open=True, exact=True, hi_text="2**32"),
    "sweep.lrs": Range(0, MAX_LR, lo_open=True),
    "sweep.lr_grid.min": Range(0, MAX_LR),  # > 0 too when the grid is on (rules._check_lrs)
    "sweep.lr_grid.max": Range(0, MAX_LR),
    "sweep.lr_grid.points": Range(0, 1000, note=" (0 = no grid)"),
    "sweep.seeds": Range(1, 1000, note=" (repeats of each point)"),
    "sweep.micro_batch": Range(0, MAX_BATCH, note=" (0 = off)"),
    "sweep.eval_every": Range(-1, 1_000_000_000, note=" (0 = epoch ends only, -1 = about 10 per epoch)"),
    "split_backward.chunks": Range(1, 1024),
    "gns.every": Range(0, 1_000_000_000, note=" (0 = off)"),
    "gns.chunks": Range(2, 1024, note=" (two batch sizes are needed)"),
    "gns.beta": Range(0, 1, hi_open=True, exact=True),
    "gns.probe_every": Range(0, 1_000_000_000, note=" (0 = off)"),
    "perf.cpu_threads": Range(0, 1024, note=" (0 = chosen by the batch size)"),
    "branch.epochs": Range(1, MAX_EPOCHS),
    "branch.batch_sizes": Range(1, MAX_BATCH),
    "branch.decrease": Range(
        0, 1, lo_open=True, hi_open=True, exact=True, note=" (a fraction: 0.1 = 10% lower)"
    ),
    "branch.lr_factors": Range(0, 1000, lo_open=True),
    "branch.max_samples": Range(0, 1_000_000_000, note=" (0 = one epoch)"),
    "branch.eval_every": Range(0, 1_000_000_000, note=" (0 = about 40 per branch)"),
    "branch.base_batch_size": Range(0, MAX_BATCH, note=" (0 = the only one of sweep.batch_sizes)"),
}

# ------------------------------------------------------------------ devices

_DEVICE_RE = re.compile(r"auto|cpu|cuda(?::(0|[1-9][0-9]{0,2}))?")
DEVICE_RULE = f'use "auto", "cpu", "cuda" or "cuda:N" (N from 0 to {MAX_CUDA_INDEX})'


def is_device(name: str) -> bool:
    """auto, cpu, cuda or cuda:N, strictly: no spaces, no leading zeros, N within PyTorch's range."""
    m = _DEVICE_RE.fullmatch(name)
    return m is not None and (m.group(1) is None or int(m.group(1)) <= MAX_CUDA_INDEX)


# -------------------------------------------------------------------- paths


def _pathconf(name: str, default: int) -> int:
    try:
        return int(os.pathconf("/", name))
    except (AttributeError, ValueError, OSError):  # no pathconf (Windows) or no such limit
        return default


PATH_KEYS = ("output.dir", "data.root", "model.path", "data.path")  # keys that name a folder
NAME_MAX = _pathconf("PC_NAME_MAX", 255)  # bytes in one path component
PATH_MAX = _pathconf("PC_PATH_MAX", 4096)  # bytes in a whole path, the final NUL included


def path_problem(value: str) -> str | None:
    """Why a directory setting cannot name a directory on this OS, or None: a NUL byte, a name
    longer than NAME_MAX bytes, a path longer than PATH_MAX (after ~ is expanded)."""
    if "\0" in value:
        return "must not contain a NUL byte (\\0); remove it"
    try:
        encoded = os.fsencode(os.path.expanduser(value))
    except (UnicodeEncodeError, ValueError):
        return "holds characters the file system cannot encode; use plain characters"
    if len(encoded) >= PATH_MAX:
        return f"is {len(encoded)} bytes long; paths on this system are at most {PATH_MAX - 1} bytes"
    seps = re.escape(os.sep + (os.altsep or ""))
    longest = max(re.split(f"[{seps}]".encode(), encoded), key=len)
    if len(longest) > NAME_MAX:
        return (
            f"has a name of {len(longest)} bytes ({longest[:20].decode(errors='replace')}...); "
            f"a file or folder name is at most {NAME_MAX} bytes on this system"
        )
    return None
