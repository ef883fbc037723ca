"""Models and optimizers: built-ins by name, and the user's own."""
