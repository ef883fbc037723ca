"""The app's pure model of a sweep and of what the user views: built from events, no Textual."""
