"""aide-tui: the AIDE tree search over ML solution scripts, with a human in the loop."""

__version__ = "0.1.0"
