"""Collectors, one per concern, read by every face (REST, console, TUI)."""
