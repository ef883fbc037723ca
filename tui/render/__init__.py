"""Drawing without Textual: charts, ticks, colours and text built from the state."""
