"""Ending a trainer process without the interpreter's teardown of torch.

Once a sweep has written, flushed and released everything, a Python process that loaded torch (and
torch._dynamo, which the first optimizer imports) still spends seconds in interpreter teardown: 12-14 s
measured on a 2-core VM, mostly torch.library finalizers. A clean stop is due within 2 s, and nothing
is left to do at that point, so the trainer flushes its output and ends with os._exit.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn


def quick_exit(code: int | None, queues: tuple[Any, ...] = ()) -> NoReturn:
    """Flush `queues` (multiprocessing queues whose events a reader still wants) and stdio, then end
    the process with `code` at once."""
    for q in queues:
        try:
            q.close()
            q.join_thread()  # the events still buffered reach the pipe (a dropped queue returns at once)
        except (AttributeError, OSError, ValueError, AssertionError):
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(int(code or 0))
