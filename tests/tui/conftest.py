"""The running-agent fixtures of tests/agent, for the console's tests."""
from tests.agent.conftest import agent, make_agent

__all__ = ["agent", "make_agent"]
