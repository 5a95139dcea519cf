"""Where the console's data comes from: a client whose named methods are
agent.client.Client's, either that REST client (an agent over HTTP) or the
agent in this process (agent.console.local.LocalClient, which `capbox run`
hands in).  The screens name the method and never know which; a refusal
is an ApiError either way, here a SourceError with its message."""
from typing import Optional

from agent.client import ApiError, Client


class SourceError(Exception):
    """What went wrong, in a sentence for a notification."""


class Source:
    def __init__(self, client, where: str):
        self.client = client
        self.where = where

    def call(self, method: str, *args, **kwargs):
        """client.<method>(...); SourceError for a refusal or an agent that does not answer."""
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except ApiError as e:
            field = e.details.get("field")
            raise SourceError(f"{e.message}" + (f" ({field})" if field else "")) from None
        except OSError as e:
            raise SourceError(f"agent unreachable: {e}") from None

    def optional(self, method: str, *args, **kwargs) -> Optional[dict]:
        """A call that may not answer here (nothing computed yet, feature off): None instead of an error."""
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except ApiError as e:
            if e.status in (400, 404, 409, 503):
                return None
            raise SourceError(f"{e.code}: {e.message}") from None
        except OSError as e:
            raise SourceError(f"agent at {self.where} unreachable: {e}") from None

    def health(self) -> dict:
        try:
            return self.client.health()
        except ApiError as e:
            raise SourceError(f"{e.code}: {e.message}") from None
        except OSError as e:
            raise SourceError(f"agent at {self.where} unreachable: {e}") from None


def remote(url: str, key: Optional[str], cacert: Optional[str] = None, pin: Optional[str] = None) -> Source:
    return Source(Client(url, key, timeout=5, cacert=cacert, pin=pin), url)
