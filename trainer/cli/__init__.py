"""Entry points: the trainer's command line, the app's child process, headless output, cluster submission."""
