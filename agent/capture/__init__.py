"""Capture control: the agent's side of the C core."""
