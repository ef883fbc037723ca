"""`python -m trainer report DIR`: the run directory's science as Markdown, tables and terminal plots."""
