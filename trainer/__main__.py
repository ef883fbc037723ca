"""`python -m trainer ...`: see trainer.cli."""
from __future__ import annotations

import sys

if __name__ == "__main__":
    try:  # Ctrl-C while the modules load: one line, as anywhere else in start-up (trainer.cli.main)
        from trainer.cli import main
    except KeyboardInterrupt:
        print("bstui: interrupted by Ctrl-C before training began; nothing was trained", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
