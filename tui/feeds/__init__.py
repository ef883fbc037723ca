"""Where events come from: a live trainer, a run directory, a sharded sweep; and the system readings."""
