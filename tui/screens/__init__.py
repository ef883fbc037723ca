"""The Textual screens of the app: the main view, the scaling view, help."""
