"""capbox agent: the one process of the appliance, and its command line."""
__version__ = "0.1.0"

from agent import codecache  # noqa: E402  (before any of its modules makes a dataclass)

codecache.install()
