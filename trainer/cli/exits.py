"""The trainer's exit codes (DESIGN.md): 0 the sweep finished (diverged/oom runs are results); 2 bad
configuration or arguments (or a run directory another trainer is writing), nothing trained; 130
interrupted (Ctrl-C), run directory still valid; 143 / 129 stopped by SIGTERM / SIGHUP (128 + the signal,
trainer.runlog.controls.exit_code); 74 the run directory could not be written mid-sweep (disk full...),
valid up to its last whole line; 1 a bug (a run failed with an unexpected error, see errors.log)."""

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_IO = 74  # sysexits.h EX_IOERR: the run directory stopped taking writes mid-sweep
