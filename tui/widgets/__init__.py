"""The Textual widgets of the app's screens."""
