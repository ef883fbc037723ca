"""bstui's terminal app: watch a batch-size sweep live, or replay a run directory.

No torch here, ever at import time: the trainer runs in a subprocess (DESIGN.md).
"""

from __future__ import annotations
