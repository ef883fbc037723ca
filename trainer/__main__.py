"""`python -m trainer ...`: see trainer.cli.main."""

from __future__ import annotations

import os
import sys

from trainer.process.exit import quick_exit

if __name__ == "__main__":
    try:  # Ctrl-C while the modules load: one line, as anywhere else in start-up (trainer.cli.main.main)
        from trainer.cli.main import main
    except KeyboardInterrupt:
        print("bstui: interrupted by Ctrl-C before training began; nothing was trained", file=sys.stderr)
        sys.exit(130)
    code = main()
    if "torch" in sys.modules and "WORLD_SIZE" not in os.environ:
        # Everything is written, flushed and unlocked by now. The interpreter's own teardown of torch
        # (its weakref finalizers, once torch._dynamo is loaded) took 12-14 s on a 2-core VM; skip it.
        # Under torchrun the process group's teardown stays the interpreter's.
        quick_exit(code)
    sys.exit(code)
