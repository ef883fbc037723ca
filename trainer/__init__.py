"""bstui's headless trainer: experiments.toml -> batch-size sweep -> run directory.

Importing this package must stay cheap and free of Textual; torch is imported
only by the modules that train (run, steps, data, models, sweep).
"""

from __future__ import annotations

__version__ = "0.1.0"
