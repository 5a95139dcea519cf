"""The Textual console on the box: `capbox tui` (attached to an agent) or
`capbox run` on a terminal (the agent and the console in one process)."""
