"""The REST face over the agent's services."""
