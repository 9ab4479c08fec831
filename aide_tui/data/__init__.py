"""The user's data as aide-tui reads it: one table reader, and what a task card needs from the tables."""
